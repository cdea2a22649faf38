package ionq

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestAPIKeyFromHeader(t *testing.T) {
	cases := []struct {
		vals []string
		key  string
		ok   bool
	}{
		{[]string{"apiKey abc"}, "abc", true},
		{[]string{"APIKEY abc"}, "abc", true},
		{[]string{"Bearer abc"}, "abc", true},
		{[]string{"bearer abc"}, "abc", true},
		{nil, "", false},
		{[]string{""}, "", false},
		{[]string{"apiKey"}, "", false},
		{[]string{"apiKey "}, "", false},
		{[]string{"apiKey  abc"}, "", false},
		{[]string{"apiKey abc def"}, "", false},
		{[]string{"Basic abc"}, "", false},
		{[]string{"abc"}, "", false},
		{[]string{"apiKey abc", "apiKey def"}, "", false},
	}
	for _, c := range cases {
		h := http.Header{}
		for _, v := range c.vals {
			h.Add("Authorization", v)
		}
		k, ok := APIKeyFromHeader(h)
		if k != c.key || ok != c.ok {
			t.Errorf("%q: got %q,%v want %q,%v", c.vals, k, ok, c.key, c.ok)
		}
	}
	h := http.Header{}
	h.Add("Authorization", "Bearer old")
	h.Add("Authorization", "Bearer other")
	SetAPIKey(h, "real")
	if got := h.Values("Authorization"); len(got) != 1 || got[0] != "apiKey real" {
		t.Fatalf("SetAPIKey left %q", got)
	}
}

func TestRewriteResultURLs(t *testing.T) {
	job := &Job{ID: "j", Results: &Results{
		Probabilities: &URL{URL: "/v0.4/jobs/j/results/probabilities"},
		Histogram:     &URL{URL: "https://api.ionq.co/v0.4/jobs/j/results/histogram"},
		Shots:         &URL{URL: "//evil.example/x"},
	}}
	RewriteResultURLs(job, "/ionq/")
	RewriteResultURLs(job, "/ionq") // idempotent
	if got := job.Results.Probabilities.URL; got != "/ionq/v0.4/jobs/j/results/probabilities" {
		t.Errorf("probabilities url = %q", got)
	}
	if got := job.Results.Histogram.URL; got != "https://api.ionq.co/v0.4/jobs/j/results/histogram" {
		t.Errorf("absolute url changed to %q", got)
	}
	if got := job.Results.Shots.URL; got != "//evil.example/x" {
		t.Errorf("protocol-relative url changed to %q", got)
	}
	RewriteResultURLs(&Job{}, "/ionq") // no results: no panic
	RewriteResultURLs(nil, "/ionq")

	body := []byte(`{"id":"j","big":12345678901234567890,"extra":{"x":"<a>"},"results":{"probabilities":{"url":"/v0.4/jobs/j/results/probabilities"}},
		"output":{"error_mitigation":{"debiasing":{"variants":[{"results":{"shots":{"url":"/v0.4/jobs/j/variants/v/results/shots"}}}]}}}}`)
	out, err := RewriteResultURLsJSON(body, "/ionq")
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{`"/ionq/v0.4/jobs/j/results/probabilities"`, `"/ionq/v0.4/jobs/j/variants/v/results/shots"`, `12345678901234567890`, `"<a>"`} {
		if !strings.Contains(s, want) {
			t.Errorf("rewritten body %s lacks %s", s, want)
		}
	}
	if _, err := RewriteResultURLsJSON([]byte(`{`), "/ionq"); err == nil {
		t.Error("malformed body accepted")
	}
}

func TestWriteErrorShape(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, http.StatusUnauthorized, "bad key")
	if rec.Code != 401 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("status %d content-type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var e map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatal(err)
	}
	if e["statusCode"] != 401.0 || e["error"] != "Unauthorized" || e["message"] != "bad key" {
		t.Fatalf("error body %v", e)
	}
	if _, has := e["validation"]; has {
		t.Fatal("validation present without keys")
	}

	_, err := DecodeJobRequest([]byte(`{"type":"ionq.circuit.v1","backend":"simulator","foo":1,"input":{}}`))
	ve := ErrorFromValidation(err)
	if ve.StatusCode != 400 || ve.Validation == nil || ve.Validation.Keys[0] != "foo" {
		t.Fatalf("ErrorFromValidation = %+v", ve)
	}
}

func TestJobJSONShape(t *testing.T) {
	j := Job{ID: "x", Status: StatusSubmitted, Type: TypeCircuit, Backend: "simulator", Shots: 10, SubmittedAt: "t"}
	b, _ := json.Marshal(j)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m)
	for _, k := range []string{"started_at", "completed_at", "failure", "results", "name", "metadata", "session_id", "project_id"} {
		if string(m[k]) != "null" {
			t.Errorf("%s = %s, want null", k, m[k])
		}
	}
	p := ProbabilitiesFromCounts(map[int]int{0: 1, 3: 3, 5: 0}, 4)
	if len(p) != 2 || p["0"] != 0.25 || p["3"] != 0.75 {
		t.Fatalf("probabilities %v", p)
	}
	if !IsTerminal(StatusCanceled) || IsTerminal(StatusStarted) {
		t.Fatal("IsTerminal wrong")
	}
	if FormatTime(timeZero()) != "1970-01-01T00:00:00.000Z" {
		t.Fatalf("FormatTime = %s", FormatTime(timeZero()))
	}
}

func timeZero() time.Time { return time.Unix(0, 0) }
