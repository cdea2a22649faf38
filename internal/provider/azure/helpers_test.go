package azure

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/qbroker/qbroker/internal/provider"
	"github.com/qbroker/qbroker/internal/sim/azuresim"
)

const (
	testTenant    = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	testClient    = "0b6b2c6d-1b2a-4c1e-9a3e-5f6a7b8c9d0e"
	testSecret    = "s3cr3t~value-0123456789abcdef"
	testSub       = "00000000-0000-0000-0000-000000000001"
	testRG        = "qbroker-rg"
	testWorkspace = "qbroker-ws"
	testIssuer    = "https://broker.example.com"
	testSubject   = "qbroker-broker"
	testKID       = "qbroker-fed-1"
	apiVersion    = "api-version=" + DefaultAPIVersion

	bellIonQ = `{"qubits":2,"circuit":[{"gate":"h","target":0},{"gate":"cnot","control":0,"target":1}]}`
	ghzIonQ  = `{"qubits":3,"circuit":[{"gate":"h","target":0},{"gate":"cnot","control":0,"target":1},{"gate":"cnot","control":1,"target":2}]}`
	bellQASM = "OPENQASM 3;\nqubit[2] q;\nbit[2] b;\nh q[0];\ncnot q[0], q[1];\nb[0] = measure q[0];\nb[1] = measure q[1];\n"
)

// wsPath is the test workspace's path.
const wsPath = "/subscriptions/" + testSub + "/resourceGroups/" + testRG + "/providers/Microsoft.Quantum/workspaces/" + testWorkspace

// sim is the Azure emulator with a clock that runs with real time plus an
// offset the test can move.
type sim struct {
	e      *azuresim.Emulator
	url    string
	offset atomic.Int64
	fed    *ecdsa.PrivateKey // the federated issuer's key, known to the emulator
}

func (s *sim) now() time.Time { return time.Now().Add(time.Duration(s.offset.Load())) }

func (s *sim) advance(d time.Duration) { s.offset.Add(int64(d)) }

func startSim(t *testing.T, mutate func(*azuresim.Config)) *sim {
	t.Helper()
	fed, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := &sim{fed: fed}
	cfg := azuresim.Config{
		TenantID: testTenant, ClientID: testClient, ClientSecret: testSecret,
		FederatedIssuer: testIssuer, FederatedSubject: testSubject,
		FederatedKeys:  &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &fed.PublicKey, KeyID: testKID, Algorithm: string(jose.ES256), Use: "sig"}}},
		SubscriptionID: testSub, ResourceGroup: testRG, Workspace: testWorkspace,
		StepDelay: 2 * time.Millisecond, Now: s.now, Seed: 7,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	e, err := azuresim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(func() { srv.Close(); e.Close() })
	s.e, s.url = e, srv.URL
	return s
}

// minter is a Minter pointed at the emulator, on its clock.
func (s *sim) minter() *Minter { return &Minter{Authority: s.url, Now: s.now} }

// token mints a credential with the client secret.
func (s *sim) token(t *testing.T) provider.Credential {
	t.Helper()
	c, _, _, err := s.minter().Mint(context.Background(), testTenant+":"+testClient+":"+testSecret, "lab")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fedRoot is a federated root credential for key (with kid) and subject.
func fedRoot(t *testing.T, key *ecdsa.PrivateKey, kid, subject string) string {
	t.Helper()
	jwk, err := json.Marshal(jose.JSONWebKey{Key: key, KeyID: kid})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"tenant_id": testTenant, "client_id": testClient,
		"federated": map[string]any{"issuer": testIssuer, "subject": subject, "private_key": json.RawMessage(jwk)}})
	return string(b)
}

// call sends a request and returns status and body.
func call(t *testing.T, method, url string, h map[string]string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func newTestAdapter(t *testing.T, endpoint string, mutate func(*Config)) *Adapter {
	t.Helper()
	cfg := Config{Endpoint: endpoint, SubscriptionID: testSub, ResourceGroup: testRG, Workspace: testWorkspace, PublicURL: "https://gw.example/azure"}
	if mutate != nil {
		mutate(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// stage grants a container for jti and uploads data as its input through
// the adapter's handlers, returning the container's SAS URI.
func stage(t *testing.T, a *Adapter, jti string, data string) string {
	t.Helper()
	uri := grant(t, a, jti)
	if data != "" {
		if code, body := putInput(a, uri, data, nil); code != http.StatusCreated {
			t.Fatalf("upload: %d %s", code, body)
		}
	}
	return uri
}

func grant(t *testing.T, a *Adapter, jti string) string {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "https://gw.example/azure"+wsPath+"/storage/sasUri?"+apiVersion, strings.NewReader(`{"containerName":"job-1"}`))
	w := httptest.NewRecorder()
	a.Grant(w, r, jti, time.Now().Add(5*time.Minute))
	if w.Code != http.StatusOK {
		t.Fatalf("grant: %d %s", w.Code, w.Body)
	}
	var out struct {
		SASURI string `json:"sasUri"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	return out.SASURI
}

// putInput uploads data as inputData of the staging container uri.
func putInput(a *Adapter, uri, data string, h map[string]string) (int, string) {
	base, query, _ := strings.Cut(uri, "?")
	r := httptest.NewRequest(http.MethodPut, base+"/"+InputBlob+"?"+query, strings.NewReader(data))
	r.Header.Set("x-ms-blob-type", "BlockBlob")
	r.Header.Set("x-ms-blob-content-type", "application/json")
	for k, v := range h {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	a.ServeStaging(w, r, strings.TrimPrefix(r.URL.EscapedPath(), "/azure"))
	return w.Code, w.Body.String()
}

// jobBody is a JobDetails creation naming container uri, with changes.
func jobBody(id, uri string, change func(map[string]any)) []byte {
	base, _, _ := strings.Cut(uri, "?")
	m := map[string]any{
		"id": id, "name": "bell", "providerId": "IonQ", "target": "ionq.simulator",
		"containerUri": uri, "inputDataUri": base + "/" + InputBlob,
		"inputDataFormat": "ionq.circuit.v1", "outputDataFormat": "ionq.quantum-results.v1",
		"inputParams": map[string]any{"shots": 100},
	}
	if change != nil {
		change(m)
	}
	b, _ := json.Marshal(m)
	return b
}

// upstreamSASRE matches a SAS signature that is not redacted.
var upstreamSASRE = regexp.MustCompile(`sig=[^R&"]|sig=R[^E]`)

// noUpstreamSAS fails if an answer carries a SAS of the emulator's storage.
func noUpstreamSAS(t *testing.T, what string, body []byte) {
	t.Helper()
	if bytes.Contains(body, []byte("sv=2019-02-02")) || upstreamSASRE.Match(body) {
		t.Fatalf("%s: the answer carries a storage SAS: %s", what, body)
	}
}
