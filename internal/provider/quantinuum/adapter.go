package quantinuum

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/qbroker/qbroker/internal/provider"
)

// Adapter is the gateway's front for the machine API. Its zero value
// refuses every submission: MaxCostHQC is required.
type Adapter struct {
	// MaxCostHQC is the most a job may cost, in HQC: every job is
	// forwarded with max-cost at most this (a job asking for less keeps
	// its own). It must be positive. It is one value for the whole
	// provider until provider.Scope can carry a per-role ceiling.
	MaxCostHQC float64
	// Group, when set, is the billing group every job is charged to: a
	// submission naming another group is refused, one naming none is
	// forwarded with this one. When empty, a submission naming a group is
	// refused (the caller cannot choose who pays).
	Group string
	// USDPerHQC, when positive, turns the HQC cost a completed job reports
	// into Outcome.CostUSD (the service reports HQC, not money).
	USDPerHQC float64
}

var _ provider.Adapter = Adapter{}

// Name implements provider.Adapter.
func (Adapter) Name() string { return "quantinuum" }

// Token implements provider.Adapter: the qbroker token travels where
// Quantinuum clients put their id-token, as the whole value of the one
// Authorization header, without a scheme. A value with a space ("Bearer
// …") or several Authorization headers are not read.
func (Adapter) Token(h http.Header) (string, bool) {
	vals := h.Values("Authorization")
	if len(vals) != 1 || !headerSafe(vals[0]) {
		return "", false
	}
	return vals[0], true
}

// jobIDRE matches a job id (32 hexadecimal digits in the emulator; the
// service's form is not in the reference, so a little wider, never with
// anything that needs escaping).
var jobIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// machineRE matches a machine name such as H1-1E.
var machineRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Route implements provider.Adapter. Under the prefix the paths are the
// service's own: POST /v1/job submits; GET /v1/job/{id} reads the job with
// its results (policy action ReadResult); POST /v1/job/{id}/cancel
// cancels; GET /v1/machine, /v1/machine/ and /v1/machine/{name} are
// public. Everything else is refused, notably POST /v1/login (the
// gateway never logs in for a caller) and any listing of jobs.
func (Adapter) Route(method, p string) provider.Route {
	switch {
	case method == http.MethodPost && p == "/v1/job":
		return provider.Route{Kind: provider.Submit}
	case method == http.MethodGet && (p == "/v1/machine" || p == "/v1/machine/"):
		return provider.Route{Kind: provider.Public}
	}
	rest, ok := strings.CutPrefix(p, "/v1/")
	if !ok {
		return provider.Route{Kind: provider.Refused}
	}
	segs := strings.Split(rest, "/")
	switch {
	case method == http.MethodGet && len(segs) == 2 && segs[0] == "job" && jobIDRE.MatchString(segs[1]):
		return provider.Route{Kind: provider.Read, JobID: segs[1], Action: "ReadResult"}
	case method == http.MethodPost && len(segs) == 3 && segs[0] == "job" && segs[2] == "cancel" && jobIDRE.MatchString(segs[1]):
		return provider.Route{Kind: provider.Cancel, JobID: segs[1], Action: "CancelJob"}
	case method == http.MethodGet && len(segs) == 2 && segs[0] == "machine" && machineRE.MatchString(segs[1]):
		return provider.Route{Kind: provider.Public}
	}
	return provider.Route{Kind: provider.Refused}
}

// JobID implements provider.Adapter: the "job" of the submit answer.
func (Adapter) JobID(body []byte) (string, error) {
	var out struct {
		Job string `json:"job"`
	}
	if err := json.Unmarshal(body, &out); err != nil || !jobIDRE.MatchString(out.Job) {
		return "", errors.New("no usable job id in the answer")
	}
	return out.Job, nil
}

// Job statuses the service reports; the last three are final.
const (
	StatusQueued    = "queued"
	StatusRunning   = "running"
	StatusCanceling = "canceling"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	StatusCanceled  = "canceled"
)

// Outcome implements provider.Adapter (a GET /v1/job/{id} answer). A
// completed job's cost, in HQC, is given in USD when USDPerHQC is set;
// the cost of a failed or canceled job is not reported (UNCERTAIN what is
// charged for them).
func (a Adapter) Outcome(body []byte) (provider.Outcome, error) {
	var out struct {
		Status string   `json:"status"`
		Cost   *float64 `json:"cost"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Status == "" {
		return provider.Outcome{}, errors.New("no status in the answer")
	}
	o := provider.Outcome{Status: out.Status}
	switch out.Status {
	case StatusCompleted, StatusFailed, StatusCanceled:
		o.Terminal = true
	}
	if out.Status == StatusCompleted && a.USDPerHQC > 0 && out.Cost != nil && *out.Cost >= 0 {
		usd := *out.Cost * a.USDPerHQC
		o.CostUSD = &usd
	}
	return o, nil
}

// credentialHeaders are removed from every upstream request before the
// id-token is set: the caller's qbroker token and anything else that could
// carry a credential (Nexus uses cookies).
var credentialHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "X-Api-Key"}

// Authenticate implements provider.Adapter: it removes every
// credential-bearing header and sets Authorization to the broker-held
// id-token, raw, as Quantinuum clients send it.
func (Adapter) Authenticate(_ context.Context, req *http.Request, _ []byte, c provider.Credential) error {
	for _, h := range credentialHeaders {
		req.Header.Del(h)
	}
	if !headerSafe(c.Secret) {
		return errors.New("quantinuum: the upstream credential is not a usable id-token")
	}
	req.Header.Set("Authorization", c.Secret)
	return nil
}

// WriteError implements provider.Adapter: the service's
// {"error":{"code":N,"text":"…"}}, with the HTTP status as the code.
func (Adapter) WriteError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	var body struct {
		Error struct {
			Code int    `json:"code"`
			Text string `json:"text"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Text = status, msg
	_ = json.NewEncoder(w).Encode(body)
}

// CancelCall implements provider.CancelCaller.
func (Adapter) CancelCall(id string) (string, string, []byte) {
	return http.MethodPost, "/v1/job/" + url.PathEscape(id) + "/cancel", nil
}
