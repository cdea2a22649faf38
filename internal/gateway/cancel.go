package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/qbroker/qbroker/internal/provider/ionq"
)

// Canceller cancels provider jobs with the real credential. The broker uses
// it to follow a revocation through to the provider: revoking a key alone
// leaves queued jobs running.
type Canceller struct {
	ionq   string // IonQ base URL without the version
	client *http.Client
	creds  func(ctx context.Context, provider string) (string, error)
}

// NewCanceller builds a canceller for the configured upstreams.
func NewCanceller(ionqUpstream *url.URL, client *http.Client, creds func(ctx context.Context, provider string) (string, error)) (*Canceller, error) {
	base, err := upstreamBase(ionqUpstream)
	if err != nil {
		return nil, err
	}
	if client == nil {
		client = &http.Client{Transport: NewTransport(), Timeout: cancelTimeout}
	}
	return &Canceller{ionq: base, client: client, creds: creds}, nil
}

// Cancel asks the provider to cancel a job and returns the status it
// reports ("canceled"). A job that already finished is not an error: its
// status says so.
func (c *Canceller) Cancel(ctx context.Context, provider, id string) (string, error) {
	if provider != providerIonQ {
		return "", fmt.Errorf("gateway: cancelling %s jobs is not supported", provider)
	}
	if !validJobID(id) {
		return "", fmt.Errorf("gateway: invalid job id")
	}
	key, err := c.creds(ctx, provider)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.ionq+"/v0.4/jobs/"+id+"/status/cancel", nil)
	if err != nil {
		return "", err
	}
	ionq.SetAPIKey(req.Header, key)
	resp, err := c.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("gateway: cancel %s: %w", id, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var out struct {
		Status  string `json:"status"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &out)
	switch {
	case resp.StatusCode/100 == 2:
		return out.Status, nil
	case resp.StatusCode == http.StatusBadRequest && strings.Contains(strings.ToLower(out.Message), "complete"),
		resp.StatusCode == http.StatusBadRequest && strings.Contains(strings.ToLower(out.Message), "fail"):
		return "already finished", nil
	default:
		return "", fmt.Errorf("gateway: cancel %s: upstream status %d", id, resp.StatusCode)
	}
}
