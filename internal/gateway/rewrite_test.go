package gateway

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/qbroker/qbroker/internal/provider/ionq"
)

// TestRewriteJobURLsMatchesIonQRewrite checks the byte-level rewrite against
// the decoding rewrite in package ionq.
func TestRewriteJobURLsMatchesIonQRewrite(t *testing.T) {
	const id = "6e9737fd-9638-4a96-ac14-a3e9a4d414ad"
	bodies := []string{
		// Completed job as the emulator renders it.
		`{"id":"` + id + `","status":"completed","name":"bell","results":{"probabilities":{"url":"/v0.4/jobs/` + id + `/results/probabilities"},"histogram":{"url":"/v0.4/jobs/` + id + `/results/histogram"}}}`,
		// Not completed: nothing to rewrite.
		`{"id":"` + id + `","status":"submitted","results":null}`,
		// Absolute and already-prefixed URLs stay as they are.
		`{"id":"` + id + `","results":{"probabilities":{"url":"https://api.ionq.co/v0.4/jobs/` + id + `/results/probabilities"},"shots":{"url":"/ionq/v0.4/jobs/` + id + `/results/shots"}}}`,
		// The path inside a longer string (not at its start) is not a URL to rewrite.
		`{"id":"` + id + `","name":"see /v0.4/jobs/` + id + `/results/x","metadata":{"k":"x\"/v0.4/jobs/` + id + `/y","k2":"x:\"/v0.4/jobs/` + id + `/y"},"results":{"probabilities":{"url":"/v0.4/jobs/` + id + `/results/probabilities"}}}`,
		// Pretty-printed.
		"{\n  \"results\": {\"probabilities\": {\"url\" :\t\"/v0.4/jobs/" + id + "/results/probabilities\"}}}",
	}
	for i, b := range bodies {
		got := rewriteJobURLs([]byte(b), id)
		want, err := ionq.RewriteResultURLsJSON([]byte(b), "/ionq")
		if err != nil {
			t.Fatal(err)
		}
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("body %d: rewrite broke the JSON: %v: %s", i, err, got)
		}
		_ = json.Unmarshal(want, &w)
		if !reflect.DeepEqual(g, w) {
			t.Errorf("body %d:\n got %s\nwant %s", i, got, want)
		}
	}
}
