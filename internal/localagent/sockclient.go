package localagent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/qbroker/qbroker/api"
)

// SocketClient talks to a running daemon over its Unix socket (what
// `qbroker exec` and `qbroker creds` use).
type SocketClient struct {
	path string
	hc   *http.Client
}

// NewSocketClient returns a client for the daemon at path.
func NewSocketClient(path string) *SocketClient {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	// Consent can take as long as the person needs (the daemon times out).
	return &SocketClient{path: path, hc: &http.Client{Transport: tr, Timeout: 10 * time.Minute}}
}

// Error is a refusal from the daemon.
type Error struct {
	Status int
	Errors []string
}

func (e *Error) Error() string {
	return fmt.Sprintf("local agent: %d %s: %s", e.Status, http.StatusText(e.Status), strings.Join(e.Errors, "; "))
}

func (c *SocketClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://local-agent"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("local agent at %s: %w (is `qbroker agent` running?)", c.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("local agent: %w", err)
	}
	if resp.StatusCode >= 300 {
		var er api.ErrorResponse
		_ = json.Unmarshal(b, &er)
		if len(er.Errors) == 0 {
			er.Errors = []string{strings.TrimSpace(string(b))}
		}
		return &Error{Status: resp.StatusCode, Errors: er.Errors}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// Status reads the daemon's state.
func (c *SocketClient) Status(ctx context.Context) (Info, error) {
	var in Info
	return in, c.do(ctx, http.MethodGet, "/v1/status", nil, &in)
}

// AWSCreds asks for an STS session for an AWS role.
func (c *SocketClient) AWSCreds(ctx context.Context, role string) (api.AWSCredsData, error) {
	var out api.AWSCredsData
	return out, c.do(ctx, http.MethodGet, "/v1/aws/creds/"+url.PathEscape(role), nil, &out)
}

// JobToken asks for a job token through the daemon.
func (c *SocketClient) JobToken(ctx context.Context, role string, req api.JobTokenRequest) (api.JobTokenData, error) {
	var out api.JobTokenData
	return out, c.do(ctx, http.MethodPost, "/v1/jobtoken/"+url.PathEscape(role), req, &out)
}

// OpenSession opens an exec session.
func (c *SocketClient) OpenSession(ctx context.Context, req SessionRequest) (SessionData, error) {
	var out SessionData
	return out, c.do(ctx, http.MethodPost, "/v1/sessions", req, &out)
}

// CloseSession ends an exec session.
func (c *SocketClient) CloseSession(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/sessions/"+url.PathEscape(id), nil, nil)
}

// CredentialProcess is the JSON an AWS credential_process prints.
type CredentialProcess struct {
	Version         int       `json:"Version"`
	AccessKeyID     string    `json:"AccessKeyId"`
	SecretAccessKey string    `json:"SecretAccessKey"`
	SessionToken    string    `json:"SessionToken"`
	Expiration      time.Time `json:"Expiration"`
}

// scrubbed are the inherited variables that could make an SDK pick other
// credentials than the session's, or hand the child a key.
var scrubbed = []string{
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
	"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
	"IONQ_API_KEY", "IONQ_BASE_URL", "IBM_QUANTUM_TOKEN", "IBM_QUANTUM_BASE_URL", "QISKIT_IBM_TOKEN", "QUANTINUUM_TOKEN", "QUANTINUUM_BASE_URL", "QBROKER_TOKEN", "VAULT_TOKEN",
}

// ChildEnv is base without the scrubbed variables, plus the session's.
// For AWS the shared config and credentials files are pointed at
// /dev/null so that a profile in ~/.aws cannot take precedence over the
// container endpoint in the SDK's default chain.
func ChildEnv(base []string, s SessionData) []string {
	out := make([]string, 0, len(base)+len(s.Env)+2)
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, sk := range scrubbed {
			if k == sk {
				drop = true
				break
			}
		}
		if !drop {
			out = append(out, kv)
		}
	}
	if _, ok := s.Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"]; ok {
		out = append(out, "AWS_SHARED_CREDENTIALS_FILE="+os.DevNull, "AWS_CONFIG_FILE="+os.DevNull)
	}
	for k, v := range s.Env {
		out = append(out, k+"="+v)
	}
	return out
}

// Exec runs argv with an exec session's variables and ends the session
// when the child exits. It returns the child's exit code. Signals that
// reach the exec (Ctrl-C, SIGTERM) are passed on to the child.
func Exec(ctx context.Context, c *SocketClient, req SessionRequest, argv []string, env []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if len(argv) == 0 {
		return 0, errors.New("exec: no command")
	}
	s, err := c.OpenSession(ctx, req)
	if err != nil {
		return 0, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = c.CloseSession(cctx, s.ID)
	}()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = ChildEnv(env, s)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("exec %s: %w", argv[0], err)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	ctxDone := ctx.Done()
	for {
		select {
		case sig := <-sigs:
			_ = cmd.Process.Signal(sig)
		case <-ctxDone:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			ctxDone = nil
		case err := <-done:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return ee.ExitCode(), nil
			}
			if err != nil {
				return 0, fmt.Errorf("exec %s: %w", argv[0], err)
			}
			return 0, nil
		}
	}
}
