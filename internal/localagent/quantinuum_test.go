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
	"github.com/qbroker/qbroker/internal/sim/quantinuumsim"
)

const bellQASM2 = "OPENQASM 2.0;\ninclude \"hqslib1.inc\";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\nmeasure q[0] -> c[0];\nmeasure q[1] -> c[1];\n"

// The Quantinuum passthrough: a client sending the session's key raw (as
// Quantinuum's clients send an id-token) runs a Bell job through the
// gateway on quantinuumsim and reads it; the account's password never
// reaches it; another session cannot read the job.
func TestQuantinuumPassthrough(t *testing.T) {
	const email, password = "lab@example.test", "quantinuum-password-for-tests-0123"
	sim, err := quantinuumsim.New(quantinuumsim.Config{Email: email, Password: password, StepDelay: 2 * time.Millisecond})
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
@id("h-emulator") permit (principal in Role::"h", action == Action::"SubmitJob", resource == Device::"quantinuum/h1-1e");
@id("h-own-jobs") permit (principal in Role::"h", action in [Action::"ReadJob", Action::"ReadResult", Action::"CancelJob"], resource is Job)
when { resource.owner == principal };
`), 0o600); err != nil {
		t.Fatal(err)
	}
	dev := startDev(t, server.DevOptions{PolicyFiles: []string{path}, Approvals: &config.Approvals{},
		Quantinuum: config.Quantinuum{Enabled: true, BaseURL: srv.URL, MaxCostHQC: 50}})
	ctx := context.Background()
	root := client.New(dev.BrokerURL, nil).WithToken(dev.RootToken)
	if err := root.SetProviderCredential(ctx, "quantinuum", email+":"+password); err != nil {
		t.Fatal(err)
	}
	if _, err := root.PutRole(ctx, "h", api.Role{Provider: "quantinuum", Devices: []string{"h1-1e"}, MaxShots: 1000, Owner: "h", Team: "h"}); err != nil {
		t.Fatal(err)
	}
	rid, _ := root.RoleID(ctx, "h")
	sid, err := root.NewSecretID(ctx, "h", api.SecretIDRequest{Agent: "h-agent"})
	if err != nil {
		t.Fatal(err)
	}
	h := startDaemon(t, dev, func(c *Config) {
		c.GatewayURL = dev.GatewayURL
		c.Login = func(ctx context.Context, cl *client.Client) (*api.Auth, error) {
			return cl.AppRoleLogin(ctx, rid, sid.SecretID)
		}
	})
	s, err := h.client().OpenSession(ctx, SessionRequest{Role: "h", Provider: "quantinuum", Device: "h1-1e"})
	if err != nil {
		t.Fatal(err)
	}
	base, key := s.Env["QUANTINUUM_BASE_URL"], s.Env["QUANTINUUM_TOKEN"]
	call := func(method, p, auth string, body []byte) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+p, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if strings.Contains(string(out), password) {
			t.Fatal("the Quantinuum password reached the agent")
		}
		return resp.StatusCode, string(out)
	}
	job, _ := json.Marshal(map[string]any{"machine": "H1-1E", "name": "bell", "language": "OPENQASM 2.0", "program": bellQASM2, "count": 500, "priority": "normal"})
	if st, out := call(http.MethodPost, "/v1/job", "", job); st != http.StatusUnauthorized {
		t.Fatalf("no key: %d %s", st, out)
	}
	st, out := call(http.MethodPost, "/v1/job", key, job)
	var created struct {
		Job string `json:"job"`
	}
	if st/100 != 2 || json.Unmarshal([]byte(out), &created) != nil || created.Job == "" {
		t.Fatalf("submit through the Quantinuum passthrough: %d %s", st, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, out := call(http.MethodGet, "/v1/job/"+created.Job, key, nil)
		if st == http.StatusOK && strings.Contains(out, `"completed"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job: %d %s", st, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	other, err := h.client().OpenSession(ctx, SessionRequest{Role: "h", Provider: "quantinuum", Device: "h1-1e"})
	if err != nil {
		t.Fatal(err)
	}
	if st, out := call(http.MethodGet, "/v1/job/"+created.Job, other.Env["QUANTINUUM_TOKEN"], nil); st != http.StatusNotFound {
		t.Fatalf("another session reads the job: %d %s", st, out)
	}
}
