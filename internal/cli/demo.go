package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
	"github.com/qbroker/qbroker/internal/circuit"
)

// The demo agent is the template to copy: it holds no provider key, only
// an AppRole pair, and uses IonQ's own API shape against the gateway.
func demoCmd(env Env) *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Sample agent: AppRole login → job token → Bell circuit through the gateway → counts",
		Long: "Reads QBROKER_ADDR, QBROKER_GATEWAY_ADDR, QBROKER_ROLE_ID and QBROKER_SECRET_ID only.\n" +
			"It never sees the IonQ API key: the gateway swaps the single-use job token for it.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.broker, o.gateway = env.Getenv(EnvAddr), env.Getenv(EnvGatewayAddr)
			o.roleID, o.secretID = env.Getenv(EnvRoleID), env.Getenv(EnvSecretID)
			for k, v := range map[string]string{EnvAddr: o.broker, EnvGatewayAddr: o.gateway, EnvRoleID: o.roleID, EnvSecretID: o.secretID} {
				if v == "" {
					return fmt.Errorf("%s is not set (run `qbroker dev` and eval its exports)", k)
				}
			}
			res, err := runDemo(cmd.Context(), o, env.Stdout)
			if err != nil {
				return err
			}
			if o.json {
				return printJSON(env.Stdout, res)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.role, "role", "demo", "role to request the job token under")
	f.StringVar(&o.device, "device", "simulator", "IonQ backend")
	f.IntVar(&o.shots, "shots", 1000, "shots")
	f.BoolVar(&o.json, "json", false, "print the result as JSON at the end")
	f.DurationVar(&o.timeout, "timeout", 10*time.Minute, "how long to wait for approval (if the device needs one) and the job")
	return cmd
}

type demoOptions struct {
	broker, gateway, roleID, secretID string
	role, device                      string
	shots                             int
	json                              bool
	timeout                           time.Duration
}

// DemoResult is what `qbroker demo --json` prints.
type DemoResult struct {
	JobID  string         `json:"job_id"`
	Device string         `json:"device"`
	Shots  int            `json:"shots"`
	Counts map[string]int `json:"counts"` // bitstrings, qubit 0 rightmost
}

// bell is the program: H on qubit 0, CNOT 0→1, in IonQ's circuit JSON.
const bell = `{"qubits":2,"gateset":"qis","circuit":[{"gate":"h","target":0},{"gate":"cnot","control":0,"target":1}]}`

func runDemo(ctx context.Context, o demoOptions, out io.Writer) (*DemoResult, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	hc := &http.Client{Timeout: 30 * time.Second}

	// 1. Prove who we are; get a short-lived broker token.
	auth, err := client.New(o.broker, hc).AppRoleLogin(ctx, o.roleID, o.secretID)
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	broker := client.New(o.broker, hc).WithToken(auth.ClientToken)
	defer broker.RevokeSelf(context.WithoutCancel(ctx)) //nolint:errcheck // best-effort hygiene
	fmt.Fprintf(out, "1. logged in as %s (token accessor %s, ttl %ds)\n", auth.EntityID, auth.Accessor, auth.LeaseDuration)

	// 2. Ask for a job token bound to this device, these shots and this circuit.
	digest, err := circuit.Digest([]byte(bell))
	if err != nil {
		return nil, err
	}
	// The program travels with the request: if a person has to approve
	// it, they see the circuit, and the token is bound to its digest.
	req := api.JobTokenRequest{Provider: "ionq", Device: o.device, Shots: o.shots, ProgramSHA256: digest, Program: json.RawMessage(bell), Format: api.FormatIonQ}
	jt, err := broker.JobToken(ctx, o.role, req)
	var pending *client.PendingError
	if errors.As(err, &pending) {
		fmt.Fprintf(out, "2. held for approval as %s\n", pending.Approval.ID)
		a, werr := waitForApproval(ctx, broker, pending.Approval, out)
		if werr != nil {
			return nil, fmt.Errorf("waiting for approval: %w", werr)
		}
		if err := approvalOutcome(a); err != nil {
			return nil, err
		}
		req.ApprovalID = a.ID
		jt, err = broker.JobToken(ctx, o.role, req)
	}
	if err != nil {
		return nil, fmt.Errorf("job token: %w", err)
	}
	fmt.Fprintf(out, "2. job token for ionq/%s, %d shots, circuit %s…, expires %s (allowed by %v)\n", jt.Device, jt.MaxShots, digest[:12], jt.ExpiresAt.Format(time.RFC3339), jt.Policies)

	// 3. Submit with IonQ's own request shape; the job token is the API key.
	gw := strings.TrimSuffix(o.gateway, "/") + "/ionq"
	body := fmt.Sprintf(`{"type":"ionq.circuit.v1","name":"qbroker-demo-bell","backend":%q,"shots":%d,"input":%s}`, o.device, o.shots, bell)
	var sub struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if err := ionqCall(ctx, hc, http.MethodPost, gw+"/v0.4/jobs", jt.Token, []byte(body), http.StatusCreated, &sub); err != nil {
		return nil, fmt.Errorf("submit: %w", err)
	}
	fmt.Fprintf(out, "3. submitted job %s (%s)\n", sub.ID, sub.Status)

	// 4. Wait for it, reading with the broker token (reads need no job token).
	var job struct {
		Status  string `json:"status"`
		Results struct {
			Probabilities struct {
				URL string `json:"url"`
			} `json:"probabilities"`
		} `json:"results"`
		Failure *struct{ Code, Message string } `json:"failure"`
	}
	for {
		if err := ionqCall(ctx, hc, http.MethodGet, gw+"/v0.4/jobs/"+sub.ID, auth.ClientToken, nil, http.StatusOK, &job); err != nil {
			return nil, fmt.Errorf("status: %w", err)
		}
		if job.Status == "completed" {
			break
		}
		if job.Status == "failed" || job.Status == "canceled" {
			return nil, fmt.Errorf("job %s %s: %+v", sub.ID, job.Status, job.Failure)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for job %s: %w", sub.ID, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}

	// 5. Read the probabilities (the URL is relative to the gateway host).
	var probs map[string]float64
	if err := ionqCall(ctx, hc, http.MethodGet, strings.TrimSuffix(o.gateway, "/")+job.Results.Probabilities.URL, auth.ClientToken, nil, http.StatusOK, &probs); err != nil {
		return nil, fmt.Errorf("results: %w", err)
	}
	res := &DemoResult{JobID: sub.ID, Device: o.device, Shots: o.shots, Counts: map[string]int{}}
	for k, p := range probs {
		idx, err := strconv.Atoi(k)
		if err != nil {
			return nil, fmt.Errorf("result key %q is not a basis-state index", k)
		}
		res.Counts[fmt.Sprintf("%02b", idx)] = int(math.Round(p * float64(o.shots)))
	}
	keys := make([]string, 0, len(res.Counts))
	for k := range res.Counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(out, "4. job completed; counts over %d shots:\n", o.shots)
	for _, k := range keys {
		fmt.Fprintf(out, "   %s  %5d\n", k, res.Counts[k])
	}
	return res, nil
}

// ionqCall makes one IonQ-shaped call: Authorization: apiKey <credential>.
func ionqCall(ctx context.Context, hc *http.Client, method, url, credential string, body []byte, want int, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "apiKey "+credential)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, req.URL.Path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, out)
}
