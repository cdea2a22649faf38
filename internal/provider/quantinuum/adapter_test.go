package quantinuum

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/qbroker/qbroker/internal/provider"
)

func TestToken(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.Header
		want string
		ok   bool
	}{
		{"raw token", http.Header{"Authorization": {jobToken}}, jobToken, true},
		{"no header", http.Header{}, "", false},
		{"empty", http.Header{"Authorization": {""}}, "", false},
		{"bearer scheme", http.Header{"Authorization": {"Bearer " + jobToken}}, "", false},
		{"two headers", http.Header{"Authorization": {jobToken, jobToken}}, "", false},
		{"control character", http.Header{"Authorization": {jobToken + "\x00"}}, "", false},
		{"other header only", http.Header{"X-Amz-Security-Token": {jobToken}}, "", false},
	} {
		got, ok := Adapter{}.Token(tc.h)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: Token = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRoute(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		method, path string
		want         provider.Route
	}{
		{"POST", "/v1/job", provider.Route{Kind: provider.Submit}},
		{"GET", "/v1/job/" + id, provider.Route{Kind: provider.Read, JobID: id, Action: "ReadResult"}},
		{"POST", "/v1/job/" + id + "/cancel", provider.Route{Kind: provider.Cancel, JobID: id, Action: "CancelJob"}},
		{"GET", "/v1/machine", provider.Route{Kind: provider.Public}},
		{"GET", "/v1/machine/", provider.Route{Kind: provider.Public}},
		{"GET", "/v1/machine/H1-1E", provider.Route{Kind: provider.Public}},
		// Refused.
		{"POST", "/v1/login", provider.Route{}},
		{"GET", "/v1/login", provider.Route{}},
		{"GET", "/v1/job", provider.Route{}},
		{"GET", "/v1/job/", provider.Route{}},
		{"POST", "/v1/job/", provider.Route{}},
		{"PUT", "/v1/job", provider.Route{}},
		{"DELETE", "/v1/job/" + id, provider.Route{}},
		{"GET", "/v1/job/" + id + "/cancel", provider.Route{}},
		{"PUT", "/v1/job/" + id + "/cancel", provider.Route{}},
		{"GET", "/v1/job/" + id + "/results", provider.Route{}},
		{"GET", "/v1/job/..%2Flogin", provider.Route{}},
		{"GET", "/v1/job/a%2Fb", provider.Route{}},
		{"GET", "/v1/job/" + id + "/", provider.Route{}},
		{"POST", "/v1/machine/H1-1E", provider.Route{}},
		{"GET", "/v1/machine/H1-1E/calendar", provider.Route{}},
		{"GET", "/v1/machine/%2e%2e", provider.Route{}},
		{"GET", "/v1/user", provider.Route{}},
		{"GET", "/v1/calendar", provider.Route{}},
		{"POST", "/auth/login", provider.Route{}},
		{"GET", "/", provider.Route{}},
		{"GET", "/v2/job/" + id, provider.Route{}},
	} {
		if got := (Adapter{}).Route(tc.method, tc.path); got != tc.want {
			t.Errorf("%s %s = %+v, want %+v", tc.method, tc.path, got, tc.want)
		}
	}
}

func TestJobID(t *testing.T) {
	got, err := Adapter{}.JobID([]byte(`{"job":"abc123","status":"queued"}`))
	if err != nil || got != "abc123" {
		t.Fatalf("JobID = %q, %v", got, err)
	}
	for _, body := range []string{`{}`, `{"job":""}`, `{"job":"a/b"}`, `{"job":7}`, `not json`, `{"job":"../login"}`} {
		if id, err := (Adapter{}).JobID([]byte(body)); err == nil {
			t.Errorf("JobID(%s) = %q, want an error", body, id)
		}
	}
}

func TestOutcome(t *testing.T) {
	a := Adapter{USDPerHQC: 12.5}
	for _, tc := range []struct {
		body     string
		status   string
		terminal bool
		usd      float64 // -1: none
	}{
		{`{"status":"queued","cost":11.2}`, "queued", false, -1},
		{`{"status":"running","cost":11.2}`, "running", false, -1},
		{`{"status":"canceling"}`, "canceling", false, -1},
		{`{"status":"completed","cost":11.2,"results":{"c":["00"]}}`, "completed", true, 140},
		{`{"status":"completed"}`, "completed", true, -1},
		{`{"status":"failed","cost":11.2}`, "failed", true, -1},
		{`{"status":"canceled","cost":11.2}`, "canceled", true, -1},
		{`{"status":"completed","cost":-1}`, "completed", true, -1},
	} {
		o, err := a.Outcome([]byte(tc.body))
		if err != nil || o.Status != tc.status || o.Terminal != tc.terminal {
			t.Fatalf("%s: %+v %v", tc.body, o, err)
		}
		switch {
		case tc.usd < 0 && o.CostUSD != nil:
			t.Errorf("%s: cost %v, want none", tc.body, *o.CostUSD)
		case tc.usd >= 0 && (o.CostUSD == nil || *o.CostUSD != tc.usd):
			t.Errorf("%s: cost %v, want %v", tc.body, o.CostUSD, tc.usd)
		}
	}
	if o, _ := (Adapter{}).Outcome([]byte(`{"status":"completed","cost":3}`)); o.CostUSD != nil {
		t.Error("cost in USD without a price")
	}
	for _, body := range []string{`{}`, `not json`, `{"status":5}`} {
		if _, err := a.Outcome([]byte(body)); err == nil {
			t.Errorf("Outcome(%s) accepted", body)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	req := httptest.NewRequest(http.MethodPost, "https://qapi.quantinuum.com/v1/job", nil)
	req.Header = agentHeaders()
	req.Header.Add("Authorization", "Bearer second")
	req.Header.Set("Proxy-Authorization", "Basic eA==")
	req.Header.Set("X-Api-Key", "k")
	if err := (Adapter{}).Authenticate(context.Background(), req, nil, provider.Credential{Secret: "id-token-123"}); err != nil {
		t.Fatal(err)
	}
	if got := req.Header.Values("Authorization"); len(got) != 1 || got[0] != "id-token-123" {
		t.Fatalf("Authorization = %q, want the raw id-token only", got)
	}
	for _, h := range []string{"Cookie", "Proxy-Authorization", "X-Api-Key"} {
		if req.Header.Get(h) != "" {
			t.Errorf("%s survived", h)
		}
	}
	for _, bad := range []string{"", "two words", "id\r\nX-Evil: 1", "ünicode"} {
		req := httptest.NewRequest(http.MethodGet, "https://qapi.quantinuum.com/v1/machine/", nil)
		req.Header.Set("Authorization", jobToken)
		if err := (Adapter{}).Authenticate(context.Background(), req, nil, provider.Credential{Secret: bad}); err == nil {
			t.Errorf("Authenticate accepted secret %q", bad)
		}
		if req.Header.Get("Authorization") != "" {
			t.Errorf("secret %q: the caller's token survived a failed Authenticate", bad)
		}
	}
}

func TestWriteError(t *testing.T) {
	w := httptest.NewRecorder()
	Adapter{}.WriteError(w, http.StatusForbidden, "job token is for device H2-1E")
	var body struct {
		Error struct {
			Code int    `json:"code"`
			Text string `json:"text"`
		} `json:"error"`
	}
	if w.Code != 403 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d type %q", w.Code, w.Header().Get("Content-Type"))
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != 403 || body.Error.Text != "job token is for device H2-1E" {
		t.Fatalf("body %s (%v)", w.Body, err)
	}
}
