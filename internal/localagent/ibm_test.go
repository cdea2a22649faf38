package localagent

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/policy"
	"github.com/qbroker/qbroker/internal/server"
	"github.com/qbroker/qbroker/internal/sim/ibmsim"
)

// bellIBM is a Bell pair in ibmsim's (Heron) basis.
const bellIBM = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\nqubit[2] q;\nbit[2] c;\n" +
	"rz(pi/2) q[0];\nsx q[0];\nrz(pi/2) q[0];\n" +
	"rz(pi/2) q[1];\nsx q[1];\nrz(pi/2) q[1];\n" +
	"cz q[0], q[1];\n" +
	"rz(pi/2) q[1];\nsx q[1];\nrz(pi/2) q[1];\n" +
	"c[0] = measure q[0];\nc[1] = measure q[1];\n"

// The IBM passthrough: a Qiskit Runtime REST client with the session's
// key as its bearer token runs a Sampler Bell job through the gateway on
// ibmsim (hardware: the person consents) and reads its results; the API
// key never reaches it; a second PUB or another device is refused before
// any job token is asked for.
func TestIBMPassthrough(t *testing.T) {
	const apiKey = "ibm-cloud-api-key-for-tests-0123456789"
	sim, err := ibmsim.New(ibmsim.Config{APIKey: apiKey, StepDelay: 5 * time.Millisecond, JobsPerMinute: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	var demo string
	for _, f := range policy.DefaultFiles() {
		if f.Name == "demo.cedar" {
			demo = string(f.Data)
		}
	}
	path := filepath.Join(t.TempDir(), "policies.cedar")
	if err := os.WriteFile(path, []byte(demo+`
@id("q-kingston") permit (principal in Role::"q", action == Action::"SubmitJob", resource == Device::"ibm/kingston");
@id("q-own-jobs") permit (principal in Role::"q", action in [Action::"ReadJob", Action::"ReadResult", Action::"CancelJob"], resource is Job)
when { resource.owner == principal };
`), 0o600); err != nil {
		t.Fatal(err)
	}
	dev := startDev(t, server.DevOptions{PolicyFiles: []string{path}, Approvals: &config.Approvals{},
		IBM: config.IBM{InstanceCRN: sim.InstanceCRN(), BaseURL: srv.URL, IAMURL: srv.URL}})
	ctx := context.Background()
	root := client.New(dev.BrokerURL, nil).WithToken(dev.RootToken)
	if err := root.SetProviderCredential(ctx, "ibm", apiKey); err != nil {
		t.Fatal(err)
	}
	if _, err := root.PutRole(ctx, "q", api.Role{Provider: "ibm", Devices: []string{"kingston"}, MaxShots: 2000, Owner: "q", Team: "q"}); err != nil {
		t.Fatal(err)
	}
	rid, _ := root.RoleID(ctx, "q")
	sid, err := root.NewSecretID(ctx, "q", api.SecretIDRequest{Agent: "qiskit-agent"})
	if err != nil {
		t.Fatal(err)
	}
	var asked []Request
	allow := askerFunc(func(_ context.Context, r Request) (Answer, error) { asked = append(asked, r); return Allow, nil })
	h := startDaemon(t, dev, func(c *Config) {
		c.GatewayURL = dev.GatewayURL
		c.Login = func(ctx context.Context, cl *client.Client) (*api.Auth, error) {
			return cl.AppRoleLogin(ctx, rid, sid.SecretID)
		}
		c.Consent = NewConsent(Rules{Hardware: true, CostAboveUSD: -1}, allow, c.Logger)
	})
	if _, err := h.client().OpenSession(ctx, SessionRequest{Role: "q", Provider: "ibm"}); err == nil {
		t.Fatal("an ibm session without a device")
	}
	s, err := h.client().OpenSession(ctx, SessionRequest{Role: "q", Provider: "ibm", Device: "kingston"})
	if err != nil {
		t.Fatal(err)
	}
	base, key := s.Env["IBM_QUANTUM_BASE_URL"], s.Env["IBM_QUANTUM_TOKEN"]
	call := func(method, p, auth string, body []byte) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+p, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if strings.Contains(string(out), apiKey) {
			t.Fatal("the IBM API key reached the agent")
		}
		return resp.StatusCode, string(out)
	}
	job := func(pubs ...any) []byte {
		b, _ := json.Marshal(map[string]any{"program_id": "sampler", "backend": "ibm_kingston", "params": map[string]any{"pubs": pubs, "version": 2}})
		return b
	}
	if st, out := call(http.MethodPost, "/api/v1/jobs", "", job([]any{bellIBM, nil, 1000})); st != http.StatusUnauthorized {
		t.Fatalf("no key: %d %s", st, out)
	}
	if st, out := call(http.MethodPost, "/api/v1/jobs", key, job([]any{bellIBM, nil, 1000}, []any{bellIBM, nil, 1000})); st != http.StatusBadRequest || !strings.Contains(out, "PUB") {
		t.Fatalf("two PUBs: %d %s", st, out)
	}
	if len(asked) != 0 {
		t.Fatal("consent was asked for a job that was refused anyway")
	}
	st, out := call(http.MethodPost, "/api/v1/jobs", key, job([]any{bellIBM, nil, 1000}))
	var created struct {
		ID string `json:"id"`
	}
	if st/100 != 2 || json.Unmarshal([]byte(out), &created) != nil || created.ID == "" {
		t.Fatalf("submit through the IBM passthrough: %d %s", st, out)
	}
	if len(asked) != 1 || asked[0].Kind != "qpu" || asked[0].Device != "kingston" || asked[0].Shots != 1000 {
		t.Fatalf("consent asked: %+v", asked)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, out := call(http.MethodGet, "/api/v1/jobs/"+created.ID, key, nil)
		if st == http.StatusOK && strings.Contains(out, `"Completed"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job status: %d %s", st, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	st, out = call(http.MethodGet, "/api/v1/jobs/"+created.ID+"/results", key, nil)
	var res ibmsim.Result
	if st != http.StatusOK || json.Unmarshal([]byte(out), &res) != nil || len(res.Results) != 1 {
		t.Fatalf("results: %d %s", st, out)
	}
	counts, err := ibmsim.Counts(res.Results[0].Data["c"])
	if err != nil || counts["00"] < 400 || counts["11"] < 400 {
		t.Fatalf("Bell counts %v %v", counts, err)
	}
}
