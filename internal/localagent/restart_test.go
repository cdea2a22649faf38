package localagent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/server"
)

func simJobToken(ctx context.Context, c *SocketClient) error {
	_, err := c.JobToken(ctx, server.DemoRole, api.JobTokenRequest{Provider: "ionq", Device: "simulator", Shots: 10, Program: json.RawMessage(bellIonQ)})
	return err
}

// Issue 9, criterion 5 (broker restart): while the broker is down the
// daemon stays up and says so clearly (502, "the broker is unreachable");
// when the broker is back on the same data the daemon goes on with its
// token; when the broker no longer accepts the token (revoked, or lost)
// the daemon signs in again by itself.
func TestSurvivesBrokerRestart(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	dev, err := server.StartDev(ctx, server.DevOptions{Addr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0", SimAddr: "127.0.0.1:0", DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	h := startDaemon(t, dev, func(c *Config) { c.GatewayURL = dev.GatewayURL })
	c := h.client()
	if err := simJobToken(ctx, c); err != nil {
		t.Fatalf("before the restart: %v", err)
	}
	brokerAddr := strings.TrimPrefix(dev.BrokerURL, "http://")
	gwAddr := strings.TrimPrefix(dev.GatewayURL, "http://")
	if err := dev.Close(ctx); err != nil {
		t.Fatal(err)
	}

	err = simJobToken(ctx, c)
	var le *Error
	if !errors.As(err, &le) || le.Status != http.StatusBadGateway || !strings.Contains(err.Error(), "the broker is unreachable") {
		t.Fatalf("while the broker is down: %v", err)
	}
	if in, err := c.Status(ctx); err != nil || in.Entity == "" {
		t.Fatalf("the daemon while the broker is down: %+v %v", in, err)
	}

	dev2, err := server.StartDev(ctx, server.DevOptions{Addr: brokerAddr, GatewayAddr: gwAddr, SimAddr: "127.0.0.1:0", DataDir: dataDir})
	if err != nil {
		t.Fatalf("restart the broker on %s: %v", brokerAddr, err)
	}
	t.Cleanup(func() { dev2.Close(context.Background()) })
	if err := simJobToken(ctx, c); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	if n := h.loginCount(); n != 1 {
		t.Fatalf("%d sign-ins; the token should have survived the restart", n)
	}

	// The broker drops every token of the agent: the daemon signs in again.
	in, _ := c.Status(ctx)
	req, _ := http.NewRequest(http.MethodPost, dev2.BrokerURL+"/v1/sys/agents/"+in.Entity+"/revoke", strings.NewReader(`{"reason":"test"}`))
	req.Header.Set("X-Vault-Token", dev2.RootToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke the agent's tokens: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := simJobToken(ctx, c); err != nil {
		t.Fatalf("after the token was revoked: %v\n%s", err, h.logs)
	}
	if logins := h.loginCount(); logins != 2 || !strings.Contains(h.logs.String(), "no longer accepts the token; signing in again") {
		t.Fatalf("%d sign-ins; logs:\n%s", h.loginCount(), h.logs)
	}
}

// Issue 9, criterion 5 (a killed client): a client killed while its
// request waits for consent withdraws the question at once (not at the
// consent timeout), and the daemon goes on serving.
func TestKilledClientMidRequest(t *testing.T) {
	dev := startDev(t, server.DevOptions{})
	asked := make(chan Request, 1)
	withdrawn := make(chan error, 1)
	asker := askerFunc(func(ctx context.Context, r Request) (Answer, error) {
		asked <- r
		<-ctx.Done()
		withdrawn <- ctx.Err()
		return Deny, ctx.Err()
	})
	h := startDaemon(t, dev, func(c *Config) {
		c.Consent = NewConsent(Rules{Hardware: true, CostAboveUSD: -1, Timeout: time.Minute}, asker, c.Logger)
	})
	self, _ := os.Executable()
	cmd := exec.Command(self)
	cmd.Env = []string{helperEnv + "=jobtoken", "LOCALAGENT_SOCKET=" + h.sock}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-asked:
		if r.Program.PID != int32(cmd.Process.Pid) || r.Device != "qpu.forte-1" {
			t.Fatalf("the question: %+v (helper pid %d)", r, cmd.Process.Pid)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the daemon never asked")
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	select {
	case err := <-withdrawn:
		if !errors.Is(err, context.Canceled) || time.Since(start) > 10*time.Second {
			t.Fatalf("the question ended with %v after %s", err, time.Since(start))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the question of a killed client was never withdrawn")
	}
	ctx := context.Background()
	if err := simJobToken(ctx, h.client()); err != nil {
		t.Fatalf("the daemon after a killed client: %v", err)
	}
	if !strings.Contains(h.logs.String(), "consent denied") {
		t.Fatalf("logs:\n%s", h.logs)
	}
}
