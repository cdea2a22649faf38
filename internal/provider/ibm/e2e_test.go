package ibm

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/circuit/qasm"
	"github.com/qbroker/qbroker/internal/provider"
	"github.com/qbroker/qbroker/internal/sim/ibmsim"
)

const jobToken = "qbroker-job-token.eyJzdWIiOiJhZ2VudCJ9.sig"

// submitBell runs the gateway's submit steps for one job: Token, Route,
// ParseSubmit, Prepare, Authenticate, send, JobID.
func submitBell(t *testing.T, s *emu, a Adapter, cred provider.Credential, circuit string, shots int, extra ...string) string {
	t.Helper()
	const rest = "/api/v1/jobs"
	hdr := clientHeader(jobToken, extra...)
	if tok, ok := a.Token(hdr); !ok || tok != jobToken {
		t.Fatalf("Token = %q, %v", tok, ok)
	}
	if r := a.Route(http.MethodPost, rest); r.Kind != provider.Submit {
		t.Fatalf("Route(POST %s) = %+v", rest, r)
	}
	body := samplerJob(kingston, circuit, shots)
	sub, err := a.ParseSubmit(body)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Device != kingston || sub.Shots != shots || sub.ProgramSHA256 != qasm.Digest([]byte(circuit)) || sub.Qubits != 2 {
		t.Fatalf("ParseSubmit = %+v", sub)
	}
	prepared, err := a.Prepare(body, provider.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	ans := s.forward(t, a, http.MethodPost, rest, hdr, prepared, cred)
	if ans.status != http.StatusOK {
		t.Fatalf("submit: %d %s", ans.status, ans.body)
	}
	id, err := a.JobID(ans.body)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// waitJob polls GET /api/v1/jobs/{id} through the adapter until Outcome
// says the job is terminal.
func waitJob(t *testing.T, s *emu, a Adapter, cred provider.Credential, id string) provider.Outcome {
	t.Helper()
	rest := "/api/v1/jobs/" + id
	if r := a.Route(http.MethodGet, rest); r.Kind != provider.Read || r.JobID != id || r.Action != "ReadJob" {
		t.Fatalf("Route(GET %s) = %+v", rest, r)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ans := s.forward(t, a, http.MethodGet, rest, clientHeader("broker-token"), nil, cred)
		if ans.status != http.StatusOK {
			t.Fatalf("get job: %d %s", ans.status, ans.body)
		}
		o, err := a.Outcome(ans.body)
		if err != nil {
			t.Fatal(err)
		}
		if o.Terminal {
			return o
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("job %s did not finish", id)
	return provider.Outcome{}
}

// TestBellEndToEnd submits a Bell pair as the gateway would, reads the job
// to completion and its results, and checks the counts are ~50/50 00/11;
// then checks what went upstream: the IAM token and instance CRN on every
// Runtime call, and never the API key, the qbroker token or the client's
// own credential headers.
func TestBellEndToEnd(t *testing.T) {
	s := newEmu(t, nil)
	a := s.adapter()
	a.USDPerQPUSecond = 1.6
	cred := s.mint(t)

	// The client also sends IBM's API-key fallback header with the root key
	// and another instance's CRN: neither may reach the service.
	id := submitBell(t, s, a, cred, bellISA, 4000,
		"X-Api-Key", rootKey, "Service-CRN", otherCRN, "Cookie", "session="+rootKey)
	o := waitJob(t, s, a, cred, id)
	if o.Status != ibmsim.StatusCompleted || o.CostUSD == nil || *o.CostUSD <= 0 {
		t.Fatalf("outcome = %+v", o)
	}

	rest := "/api/v1/jobs/" + id + "/results"
	if r := a.Route(http.MethodGet, rest); r.Kind != provider.Read || r.Action != "ReadResult" || r.Result || r.JobID != id {
		t.Fatalf("Route(GET %s) = %+v", rest, r)
	}
	ans := s.forward(t, a, http.MethodGet, rest, clientHeader("broker-token"), nil, cred)
	if ans.status != http.StatusOK {
		t.Fatalf("results: %d %s", ans.status, ans.body)
	}
	var res ibmsim.Result
	if err := json.Unmarshal(ans.body, &res); err != nil || len(res.Results) != 1 {
		t.Fatalf("results %s: %v", ans.body, err)
	}
	counts, err := ibmsim.Counts(res.Results[0].Data["c"])
	if err != nil {
		t.Fatal(err)
	}
	n00, n11 := counts["00"], counts["11"]
	if n00+n11 != 4000 {
		t.Fatalf("counts %v: a Bell pair gives only 00 and 11", counts)
	}
	// Binomial(4000, 1/2): σ ≈ 31.6; six σ is about 190.
	if math.Abs(float64(n00)-2000) > 190 {
		t.Fatalf("counts %v are not ~50/50", counts)
	}

	crn := s.e.InstanceCRN()
	runtimeCalls := 0
	for _, r := range s.requests() {
		if r.path == "/identity/token" {
			continue
		}
		runtimeCalls++
		if got := r.header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+cred.Secret {
			t.Errorf("%s %s: Authorization %q", r.method, r.path, got)
		}
		if got := r.header.Values("Service-CRN"); len(got) != 1 || got[0] != crn {
			t.Errorf("%s %s: Service-CRN %q", r.method, r.path, got)
		}
		if r.header.Get("IBM-API-Version") != "2026-03-15" {
			t.Errorf("%s %s: the client's IBM-API-Version was not kept", r.method, r.path)
		}
		for k, vs := range r.header {
			for _, v := range vs {
				mustContainNot(t, r.method+" "+r.path+" header "+k, v, rootKey, jobToken, "broker-token")
			}
		}
		mustContainNot(t, r.method+" "+r.path+" body", string(r.body), rootKey, jobToken)
	}
	if runtimeCalls < 3 {
		t.Fatalf("only %d Runtime calls recorded", runtimeCalls)
	}
}

// TestRootKeyOnlyInIAMExchange: across mint, submit, read, cancel and the
// backend list, the API key is sent in exactly one place, the IAM
// exchange's form body, even when the client itself sends it as
// "Authorization: apikey", which the service would accept.
func TestRootKeyOnlyInIAMExchange(t *testing.T) {
	s := newEmu(t, func(c *ibmsim.Config) { c.StepDelay = 300 * time.Millisecond })
	a := s.adapter()
	cred := s.mint(t)
	apikeyClient := http.Header{"Authorization": {"apikey " + rootKey}, "Accept": {"application/json"}}
	if _, ok := a.Token(apikeyClient); ok {
		t.Fatal("Token read an apikey Authorization header as a qbroker token")
	}

	id := submitBell(t, s, a, cred, bellISA, 100)
	if ans := s.forward(t, a, http.MethodGet, "/api/v1/jobs/"+id, apikeyClient, nil, cred); ans.status != http.StatusOK {
		t.Fatalf("read: %d %s", ans.status, ans.body)
	}
	rest := "/api/v1/jobs/" + id + "/cancel"
	if r := a.Route(http.MethodPost, rest); r.Kind != provider.Cancel || r.JobID != id || r.Action != "CancelJob" {
		t.Fatalf("Route(POST %s) = %+v", rest, r)
	}
	if ans := s.forward(t, a, http.MethodPost, rest, apikeyClient, nil, cred); ans.status != http.StatusNoContent {
		t.Fatalf("cancel: %d %s", ans.status, ans.body)
	}
	if o := waitJob(t, s, a, cred, id); o.Status != ibmsim.StatusCancelled {
		t.Fatalf("after cancel: %+v", o)
	}
	if r := a.Route(http.MethodGet, "/api/v1/backends"); r.Kind != provider.Public {
		t.Fatalf("backends route = %+v", r)
	}
	if ans := s.forward(t, a, http.MethodGet, "/api/v1/backends", apikeyClient, nil, cred); ans.status != http.StatusOK || !bytes.Contains(ans.body, []byte(kingston)) {
		t.Fatalf("backends: %d %s", ans.status, ans.body)
	}

	iam := 0
	for _, r := range s.requests() {
		if r.method == http.MethodPost && r.path == "/identity/token" {
			iam++
			if !strings.Contains(string(r.body), "apikey="+rootKey) {
				t.Errorf("IAM exchange body lacks the key: %s", r.body)
			}
			continue
		}
		for k, vs := range r.header {
			for _, v := range vs {
				mustContainNot(t, r.method+" "+r.path+" header "+k, v, rootKey)
				if strings.HasPrefix(strings.ToLower(v), "apikey") {
					t.Errorf("%s %s: %s: %s forwarded", r.method, r.path, k, v)
				}
			}
		}
		mustContainNot(t, r.method+" "+r.path+" body", string(r.body), rootKey)
	}
	if iam != 1 {
		t.Fatalf("%d IAM exchanges, want 1", iam)
	}
}

// TestNonISAJobFails: a valid circuit outside the backend's basis passes
// the gateway, is accepted by the service and ends Failed, which Outcome
// reports as terminal.
func TestNonISAJobFails(t *testing.T) {
	s := newEmu(t, nil)
	a := s.adapter()
	cred := s.mint(t)
	id := submitBell(t, s, a, cred, bellNonISA, 100)
	if o := waitJob(t, s, a, cred, id); o.Status != ibmsim.StatusFailed || !o.Terminal || o.CostUSD != nil {
		t.Fatalf("outcome = %+v", o)
	}
}

// TestUpstreamRefusesOtherInstance: the adapter's Service-CRN is what the
// service authorizes; a wrong one is refused upstream, so the field is
// what scopes the instance.
func TestUpstreamRefusesOtherInstance(t *testing.T) {
	s := newEmu(t, nil)
	cred := s.mint(t)
	a := Adapter{InstanceCRN: otherCRN}
	ans := s.forward(t, a, http.MethodGet, "/api/v1/backends", http.Header{}, nil, cred)
	if ans.status != http.StatusForbidden || errCode(ans.body) != 1200 {
		t.Fatalf("other instance: %d %s", ans.status, ans.body)
	}
}
