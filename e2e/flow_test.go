package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/circuit"
)

// bellCircuit is the demo's program: H on qubit 0, CNOT 0→1.
const bellCircuit = `{"qubits":2,"gateset":"qis","circuit":[{"gate":"h","target":0},{"gate":"cnot","control":0,"target":1}]}`

const shots = 1000

// login does AppRole login over HTTP and returns the broker token.
func (a *agentHTTP) login(broker, roleID, secretID string) string {
	a.t.Helper()
	body, _ := json.Marshal(map[string]string{"role_id": roleID, "secret_id": secretID})
	var resp struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	a.expect(http.StatusOK, &resp, http.MethodPost, broker+"/v1/auth/approle/login", body)
	if !strings.HasPrefix(resp.Auth.ClientToken, "qbt_") {
		a.t.Fatalf("login returned client_token %q, want a qbt_ token", redact(resp.Auth.ClientToken))
	}
	return resp.Auth.ClientToken
}

// jobToken asks for a Bell-circuit job token on ionq/simulator.
func (a *agentHTTP) jobToken(broker, brokerToken, role string) string {
	a.t.Helper()
	digest, err := circuit.Digest([]byte(bellCircuit))
	if err != nil {
		a.t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"provider": "ionq", "device": "simulator", "shots": shots, "program_sha256": digest})
	var resp struct {
		Data struct {
			Token string `json:"token"`
		} `json:"data"`
	}
	a.expect(http.StatusOK, &resp, http.MethodPost, broker+"/v1/quantum/jobtoken/"+role, body, "X-Vault-Token: "+brokerToken)
	if resp.Data.Token == "" {
		a.t.Fatal("job token response has no token")
	}
	return resp.Data.Token
}

// bellJobBody is IonQ's v0.4 job request for the Bell circuit.
func bellJobBody() []byte {
	return fmt.Appendf(nil, `{"type":"ionq.circuit.v1","name":"e2e-bell","backend":"simulator","shots":%d,"input":%s}`, shots, bellCircuit)
}

// submit posts the Bell job to the gateway with the job token as IonQ API
// key and returns the status code and, on 201, the job id.
func (a *agentHTTP) submit(gateway, jobToken string) (int, string) {
	a.t.Helper()
	status, b := a.do(http.MethodPost, gateway+"/ionq/v0.4/jobs", bellJobBody(), "Authorization: apiKey "+jobToken)
	if status != http.StatusCreated {
		return status, ""
	}
	var sub struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &sub); err != nil || sub.ID == "" {
		a.t.Fatalf("submit answer %s: no job id (%v)", b, err)
	}
	return status, sub.ID
}

// counts waits for the job (reading with the broker token, as agents do)
// and returns its counts over shots, bitstrings with qubit 0 rightmost.
func (a *agentHTTP) counts(gateway, brokerToken, id string) map[string]int {
	a.t.Helper()
	var job struct {
		Status  string `json:"status"`
		Results struct {
			Probabilities struct {
				URL string `json:"url"`
			} `json:"probabilities"`
		} `json:"results"`
	}
	deadline := time.Now().Add(cmdTimeout)
	for {
		a.expect(http.StatusOK, &job, http.MethodGet, gateway+"/ionq/v0.4/jobs/"+id, nil, "Authorization: apiKey "+brokerToken)
		if job.Status == "completed" {
			break
		}
		if job.Status == "failed" || job.Status == "canceled" || time.Now().After(deadline) {
			a.t.Fatalf("job %s: status %q", id, job.Status)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
	if !strings.HasPrefix(job.Results.Probabilities.URL, "/") {
		a.t.Fatalf("results URL %q is not relative to the gateway", job.Results.Probabilities.URL)
	}
	var probs map[string]float64
	a.expect(http.StatusOK, &probs, http.MethodGet, gateway+job.Results.Probabilities.URL, nil, "Authorization: apiKey "+brokerToken)
	out := map[string]int{}
	for k, p := range probs {
		idx, err := strconv.Atoi(k)
		if err != nil {
			a.t.Fatalf("result key %q is not a basis-state index", k)
		}
		out[fmt.Sprintf("%02b", idx)] = int(math.Round(p * shots))
	}
	return out
}

// assertBell checks Bell statistics over 1000 shots: "00" and "11" each
// within 5 sigma of 500 (sigma = sqrt(1000·½·½) ≈ 15.8), no "01" or "10",
// and every shot accounted for.
func assertBell(t *testing.T, counts map[string]int) {
	t.Helper()
	bound := 5 * math.Sqrt(shots*0.5*0.5)
	total := 0
	for k, n := range counts {
		total += n
		switch k {
		case "00", "11", "01", "10":
		default:
			t.Errorf("unexpected outcome %q (%d) for a 2-qubit circuit", k, n)
		}
	}
	for _, k := range []string{"00", "11"} {
		if d := math.Abs(float64(counts[k]) - shots/2); d > bound {
			t.Errorf("counts[%q] = %d: |n-500| = %.0f > 5σ = %.1f", k, counts[k], d, bound)
		}
	}
	if odd := counts["01"] + counts["10"]; odd != 0 {
		t.Errorf("counts[01]+counts[10] = %d, want 0 for a Bell pair", odd)
	}
	if total != shots {
		t.Errorf("total counts = %d, want %d (%v)", total, shots, counts)
	}
}

// demoResult is what `qbroker demo --json` prints last.
type demoResult struct {
	JobID  string         `json:"job_id"`
	Device string         `json:"device"`
	Shots  int            `json:"shots"`
	Counts map[string]int `json:"counts"`
}

// parseDemo decodes the JSON object that ends the demo's stdout, for the
// default run (simulator, the default shots).
func parseDemo(t *testing.T, stdout string) demoResult {
	t.Helper()
	r := parseDemoResult(t, stdout)
	if r.JobID == "" || r.Device != "simulator" || r.Shots != shots {
		t.Fatalf("demo result %+v: want a job id, device simulator, %d shots", r, shots)
	}
	return r
}

// parseDemoResult decodes the JSON object that ends the demo's stdout.
func parseDemoResult(t *testing.T, stdout string) demoResult {
	t.Helper()
	i := strings.LastIndex(stdout, "\n{")
	if i < 0 {
		t.Fatalf("demo printed no JSON result:\n%s", stdout)
	}
	var r demoResult
	if err := json.Unmarshal([]byte(stdout[i+1:]), &r); err != nil {
		t.Fatalf("demo JSON: %v\n%s", err, stdout)
	}
	return r
}

// redact keeps a secret out of failure messages.
func redact(s string) string {
	if len(s) <= 8 {
		return "…"
	}
	return s[:6] + "…"
}
