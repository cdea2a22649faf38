package ibm

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/qbroker/qbroker/internal/provider"
)

const testCRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/0123456789abcdef0123456789abcdef:7f3c2a10-5b6e-4c1d-9e8f-0a1b2c3d4e5f::"

func TestRoute(t *testing.T) {
	const id = "c5dge2d3rn7breq27i9g"
	cases := []struct {
		method, path string
		want         provider.Route
	}{
		{"POST", "/api/v1/jobs", provider.Route{Kind: provider.Submit}},
		{"GET", "/api/v1/jobs/" + id, provider.Route{Kind: provider.Read, JobID: id, Action: "ReadJob"}},
		{"GET", "/api/v1/jobs/" + id + "/results", provider.Route{Kind: provider.Read, JobID: id, Action: "ReadResult"}},
		{"POST", "/api/v1/jobs/" + id + "/cancel", provider.Route{Kind: provider.Cancel, JobID: id, Action: "CancelJob"}},
		{"GET", "/api/v1/backends", provider.Route{Kind: provider.Public}},
		{"GET", "/api/v1/backends/ibm_kingston/configuration", provider.Route{Kind: provider.Public}},
		{"GET", "/api/v1/backends/ibm_kingston/properties", provider.Route{Kind: provider.Public}},
		{"GET", "/api/v1/backends/ibm_kingston/status", provider.Route{Kind: provider.Public}},
	}
	refused := []struct{ method, path string }{
		{"GET", "/api/v1/jobs"}, // every job of the instance, whoever ran it
		{"DELETE", "/api/v1/jobs/" + id},
		{"GET", "/api/v1/jobs/" + id + "/logs"},
		{"GET", "/api/v1/jobs/" + id + "/metrics"},
		{"GET", "/api/v1/jobs/" + id + "/interim_results"},
		{"PUT", "/api/v1/jobs/" + id + "/tags"},
		{"GET", "/api/v1/jobs/" + id + "/cancel"},
		{"POST", "/api/v1/jobs/" + id},
		{"PUT", "/api/v1/jobs"},
		{"POST", "/api/v1/jobs/"},
		{"POST", "/api/v1//jobs"},
		{"POST", "/api/v1/sessions"},
		{"GET", "/api/v1/sessions/s1"},
		{"DELETE", "/api/v1/sessions/s1/close"},
		{"GET", "/api/v1/instance"},
		{"GET", "/api/v1/instances/usage"},
		{"GET", "/api/v1/instances/configuration"},
		{"GET", "/api/v1/backends/ibm_kingston/defaults"},
		{"GET", "/api/v1/backends/ibm_kingston"},
		{"POST", "/api/v1/backends"},
		{"GET", "/api/v1/jobs/..%2Fbackends"},
		{"GET", "/api/v1/jobs/a%2Fb/results"},
		{"GET", "/api/v1/jobs/" + id + "/results/"},
		{"GET", "/api/v1/backends/..%2Fjobs/status"},
		{"GET", "/identity/token"},
		{"POST", "/identity/token"},
		{"GET", "/api/v2/jobs/" + id},
		{"GET", "/jobs/" + id},
		{"GET", "/"},
	}
	a := Adapter{InstanceCRN: testCRN}
	for _, c := range cases {
		if got := a.Route(c.method, c.path); got != c.want {
			t.Errorf("%s %s = %+v, want %+v", c.method, c.path, got, c.want)
		}
	}
	for _, c := range refused {
		if got := a.Route(c.method, c.path); got.Kind != provider.Refused {
			t.Errorf("%s %s = %+v, want Refused", c.method, c.path, got)
		}
	}
}

func TestToken(t *testing.T) {
	ok := map[string]http.Header{
		"bearer":       {"Authorization": {"Bearer tok.en"}},
		"lower bearer": {"Authorization": {"bearer tok.en"}},
	}
	for name, h := range ok {
		if tok, found := (Adapter{}).Token(h); !found || tok != "tok.en" {
			t.Errorf("%s: %q %v", name, tok, found)
		}
	}
	refused := map[string]http.Header{
		"none":         {},
		"apikey":       {"Authorization": {"apikey tok.en"}},
		"basic":        {"Authorization": {"Basic dG9rOmVu"}},
		"empty bearer": {"Authorization": {"Bearer "}},
		"two headers":  {"Authorization": {"Bearer a", "Bearer b"}},
		"two tokens":   {"Authorization": {"Bearer a b"}},
		"no scheme":    {"Authorization": {"tok.en"}},
	}
	for name, h := range refused {
		if tok, found := (Adapter{}).Token(h); found {
			t.Errorf("%s: read %q", name, tok)
		}
	}
}

// TestAuthenticateReplacesClientCredentials: only the forwarded headers
// survive; the client's Authorization (apikey or bearer), Service-CRN,
// cookies and other credential headers are gone; the IAM token and the
// configured CRN are set once each.
func TestAuthenticateReplacesClientCredentials(t *testing.T) {
	req := httptest.NewRequest(http.MethodPost, "https://quantum.cloud.ibm.com/api/v1/jobs", nil)
	for k, v := range map[string][]string{
		"Authorization":       {"apikey " + rootKey, "Bearer qbroker-token"},
		"Service-Crn":         {otherCRN},
		"Cookie":              {"s=" + rootKey},
		"X-Api-Key":           {rootKey},
		"Proxy-Authorization": {"Basic eA=="},
		"X-Forwarded-For":     {"10.0.0.1"},
		"Accept-Encoding":     {"gzip"},
		"Accept":              {"application/json"},
		"Content-Type":        {"application/json"},
		"User-Agent":          {"qbroker-gateway"},
		"Ibm-Api-Version":     {"2025-05-01"},
	} {
		req.Header[k] = v
	}
	a := Adapter{InstanceCRN: testCRN}
	if err := a.Authenticate(context.Background(), req, nil, provider.Credential{Secret: "iam.jwt.token"}); err != nil {
		t.Fatal(err)
	}
	want := http.Header{
		"Authorization":   {"Bearer iam.jwt.token"},
		"Service-Crn":     {testCRN},
		"Accept":          {"application/json"},
		"Content-Type":    {"application/json"},
		"User-Agent":      {"qbroker-gateway"},
		"Ibm-Api-Version": {"2025-05-01"},
	}
	if len(req.Header) != len(want) {
		t.Errorf("headers = %v, want %v", req.Header, want)
	}
	for k, v := range want {
		if got := req.Header.Values(k); len(got) != 1 || got[0] != v[0] {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	for k, vs := range req.Header {
		for _, v := range vs {
			mustContainNot(t, "header "+k, v, rootKey, "qbroker-token")
		}
	}
}

func TestAuthenticateAPIVersion(t *testing.T) {
	for _, c := range []struct{ sent, configured, want string }{
		{"", "", DefaultAPIVersion},
		{"", "2025-05-01", "2025-05-01"},
		{"2026-03-15", "2025-05-01", "2026-03-15"},
		{"2026-03-15\r\nX: y", "", DefaultAPIVersion},
		{"latest", "", DefaultAPIVersion},
	} {
		req := httptest.NewRequest(http.MethodGet, "https://quantum.cloud.ibm.com/api/v1/backends", nil)
		if c.sent != "" {
			req.Header["Ibm-Api-Version"] = []string{c.sent}
		}
		a := Adapter{InstanceCRN: testCRN, APIVersion: c.configured}
		if err := a.Authenticate(context.Background(), req, nil, provider.Credential{Secret: "t"}); err != nil {
			t.Fatal(err)
		}
		if got := req.Header.Get("IBM-API-Version"); got != c.want {
			t.Errorf("sent %q configured %q: got %q, want %q", c.sent, c.configured, got, c.want)
		}
	}
}

func TestAuthenticateRefusesWithoutCredentialOrInstance(t *testing.T) {
	for name, c := range map[string]struct {
		a    Adapter
		cred provider.Credential
	}{
		"no CRN":      {Adapter{}, provider.Credential{Secret: "t"}},
		"no token":    {Adapter{InstanceCRN: testCRN}, provider.Credential{}},
		"token space": {Adapter{InstanceCRN: testCRN}, provider.Credential{Secret: "a\r\nX-Evil: 1"}},
	} {
		req := httptest.NewRequest(http.MethodGet, "https://quantum.cloud.ibm.com/api/v1/backends", nil)
		req.Header.Set("Authorization", "apikey "+rootKey)
		if err := c.a.Authenticate(context.Background(), req, nil, c.cred); err == nil {
			t.Errorf("%s: authenticated", name)
		}
	}
}

func TestJobID(t *testing.T) {
	if id, err := (Adapter{}).JobID([]byte(`{"id":"c5dge2d3rn7breq27i9g","backend":"ibm_kingston"}`)); err != nil || id != "c5dge2d3rn7breq27i9g" {
		t.Errorf("JobID = %q, %v", id, err)
	}
	for _, body := range []string{``, `{}`, `{"id":""}`, `{"id":"../jobs"}`, `{"id":"a/b"}`, `{"id":7}`, `[]`} {
		if id, err := (Adapter{}).JobID([]byte(body)); err == nil {
			t.Errorf("JobID(%s) = %q", body, id)
		}
	}
}

func TestOutcome(t *testing.T) {
	cases := []struct {
		body     string
		status   string
		terminal bool
	}{
		{`{"state":{"status":"Queued"},"status":"Queued"}`, "Queued", false},
		{`{"state":{"status":"Running"},"status":"Running"}`, "Running", false},
		{`{"state":{"status":"Completed"},"status":"Completed"}`, "Completed", true},
		{`{"state":{"status":"Failed","reason":"Job not valid."},"status":"Failed"}`, "Failed", true},
		{`{"state":{"status":"Cancelled"},"status":"Cancelled"}`, "Cancelled", true},
		{`{"status":"Cancelled - Ran too long"}`, "Cancelled - Ran too long", true},
		{`{"status":"DONE"}`, "DONE", true},
		{`{"status":"ERROR"}`, "ERROR", true},
		{`{"status":"QUEUED"}`, "QUEUED", false},
		{`{"status":"INITIALIZING"}`, "INITIALIZING", false},
	}
	for _, c := range cases {
		o, err := (Adapter{}).Outcome([]byte(c.body))
		if err != nil || o.Status != c.status || o.Terminal != c.terminal || o.CostUSD != nil {
			t.Errorf("Outcome(%s) = %+v, %v", c.body, o, err)
		}
	}
	for _, body := range []string{``, `{}`, `{"state":{}}`, `[1]`} {
		if o, err := (Adapter{}).Outcome([]byte(body)); err == nil {
			t.Errorf("Outcome(%s) = %+v", body, o)
		}
	}
	priced := Adapter{USDPerQPUSecond: 1.6}
	o, err := priced.Outcome([]byte(`{"status":"Completed","usage":{"qpu_charge_time_seconds":3,"status":"complete"}}`))
	if err != nil || o.CostUSD == nil || math.Abs(*o.CostUSD-4.8) > 1e-9 {
		t.Errorf("priced outcome = %+v, %v", o, err)
	}
	o, err = priced.Outcome([]byte(`{"status":"Completed","usage":{"quantum_seconds":2}}`))
	if err != nil || o.CostUSD == nil || math.Abs(*o.CostUSD-3.2) > 1e-9 {
		t.Errorf("quantum_seconds outcome = %+v, %v", o, err)
	}
	if o, _ := priced.Outcome([]byte(`{"status":"Running"}`)); o.CostUSD != nil {
		t.Errorf("cost without usage: %v", *o.CostUSD)
	}
	if o, _ := (Adapter{}).Outcome([]byte(`{"status":"Completed","usage":{"qpu_charge_time_seconds":3}}`)); o.CostUSD != nil {
		t.Errorf("cost without a price: %v", *o.CostUSD)
	}
}

func TestWriteError(t *testing.T) {
	for status, code := range map[int]int{400: 1208, 401: 1201, 403: 1200, 404: 1291, 413: 1208, 429: 1429, 502: 1502, 503: 1503} {
		rec := httptest.NewRecorder()
		(Adapter{}).WriteError(rec, status, "job token is for device x")
		var ec struct {
			Errors []struct {
				Code     int    `json:"code"`
				Message  string `json:"message"`
				MoreInfo string `json:"more_info"`
			} `json:"errors"`
			Trace string `json:"trace"`
		}
		if rec.Code != status || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%d: status %d, type %q", status, rec.Code, rec.Header().Get("Content-Type"))
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &ec); err != nil || len(ec.Errors) != 1 || ec.Errors[0].Code != code ||
			ec.Errors[0].Message != "job token is for device x" || len(ec.Trace) != 36 || !strings.HasPrefix(ec.Errors[0].MoreInfo, "https://") {
			t.Errorf("%d: %s", status, rec.Body.Bytes())
		}
	}
}
