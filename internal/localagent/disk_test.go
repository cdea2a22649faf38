package localagent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/server"
)

// Issue 9, criterion 4, from the inside: after a full session (AWS exec
// session and its credentials, credentials through the socket, a job token,
// an IonQ job through the passthrough) and the daemon's exit, none of the
// secrets — including the daemon's own broker token, which only its memory
// held — is in the broker's data dir, the runtime dir or the daemon's log;
// the token was revoked at exit.
func TestNoSecretOnDisk(t *testing.T) {
	dev, _ := startAWSDev(t)
	h := startDaemon(t, dev, func(c *Config) { c.GatewayURL = dev.GatewayURL })
	ctx := context.Background()
	c := h.client()
	var seen []string

	s, err := c.OpenSession(ctx, SessionRequest{Role: awsRole, Provider: "aws"})
	if err != nil {
		t.Fatal(err)
	}
	status, body := get(t, s.Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"], s.Env["AWS_CONTAINER_AUTHORIZATION_TOKEN"])
	var cc containerCreds
	if status != http.StatusOK || json.Unmarshal([]byte(body), &cc) != nil {
		t.Fatalf("container creds: %d %s", status, body)
	}
	seen = append(seen, s.Env["AWS_CONTAINER_AUTHORIZATION_TOKEN"], cc.SecretAccessKey, cc.Token)
	ac, err := c.AWSCreds(ctx, awsRole)
	if err != nil {
		t.Fatal(err)
	}
	seen = append(seen, ac.SecretKey, ac.SecurityToken)
	jt, err := c.JobToken(ctx, server.DemoRole, api.JobTokenRequest{Provider: "ionq", Device: "simulator", Shots: 10, Program: json.RawMessage(bellIonQ)})
	if err != nil {
		t.Fatal(err)
	}
	seen = append(seen, jt.Token)
	is, err := c.OpenSession(ctx, SessionRequest{Role: server.DemoRole, Provider: "ionq"})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, is.Env["IONQ_BASE_URL"]+"/v0.4/jobs",
		strings.NewReader(fmt.Sprintf(`{"type":"ionq.circuit.v1","backend":"simulator","shots":10,"input":%s}`, bellIonQ)))
	req.Header.Set("Authorization", "apiKey "+is.Env["IONQ_API_KEY"])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("passthrough job: %d %s", resp.StatusCode, b)
	}
	seen = append(seen, is.Env["IONQ_API_KEY"])
	tokens := h.tokens()
	if len(tokens) != 1 {
		t.Fatalf("%d broker tokens", len(tokens))
	}
	seen = append(seen, tokens...)

	h.stop() // exit: sessions end, the token is revoked and zeroed
	r, _ := http.NewRequest(http.MethodGet, dev.BrokerURL+"/v1/auth/token/lookup-self", nil)
	r.Header.Set("X-Vault-Token", tokens[0])
	resp, err = http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the broker token after the daemon exited: %d, want 403 (revoked)", resp.StatusCode)
	}

	for _, root := range []string{dev.DataDir, filepath.Dir(filepath.Dir(h.sock))} {
		err := filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
			if err != nil || !de.Type().IsRegular() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, s := range seen {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("a secret (%.6s…) is on disk in %s", s, path)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range seen {
		if s == "" {
			t.Fatal("an empty secret was collected")
		}
		if strings.Contains(h.logs.String(), s) {
			t.Errorf("a secret (%.6s…) is in the daemon's log", s)
		}
	}
}
