package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

var reMCPURL = regexp.MustCompile(`(?m)^qbroker mcp listening on (http://\S+/mcp) `)

// lockedBuf is a goroutine-safe transcript.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

type bearerRT struct{ token string }

func (b bearerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// `qbroker mcp` as separate processes next to `qbroker dev`: over stdio
// with the token from the environment (spawned by the Go SDK's
// CommandTransport, as a desktop host does), and over streamable HTTP
// (`--http`) with bearer tokens, where unauthenticated requests get 401
// with the resource-metadata challenge. A Bell pair runs both ways; no
// credential appears in either transcript or the server's output.
func TestMCPServerProcesses(t *testing.T) {
	d := startDev(t, baseEnv())
	env := d.envFromExports()
	tok, _ := runCmd(t, env, "", "login", "--method", "approle", "--print")
	agentTok := strings.TrimSpace(tok)
	if !strings.HasPrefix(agentTok, "qbt_") {
		t.Fatalf("login printed %q", agentTok)
	}
	secrets := []secret{
		{"agent broker token", agentTok}, {"root token", d.exports["QBROKER_TOKEN"]}, {"AppRole secret_id", d.exports["QBROKER_SECRET_ID"]},
	}
	mcpEnv := baseEnv("QBROKER_ADDR="+d.exports["QBROKER_ADDR"], "QBROKER_GATEWAY_ADDR="+d.exports["QBROKER_GATEWAY_ADDR"])

	// stdio
	t.Run("stdio", func(t *testing.T) {
		cmd := exec.Command(binPath, "mcp")
		cmd.Env = append(slices.Clone(mcpEnv), "QBROKER_TOKEN="+agentTok)
		var stderr lockedBuf
		cmd.Stderr = &stderr
		tr := &lockedBuf{}
		s := connectMCP(t, &sdk.LoggingTransport{Transport: &sdk.CommandTransport{Command: cmd}, Writer: tr}, "e2e-stdio")
		counts := runBell(t, s, 1000)
		t.Logf("stdio: Bell counts over 1000 shots: %v", counts)
		s.Close()
		assertAbsent(t, "stdio MCP transcript", tr.Bytes(), secrets...)
		assertAbsent(t, "qbroker mcp stderr", stderr.Bytes(), secrets...)
	})

	// streamable HTTP
	t.Run("http", func(t *testing.T) {
		p := startProc(t, "qbroker mcp --http", append(slices.Clone(mcpEnv), "QBROKER_TOKEN="+agentTok), "mcp", "--http", "127.0.0.1:0")
		endpoint := p.waitLine(reMCPURL)[1]
		base := strings.TrimSuffix(endpoint, "/mcp")
		a := newAgentHTTP(t)
		initMsg := []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}`)
		for _, hdr := range [][]string{nil, {"Authorization: Bearer qbt_wrong"}, {"X-Vault-Token: " + agentTok}} {
			status, body := a.do(http.MethodPost, endpoint, initMsg, append(hdr, "Accept: application/json, text/event-stream")...)
			if status != http.StatusUnauthorized {
				t.Fatalf("%v: %d %s, want 401 (QBROKER_TOKEN in the server's environment must not be used)", hdr, status, body)
			}
		}
		a.mu.Lock()
		challenge := a.ex[0].header.Get("WWW-Authenticate")
		a.mu.Unlock()
		if want := `Bearer resource_metadata="` + base + `/.well-known/oauth-protected-resource"`; challenge != want {
			t.Errorf("WWW-Authenticate %q, want %q", challenge, want)
		}
		var meta struct {
			Resource             string   `json:"resource"`
			AuthorizationServers []string `json:"authorization_servers"`
		}
		a.expect(http.StatusOK, &meta, http.MethodGet, base+"/.well-known/oauth-protected-resource", nil)
		if meta.Resource != endpoint || len(meta.AuthorizationServers) != 1 || meta.AuthorizationServers[0] != d.exports["QBROKER_ADDR"] {
			t.Errorf("resource metadata %+v", meta)
		}

		tr := &lockedBuf{}
		s := connectMCP(t, &sdk.LoggingTransport{Writer: tr, Transport: &sdk.StreamableClientTransport{
			Endpoint: endpoint, HTTPClient: &http.Client{Transport: bearerRT{agentTok}, Timeout: 90 * time.Second},
		}}, "e2e-http")
		counts := runBell(t, s, 1000)
		t.Logf("http: Bell counts over 1000 shots: %v", counts)
		// SIGTERM with the session still open (its event stream too): the
		// server still stops cleanly, and promptly.
		if took := p.terminate(); took > 6*time.Second {
			t.Errorf("qbroker mcp --http took %s to stop", took)
		}
		s.Close()
		assertAbsent(t, "HTTP MCP transcript", tr.Bytes(), secrets...)
		a.assertNoLeak(secrets...)
		assertAbsent(t, "qbroker mcp --http output", append([]byte(p.stdout.String()), p.stderr.String()...), secrets...)
	})
}

func connectMCP(t *testing.T, tr sdk.Transport, name string) *sdk.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	s, err := sdk.NewClient(&sdk.Implementation{Name: name, Version: "1"}, nil).Connect(ctx, tr, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return s
}

// runBell submits a Bell pair on the IonQ emulator, polls, and checks
// ~50/50 counts of 00 and 11.
func runBell(t *testing.T, s *sdk.ClientSession, shots int) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	call := func(name string, args map[string]any, out any) {
		t.Helper()
		res, err := s.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: args})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.IsError {
			t.Fatalf("%s: tool error %+v", name, res.Content)
		}
		b, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %s: %v", name, b, err)
		}
	}
	var sub struct {
		Status string `json:"status"`
		JobID  string `json:"job_id"`
	}
	call("submit_circuit", map[string]any{
		"circuit": "OPENQASM 3;\ninclude \"stdgates.inc\";\nqubit[2] q;\nh q[0];\ncx q[0], q[1];\n",
		"format":  "qasm3", "device": "ionq/simulator", "shots": shots,
	}, &sub)
	if sub.Status != "submitted" || sub.JobID == "" {
		t.Fatalf("submission %+v", sub)
	}
	for {
		var st struct {
			Status string `json:"status"`
		}
		call("job_status", map[string]any{"job_id": sub.JobID}, &st)
		if st.Status == "completed" {
			break
		}
		if st.Status == "failed" || st.Status == "canceled" {
			t.Fatalf("job %s", st.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var r struct {
		Counts map[string]int `json:"counts"`
	}
	call("get_result", map[string]any{"job_id": sub.JobID}, &r)
	dev := int(math.Ceil(5 * math.Sqrt(float64(shots)) / 2)) // five standard deviations
	if r.Counts["00"]+r.Counts["11"] != shots || r.Counts["00"] < shots/2-dev || r.Counts["11"] < shots/2-dev {
		t.Fatalf("counts %v over %d shots: want ~50/50 00 and 11 only", r.Counts, shots)
	}
	return r.Counts
}
