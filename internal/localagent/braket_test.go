package localagent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
	"github.com/qbroker/qbroker/internal/sim/braketsim"
)

const bellQASM = "OPENQASM 3;\nqubit[2] q;\nbit[2] b;\nh q[0];\ncnot q[0], q[1];\nb[0] = measure q[0];\nb[1] = measure q[1];\n"

// The Braket passthrough: a client that signs with the session's key as
// its access key ID (as the SDK does with the env credentials `qbroker
// exec --provider braket` sets) creates a Bell task through the gateway
// on the emulator and reads it back; another device than the session's,
// no key, and a key of an IonQ session are refused.
func TestBraketPassthrough(t *testing.T) {
	dev, _ := startAWSDev(t)
	ctx := context.Background()
	root := client.New(dev.BrokerURL, nil).WithToken(dev.RootToken)
	if _, err := root.PutRole(ctx, "lab", api.Role{Provider: "aws", Devices: []string{"sv1", "forte-1"}, MaxShots: 1000, Owner: "lab", Team: "lab"}); err != nil {
		t.Fatal(err)
	}
	rid, err := root.RoleID(ctx, "lab")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := root.NewSecretID(ctx, "lab", api.SecretIDRequest{Agent: "lab-agent"})
	if err != nil {
		t.Fatal(err)
	}
	h := startDaemon(t, dev, func(c *Config) {
		c.GatewayURL = dev.GatewayURL
		c.Login = func(ctx context.Context, cl *client.Client) (*api.Auth, error) {
			return cl.AppRoleLogin(ctx, rid, sid.SecretID)
		}
	})
	if _, err := h.client().OpenSession(ctx, SessionRequest{Role: "lab", Provider: "braket"}); err == nil {
		t.Fatal("a braket session without a device")
	}
	s, err := h.client().OpenSession(ctx, SessionRequest{Role: "lab", Provider: "braket", Device: "sv1"})
	if err != nil {
		t.Fatal(err)
	}
	endpoint, akid := s.Env["AWS_ENDPOINT_URL_BRAKET"], s.Env["AWS_ACCESS_KEY_ID"]
	if !strings.HasPrefix(endpoint, "http://127.0.0.1:") || !strings.HasPrefix(akid, "qbl_") {
		t.Fatalf("session env %v", s.Env)
	}
	call := func(key, method, path string, body []byte) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, endpoint+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			sum := sha256.Sum256(body)
			creds := aws.Credentials{AccessKeyID: key, SecretAccessKey: s.Env["AWS_SECRET_ACCESS_KEY"]}
			if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "braket", "us-east-1", time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	task := func(arn string) []byte {
		action, _ := json.Marshal(map[string]any{"braketSchemaHeader": map[string]string{"name": "braket.ir.openqasm.program", "version": "1"}, "source": bellQASM})
		b, _ := json.Marshal(map[string]any{"clientToken": fmt.Sprintf("c-%d", time.Now().UnixNano()), "deviceArn": arn, "shots": 100,
			"outputS3Bucket": "x", "outputS3KeyPrefix": "y", "action": string(action)})
		return b
	}
	if status, body := call("", http.MethodPost, "/quantum-task", task(braketsim.SV1ARN)); status != http.StatusUnauthorized {
		t.Fatalf("no key: %d %s", status, body)
	}
	ionq, err := h.client().OpenSession(ctx, SessionRequest{Role: "lab", Provider: "ionq"})
	if err != nil {
		t.Fatal(err)
	}
	if status, body := call(ionq.Env["IONQ_API_KEY"], http.MethodPost, "/quantum-task", task(braketsim.SV1ARN)); status != http.StatusForbidden || !strings.Contains(body, "this session is for ionq") {
		t.Fatalf("an IonQ session's key on /braket: %d %s", status, body)
	}
	if status, body := call(akid, http.MethodPost, "/quantum-task", task(braketsim.ForteARN)); status != http.StatusForbidden || !strings.Contains(body, "job token is for device sv1") {
		t.Fatalf("another device than the session's: %d %s", status, body)
	}
	status, body := call(akid, http.MethodPost, "/quantum-task", task(braketsim.SV1ARN))
	var created struct {
		ARN string `json:"quantumTaskArn"`
	}
	if status != http.StatusCreated || json.Unmarshal([]byte(body), &created) != nil || created.ARN == "" {
		t.Fatalf("Bell through the Braket passthrough: %d %s", status, body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		status, body := call(akid, http.MethodGet, "/quantum-task/"+url.PathEscape(created.ARN), nil)
		if status == http.StatusOK && strings.Contains(body, `"COMPLETED"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task status: %d %s", status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
