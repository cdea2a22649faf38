package server

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/qbroker/qbroker/api"
)

func jwksKIDs(t *testing.T, e *env) []string {
	t.Helper()
	r := e.do(http.MethodGet, e.d.BrokerURL+"/.well-known/jwks.json", "")
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
			D   string `json:"d"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(r.body, &set); err != nil {
		t.Fatalf("jwks: %v (%s)", err, r.body)
	}
	var out []string
	for _, k := range set.Keys {
		if k.D != "" {
			t.Fatal("JWKS carries private key material")
		}
		out = append(out, k.KID)
	}
	return out
}

// Rotation keeps tokens signed by the old key usable until they expire,
// signs new ones with the new key, and only root may rotate.
func TestKeyRotationKeepsOldTokensVerifiable(t *testing.T) {
	e := newEnv(t)
	agent := e.mustLogin(e.d.RoleID, e.d.SecretID)
	before := jwksKIDs(t, e)
	if len(before) != 1 {
		t.Fatalf("want one key before rotation, got %v", before)
	}
	old := e.mustJobToken(agent.ClientToken, "simulator", 100, "")

	want(t, "rotate with an agent token", e.broker(http.MethodPost, "/v1/sys/keys/rotate", agent.ClientToken, ""), http.StatusForbidden, "root")
	if got := jwksKIDs(t, e); len(got) != 1 || got[0] != before[0] {
		t.Fatalf("refused rotation changed the keys: %v", got)
	}

	r := e.broker(http.MethodPost, "/v1/sys/keys/rotate", e.d.RootToken, "")
	var rot api.KeyRotateData
	decodeData(t, r, &rot)
	if rot.RetiredKID != before[0] || rot.ActiveKID == before[0] || rot.ActiveKID == "" {
		t.Fatalf("rotation answer %+v (old key %s)", rot, before[0])
	}
	after := jwksKIDs(t, e)
	if len(after) != 2 {
		t.Fatalf("JWKS after rotation should hold both keys, got %v", after)
	}

	// A token from before the rotation still submits; a new one carries the new kid.
	e.mustSubmit(old.Token, bell())
	fresh := e.mustJobToken(agent.ClientToken, "simulator", 100, "")
	var hdr struct {
		KID string `json:"kid"`
	}
	decodeJWTHeader(t, fresh.Token, &hdr)
	if hdr.KID != rot.ActiveKID {
		t.Fatalf("new token signed with %s, want the new key %s", hdr.KID, rot.ActiveKID)
	}
	e.mustSubmit(fresh.Token, bell())

	// A sweep now must not drop the retired key: its tokens may still be live.
	if err := e.d.Broker.Sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := jwksKIDs(t, e); len(got) != 2 {
		t.Fatalf("sweep dropped a key whose tokens may still be live: %v", got)
	}
}

func decodeJWTHeader(t *testing.T, jwt string, v any) {
	t.Helper()
	i := strings.IndexByte(jwt, '.')
	if i < 0 {
		t.Fatalf("not a compact JWS")
	}
	b, err := base64.RawURLEncoding.DecodeString(jwt[:i])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// The explain API shows operators why a request would be refused, and only
// to root: it reveals the whole policy set.
func TestPolicyExplainAPI(t *testing.T) {
	e := newEnv(t)
	agent := e.mustLogin(e.d.RoleID, e.d.SecretID)
	body := `{"principal":{"id":"a1","role":"demo"},"action":"SubmitJob","resource":{"device":"ionq/qpu.forte-1","kind":"qpu","qubits":36},"context":{"shots":10}}`
	want(t, "explain with an agent token", e.broker(http.MethodPost, "/v1/sys/policy/explain", agent.ClientToken, body), http.StatusForbidden, "root")
	r := e.broker(http.MethodPost, "/v1/sys/policy/explain", e.d.RootToken, body)
	var x struct {
		Decision            string   `json:"decision"`
		DeterminingPolicies []string `json:"determining_policies"`
	}
	decodeData(t, r, &x)
	if x.Decision != "deny" || len(x.DeterminingPolicies) != 1 || x.DeterminingPolicies[0] != "demo-no-qpu" {
		t.Fatalf("explain: %s", r)
	}
	want(t, "explain with an unknown field", e.broker(http.MethodPost, "/v1/sys/policy/explain", e.d.RootToken, `{"principle":{}}`), http.StatusBadRequest, "principle")
}
