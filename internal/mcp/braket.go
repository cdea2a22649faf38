package mcp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/circuit/qasm"
)

// braketTaskARN is the shape of a Braket quantum-task ARN.
var braketTaskARN = regexp.MustCompile(`^arn:aws:braket:[a-z0-9-]+:[0-9]{12}:quantum-task/[A-Za-z0-9-]{1,64}$`)

// braketBackend drives the gateway's secretless Braket front (/braket):
// CreateQuantumTask with the job token as the bearer credential (the
// gateway re-signs with the role's STS session), and the task and its
// results read with the broker token.
type braketBackend struct{ s *Server }

func (b braketBackend) tokenRequest(d Device, shots int, p program) (api.JobTokenRequest, error) {
	src, err := p.qasmSource()
	if err != nil {
		return api.JobTokenRequest{}, err
	}
	prog, err := json.Marshal(src)
	if err != nil {
		return api.JobTokenRequest{}, fmt.Errorf("encode program: %w", err)
	}
	return api.JobTokenRequest{Provider: d.Provider, Device: d.Name, Shots: shots, ProgramSHA256: qasm.Digest([]byte(src)), Program: prog, Format: api.FormatQASM3}, nil
}

// braketTask is the part of GetQuantumTask's answer the tools read.
type braketTask struct {
	ARN           string `json:"quantumTaskArn"`
	Status        string `json:"status"`
	DeviceARN     string `json:"deviceArn"`
	Shots         int    `json:"shots"`
	FailureReason string `json:"failureReason"`
}

func (b braketBackend) submit(ctx context.Context, c *caller, jobToken string, d Device, shots int, p program) (jobView, error) {
	if d.ARN == "" {
		return jobView{}, refusef(d.ID + " has no device ARN in the catalogue, so it cannot be submitted to Braket")
	}
	src, err := p.qasmSource()
	if err != nil {
		return jobView{}, err
	}
	action, err := json.Marshal(map[string]any{"braketSchemaHeader": map[string]string{"name": "braket.ir.openqasm.program", "version": "1"}, "source": src})
	if err != nil {
		return jobView{}, fmt.Errorf("encode action: %w", err)
	}
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return jobView{}, fmt.Errorf("client token: %w", err)
	}
	// The output location is the gateway's to choose (the role's prefix);
	// these values are placeholders it replaces.
	body, err := json.Marshal(map[string]any{
		"clientToken": hex.EncodeToString(nonce[:]), "deviceArn": d.ARN, "shots": shots, "action": string(action),
		"outputS3Bucket": "qbroker-chosen", "outputS3KeyPrefix": "qbroker-chosen",
	})
	if err != nil {
		return jobView{}, fmt.Errorf("encode task: %w", err)
	}
	var t braketTask
	if err := b.s.jobTokenCall(ctx, c, "/braket/quantum-task", jobToken, body, http.StatusCreated, &t); err != nil {
		return jobView{}, err
	}
	if !braketTaskARN.MatchString(t.ARN) {
		return jobView{}, &refusal{msg: "the gateway accepted the task but returned no usable task ARN; check job status later", cause: fmt.Errorf("task ARN %q", t.ARN)}
	}
	return jobView{ID: t.ARN, Status: braketStatus(t.Status), Device: d.ID, Shots: shots, Qubits: p.qubits}, nil
}

func (b braketBackend) job(ctx context.Context, c *caller, id string) (jobView, error) {
	var t braketTask
	if err := b.s.ownerCall(ctx, c, http.MethodGet, "/braket/quantum-task/"+url.PathEscape(id), http.StatusOK, &t); err != nil {
		return jobView{}, err
	}
	return jobView{ID: t.ARN, Status: braketStatus(t.Status), Device: t.DeviceARN, Shots: t.Shots, Failure: t.FailureReason}, nil
}

// braketStatus maps Braket's task states onto the tools' words.
func braketStatus(s string) string {
	switch s {
	case "CREATED":
		return "submitted"
	case "QUEUED":
		return "ready"
	case "RUNNING":
		return "started"
	case "COMPLETED":
		return "completed"
	case "FAILED":
		return "failed"
	case "CANCELLING", "CANCELLED":
		return "canceled"
	}
	return strings.ToLower(s)
}

func (b braketBackend) probabilities(ctx context.Context, c *caller, j jobView) (map[string]float64, error) {
	// GET /quantum-task/<arn>/results is the gateway's extension: the
	// task's results.json, read from the role's S3 prefix.
	var r struct {
		Measurements   [][]int `json:"measurements"`
		MeasuredQubits []int   `json:"measuredQubits"`
	}
	if err := b.s.ownerCall(ctx, c, http.MethodGet, "/braket/quantum-task/"+url.PathEscape(j.ID)+"/results", http.StatusOK, &r); err != nil {
		return nil, err
	}
	if len(r.Measurements) == 0 {
		return nil, refusef("the task's result holds no measurements")
	}
	// Each row is one shot, measuredQubits[0] first; bitstrings put qubit 0
	// rightmost, as OpenQASM and IonQ write them.
	counts := map[string]int{}
	for _, row := range r.Measurements {
		bits := make([]byte, len(row))
		for i, v := range row {
			if v != 0 && v != 1 {
				return nil, &refusal{msg: "the provider returned a result qbroker cannot read; try again later", cause: fmt.Errorf("measurement %d", v)}
			}
			bits[len(row)-1-i] = byte('0' + v)
		}
		counts[string(bits)]++
	}
	out := make(map[string]float64, len(counts))
	for k, n := range counts {
		out[k] = float64(n) / float64(len(r.Measurements))
	}
	return out, nil
}

func (b braketBackend) cancel(ctx context.Context, c *caller, id string) error {
	var out map[string]any
	return b.s.ownerCall(ctx, c, http.MethodPut, "/braket/quantum-task/"+url.PathEscape(id)+"/cancel", http.StatusOK, &out)
}

// braketCancelBody is CancelQuantumTask's body: a fresh client token.
func braketCancelBody() ([]byte, error) {
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("client token: %w", err)
	}
	return json.Marshal(map[string]string{"clientToken": hex.EncodeToString(nonce[:])})
}

var _ backend = braketBackend{}
