package azure

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/qbroker/qbroker/internal/provider"
)

const jobID = "5b3a8c2e-1f4d-4e6a-9b7c-0d1e2f3a4b5c"

func TestRoute(t *testing.T) {
	a := newTestAdapter(t, "https://eastus.quantum.azure.com", nil)
	job := wsPath + "/jobs/" + jobID
	for _, tc := range []struct {
		method, path string
		want         provider.Route
	}{
		{http.MethodPut, job, provider.Route{Kind: provider.Submit}},
		{http.MethodGet, job, provider.Route{Kind: provider.Read, JobID: jobID, Action: "ReadJob", Result: true}},
		{http.MethodGet, strings.ToUpper(job[:14]) + job[14:], provider.Route{Kind: provider.Read, JobID: jobID, Action: "ReadJob", Result: true}},
		{http.MethodGet, wsPath + "/jobs/" + strings.ToUpper(jobID), provider.Route{Kind: provider.Read, JobID: jobID, Action: "ReadJob", Result: true}},
		{http.MethodGet, job + "/output", provider.Route{Kind: provider.Read, JobID: jobID, Action: "ReadResult", Result: true}},
		{http.MethodPost, job + ":cancel", provider.Route{Kind: provider.Cancel, JobID: jobID, Action: "CancelJob"}},
		{http.MethodPost, job + "%3Acancel", provider.Route{Kind: provider.Cancel, JobID: jobID, Action: "CancelJob"}},
		// Refused: other operations, other workspaces, malformed ids.
		{http.MethodDelete, job, provider.Route{}},
		{http.MethodGet, wsPath + "/jobs", provider.Route{}},
		{http.MethodGet, wsPath + "/providerStatus", provider.Route{}},
		{http.MethodGet, wsPath + "/quotas", provider.Route{}},
		{http.MethodPut, wsPath + "/sessions/" + jobID, provider.Route{}},
		{http.MethodPatch, wsPath + "/jobUpdateOptions/" + jobID, provider.Route{}},
		{http.MethodPost, wsPath + "/storage/sasUri", provider.Route{}},
		{http.MethodPost, job + ":delete", provider.Route{}},
		{http.MethodPut, wsPath + "/jobs/not-a-guid", provider.Route{}},
		{http.MethodPut, job + "/", provider.Route{}},
		{http.MethodPut, strings.Replace(job, testWorkspace, "other-ws", 1), provider.Route{}},
		{http.MethodPut, strings.Replace(job, testSub, "00000000-0000-0000-0000-000000000002", 1), provider.Route{}},
		{http.MethodPut, strings.Replace(job, "/resourceGroups/"+testRG, "/resourceGroups/"+testRG+"%2Fx", 1), provider.Route{}},
		{http.MethodPut, "/storage/qbroker-x/inputData", provider.Route{}},
	} {
		if got := a.Route(tc.method, tc.path); got != tc.want {
			t.Errorf("%s %s: %+v, want %+v", tc.method, tc.path, got, tc.want)
		}
	}
	for _, tc := range []struct{ method, path, want string }{
		{http.MethodPost, wsPath + "/storage/sasUri", UploadGrant},
		{http.MethodGet, wsPath + "/storage/sasUri", ""},
		{http.MethodPut, "/storage/qbroker-x/inputData", UploadStaging},
		{http.MethodGet, "/storage/qbroker-x", UploadStaging},
		{http.MethodPut, wsPath + "/jobs/" + jobID, ""},
		{http.MethodPost, strings.Replace(wsPath, testWorkspace, "other-ws", 1) + "/storage/sasUri", ""},
	} {
		if got := a.UploadRoute(tc.method, tc.path); got != tc.want {
			t.Errorf("UploadRoute %s %s: %q, want %q", tc.method, tc.path, got, tc.want)
		}
	}
}

func TestToken(t *testing.T) {
	a := &Adapter{}
	for _, tc := range []struct {
		h    http.Header
		want string
		ok   bool
	}{
		{http.Header{"Authorization": {"Bearer jt.x.y"}}, "jt.x.y", true},
		{http.Header{"Authorization": {"bearer  jt "}}, "jt", true},
		{http.Header{"X-Ms-Quantum-Api-Key": {"jt"}}, "jt", true},
		{http.Header{"Authorization": {"Bearer a", "Bearer b"}}, "", false},
		{http.Header{"Authorization": {"Basic abc"}}, "", false},
		{http.Header{"Authorization": {"Bearer "}}, "", false},
		{http.Header{"Authorization": {"Basic abc"}, "X-Ms-Quantum-Api-Key": {"jt"}}, "", false},
		{http.Header{}, "", false},
	} {
		got, ok := a.Token(tc.h)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%v: %q %v", tc.h, got, ok)
		}
	}
}

func TestAuthenticateReplacesClientCredentials(t *testing.T) {
	a := newTestAdapter(t, "https://eastus.quantum.azure.com", nil)
	req := httptest.NewRequest(http.MethodPut, "https://eastus.quantum.azure.com"+wsPath+"/jobs/"+jobID+"?api-version=2022-09-12-preview&api-version=x&evil=1", nil)
	req.Header.Set("Authorization", "Bearer the-agents-job-token")
	req.Header.Set(APIKeyHeader, "the-agents-key")
	req.Header.Set("Cookie", "a=b")
	if err := a.Authenticate(context.Background(), req, nil, provider.Credential{Secret: "entra-token"}); err != nil {
		t.Fatal(err)
	}
	if got := req.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer entra-token" {
		t.Fatalf("Authorization %v", got)
	}
	if req.Header.Get(APIKeyHeader) != "" || req.Header.Get("Cookie") != "" {
		t.Fatal("client credentials forwarded")
	}
	if req.URL.RawQuery != "api-version="+DefaultAPIVersion {
		t.Fatalf("query %q", req.URL.RawQuery)
	}
	// The Entra token goes to the workspace endpoint only.
	other := httptest.NewRequest(http.MethodGet, "https://attacker.example"+wsPath+"/jobs/"+jobID, nil)
	if err := a.Authenticate(context.Background(), other, nil, provider.Credential{Secret: "entra-token"}); err == nil || other.Header.Get("Authorization") != "" {
		t.Fatal("token attached to another host")
	}
	if err := a.Authenticate(context.Background(), req, nil, provider.Credential{}); err == nil {
		t.Fatal("empty credential accepted")
	}
}

func TestWriteErrorJobIDOutcome(t *testing.T) {
	a := &Adapter{}
	w := httptest.NewRecorder()
	a.WriteError(w, http.StatusForbidden, "job token is for device x")
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || w.Code != 403 || e.Error.Code != "AuthorizationFailed" ||
		e.Error.Message != "job token is for device x" || w.Header().Get("x-ms-error-code") != "AuthorizationFailed" {
		t.Fatalf("WriteError: %d %s %v", w.Code, w.Body, w.Header())
	}
	if id, err := a.JobID([]byte(`{"id":"` + strings.ToUpper(jobID) + `","status":"Waiting"}`)); err != nil || id != jobID {
		t.Fatalf("JobID: %q %v", id, err)
	}
	for _, bad := range []string{`{}`, `{"id":"x"}`, `not json`} {
		if _, err := a.JobID([]byte(bad)); err == nil {
			t.Errorf("JobID(%s) accepted", bad)
		}
	}
	for _, tc := range []struct {
		body     string
		status   string
		terminal bool
		cost     float64 // -1: none
	}{
		{`{"status":"Waiting"}`, "Waiting", false, -1},
		{`{"status":"Executing","costEstimate":{"currencyCode":"USD","estimatedTotal":1.5}}`, "Executing", false, 1.5},
		{`{"status":"Succeeded","costEstimate":{"currencyCode":"USD","estimatedTotal":0.25}}`, "Succeeded", true, 0.25},
		{`{"status":"Failed","costEstimate":{"currencyCode":"EUR","estimatedTotal":3}}`, "Failed", true, -1},
		{`{"status":"Cancelled","costEstimate":null}`, "Cancelled", true, -1},
	} {
		o, err := a.Outcome([]byte(tc.body))
		if err != nil || o.Status != tc.status || o.Terminal != tc.terminal || (tc.cost < 0) != (o.CostUSD == nil) || (o.CostUSD != nil && *o.CostUSD != tc.cost) {
			t.Errorf("Outcome(%s) = %+v %v", tc.body, o, err)
		}
	}
	if _, err := a.Outcome([]byte(`{"id":"x"}`)); err == nil {
		t.Error("Outcome without status accepted")
	}
}

func TestNewValidatesConfig(t *testing.T) {
	_, err := New(Config{Endpoint: "ftp://x", Storage: []string{"https://a.blob.core.windows.net/path"}, SubscriptionID: "x", ResourceGroup: "", Workspace: "w",
		PublicURL: "https://gw?x=1", Prefix: "azure/", Staging: StagingLimits{MaxBlobBytes: 10, MaxBytes: 5}})
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"endpoint", "storage[0]", "subscription", "resource group", "workspace", "prefix", "public URL", "staging"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not report %s: %v", want, err)
		}
	}
}
