package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/provider/azure"
	"github.com/qbroker/qbroker/internal/sim/azuresim"
)

// Azure Quantum end to end through the real gateway: the broker holds the
// service principal's secret and mints Entra tokens; the agent's SDK flow
// (ask for a container, upload the circuit, create the job) goes to the
// gateway, which receives the upload itself, checks the circuit against
// the job token when the job is created, redeems it, uploads exactly those
// bytes to the workspace and creates the job; the owner reads the job and
// its output with its broker token.
func TestAzureThroughGateway(t *testing.T) {
	const (
		tenant, client, secret = "72f988bf-86f1-41af-91ab-2d7cd011db47", "b3a1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "s3cr3t~value-0123456789abcdef"
		sub, rg, ws            = "00000000-1111-2222-3333-444444444444", "rg-quantum", "qws"
	)
	sim, err := azuresim.New(azuresim.Config{TenantID: tenant, ClientID: client, ClientSecret: secret,
		SubscriptionID: sub, ResourceGroup: rg, Workspace: ws, StepDelay: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	path := filepath.Join(t.TempDir(), "policies.cedar")
	writeAtomic(t, path, demoPolicy(t)+`
@id("az-sim") permit (principal in Role::"az", action == Action::"SubmitJob", resource == Device::"azure/ionq.simulator");
@id("az-own-jobs") permit (principal in Role::"az", action in [Action::"ReadJob", Action::"ReadResult", Action::"CancelJob"], resource is Job)
when { resource.owner == principal };
`)
	d := startDevWith(t, DevOptions{PolicyFiles: []string{path}, Approvals: &config.Approvals{},
		Azure: config.Azure{Endpoint: srv.URL, SubscriptionID: sub, ResourceGroup: rg, Workspace: ws, Authority: srv.URL}})
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 20 * time.Second}}
	want(t, "store the service principal", e.broker(http.MethodPost, "/v1/sys/providers/azure/credential", d.RootToken,
		fmt.Sprintf(`{"api_key":%q}`, tenant+":"+client+":"+secret)), http.StatusNoContent)
	e.putRole("az", `{"provider":"azure","devices":["ionq.simulator"],"max_shots":1000}`)
	agent := e.mustLogin(e.roleID("az"), e.newSecretID("az", "azure-agent", "").SecretID)
	b, _ := json.Marshal(api.JobTokenRequest{Provider: "azure", Device: "ionq.simulator", Shots: 100, Program: json.RawMessage(bellInput), Format: api.FormatIonQ})
	r := e.broker(http.MethodPost, "/v1/quantum/jobtoken/az", agent.ClientToken, string(b))
	want(t, "azure job token", r, http.StatusOK)
	var jt api.JobTokenData
	decodeData(t, r, &jt)

	call := func(method, url, tok string, hdr map[string]string, body []byte) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if len(body) > 0 {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if bytes.Contains(out, []byte(secret)) {
			t.Fatal("the service principal's secret reached the agent")
		}
		return resp.StatusCode, out
	}
	wsURL := d.GatewayURL + "/azure/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/Microsoft.Quantum/workspaces/" + ws
	av := "api-version=" + azure.DefaultAPIVersion
	upload := func(program string) string {
		t.Helper()
		st, out := call(http.MethodPost, wsURL+"/storage/sasUri?"+av, jt.Token, nil, []byte(`{"containerName":"job-1"}`))
		if st != http.StatusOK {
			t.Fatalf("sasUri: %d %s", st, out)
		}
		var g struct {
			SASURI string `json:"sasUri"`
		}
		json.Unmarshal(out, &g)
		base, query, _ := strings.Cut(g.SASURI, "?")
		if st, out := call(http.MethodPut, base+"/"+azure.InputBlob+"?"+query, "", map[string]string{"x-ms-blob-type": "BlockBlob", "x-ms-blob-content-type": "application/json"}, []byte(program)); st != http.StatusCreated {
			t.Fatalf("upload: %d %s", st, out)
		}
		return g.SASURI
	}
	jobBody := func(id, sas string) []byte {
		base, _, _ := strings.Cut(sas, "?")
		b, _ := json.Marshal(map[string]any{"id": id, "name": "bell", "providerId": "IonQ", "target": "ionq.simulator",
			"containerUri": sas, "inputDataUri": base + "/" + azure.InputBlob,
			"inputDataFormat": "ionq.circuit.v1", "outputDataFormat": "ionq.quantum-results.v1", "inputParams": map[string]any{"shots": 100}})
		return b
	}

	// A different circuit in the upload than the token allows: refused, token unspent.
	other := upload(otherInput)
	if st, out := call(http.MethodPut, wsURL+"/jobs/5b3a8c2e-1f4d-4e6a-9b7c-000000000009?"+av, jt.Token, nil, jobBody("5b3a8c2e-1f4d-4e6a-9b7c-000000000009", other)); st != http.StatusForbidden || !bytes.Contains(out, []byte("digest")) {
		t.Fatalf("another circuit: %d %s", st, out)
	}
	sas := upload(bellInput)
	id := "5b3a8c2e-1f4d-4e6a-9b7c-000000000001"
	if st, out := call(http.MethodPut, wsURL+"/jobs/"+id+"?"+av, jt.Token, nil, jobBody(id, sas)); st != http.StatusCreated {
		t.Fatalf("create job: %d %s", st, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, out := call(http.MethodGet, wsURL+"/jobs/"+id+"?"+av, agent.ClientToken, nil, nil)
		if st != http.StatusOK {
			t.Fatalf("get job: %d %s", st, out)
		}
		if bytes.Contains(out, []byte(`"Succeeded"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job: %s", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	st, out := call(http.MethodGet, wsURL+"/jobs/"+id+"/output?"+av, agent.ClientToken, nil, nil)
	var res struct {
		Histogram map[string]float64 `json:"histogram"`
	}
	if st != http.StatusOK || json.Unmarshal(out, &res) != nil || res.Histogram["0"] < 0.3 || res.Histogram["3"] < 0.3 {
		t.Fatalf("Bell output: %d %s", st, out)
	}
	someone := e.mustLogin(e.roleID("az"), e.newSecretID("az", "someone-else", "").SecretID)
	if st, _ := call(http.MethodGet, wsURL+"/jobs/"+id+"/output?"+av, someone.ClientToken, nil, nil); st != http.StatusNotFound {
		t.Fatalf("another agent reads the output: %d", st)
	}
	if e.count(func(ev audit.Event) bool {
		return ev.Type == "submit" && ev.Provider == "azure" && ev.JobID == id && ev.Decision == "allow"
	}) != 1 {
		t.Fatal("the Azure submission is not audited")
	}
}
