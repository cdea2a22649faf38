package ibm

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/qbroker/qbroker/internal/provider"
)

// DefaultAPIVersion is the IBM-API-Version sent when the forwarded request
// carries none: the version qiskit-ibm-runtime pins.
const DefaultAPIVersion = "2026-04-15"

// Adapter is the gateway's Qiskit Runtime front. Its zero value is not
// usable: InstanceCRN is required.
type Adapter struct {
	// InstanceCRN is the Qiskit Runtime instance every job runs in and is
	// billed to, sent as Service-CRN, e.g.
	// crn:v1:bluemix:public:quantum-computing:us-east:a/<account>:<guid>::
	InstanceCRN string
	// APIVersion is the IBM-API-Version sent when the request carries no
	// valid one (default DefaultAPIVersion).
	APIVersion string
	// USDPerQPUSecond, when positive, turns a job's reported usage into
	// Outcome.CostUSD; IBM reports seconds, not money.
	USDPerQPUSecond float64
}

var _ provider.Adapter = Adapter{}

// Name implements provider.Adapter.
func (Adapter) Name() string { return "ibm" }

// Token implements provider.Adapter: the qbroker token travels where
// Qiskit puts its IAM token, as the one Authorization: Bearer header.
// "Authorization: apikey" is not read: a client configured to send its
// qbroker token as an API key would first send it to IBM's IAM.
func (Adapter) Token(h http.Header) (string, bool) {
	vals := h.Values("Authorization")
	if len(vals) != 1 {
		return "", false
	}
	scheme, tok, ok := strings.Cut(vals[0], " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "bearer") || tok == "" || strings.ContainsAny(tok, " \t") {
		return "", false
	}
	return tok, true
}

// jobIDRE matches a Qiskit Runtime job id (20 characters of [0-9a-v] as
// issued today; a little wider in case the form changes, never with
// anything that needs escaping).
var jobIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// backendRE matches a backend name.
var backendRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// Route implements provider.Adapter. Under the prefix the paths are the
// service's own: POST /api/v1/jobs submits; GET /api/v1/jobs/{id} and
// /results read; POST /api/v1/jobs/{id}/cancel cancels; the backend list
// and a backend's configuration, properties and status are public.
// Everything else is refused, notably GET /api/v1/jobs (it lists every
// job of the instance, whoever ran it), DELETE of a job, its logs,
// metrics and tags, sessions and instance usage.
func (Adapter) Route(method, p string) provider.Route {
	rest, ok := strings.CutPrefix(p, "/api/v1/")
	if !ok {
		return provider.Route{Kind: provider.Refused}
	}
	segs := strings.Split(rest, "/")
	switch {
	case method == http.MethodPost && rest == "jobs":
		return provider.Route{Kind: provider.Submit}
	case method == http.MethodGet && len(segs) == 2 && segs[0] == "jobs" && jobIDRE.MatchString(segs[1]):
		return provider.Route{Kind: provider.Read, JobID: segs[1], Action: "ReadJob"}
	case method == http.MethodGet && len(segs) == 3 && segs[0] == "jobs" && jobIDRE.MatchString(segs[1]) && segs[2] == "results":
		return provider.Route{Kind: provider.Read, JobID: segs[1], Action: "ReadResult"}
	case method == http.MethodPost && len(segs) == 3 && segs[0] == "jobs" && jobIDRE.MatchString(segs[1]) && segs[2] == "cancel":
		return provider.Route{Kind: provider.Cancel, JobID: segs[1], Action: "CancelJob"}
	case method == http.MethodGet && rest == "backends":
		return provider.Route{Kind: provider.Public}
	case method == http.MethodGet && len(segs) == 3 && segs[0] == "backends" && backendRE.MatchString(segs[1]):
		switch segs[2] {
		case "configuration", "properties", "status":
			return provider.Route{Kind: provider.Public}
		}
	}
	return provider.Route{Kind: provider.Refused}
}

// forwardedHeaders are the only request headers Authenticate leaves; every
// other one (Cookie, X-Api-Key, a second Service-CRN, Accept-Encoding, whose
// compressed answer the gateway could not read, …) is dropped.
var forwardedHeaders = []string{"Accept", "Content-Type", "User-Agent", "IBM-API-Version"}

var apiVersionRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// Authenticate implements provider.Adapter: the request keeps only
// forwardedHeaders and gains Authorization: Bearer <IAM token> and
// Service-CRN: <InstanceCRN>. Whatever credential the client sent,
// including "Authorization: apikey", is gone. IBM-API-Version is kept when
// it is one date, and set to APIVersion otherwise.
func (a Adapter) Authenticate(_ context.Context, req *http.Request, _ []byte, c provider.Credential) error {
	if a.InstanceCRN == "" {
		return errors.New("ibm: no instance CRN configured")
	}
	if c.Secret == "" || strings.ContainsAny(c.Secret, " \t\r\n") {
		return errors.New("ibm: no usable IAM token")
	}
	kept := http.Header{}
	for _, h := range forwardedHeaders {
		if v := req.Header.Values(h); len(v) == 1 {
			kept.Set(h, v[0])
		}
	}
	if v := kept.Get("IBM-API-Version"); !apiVersionRE.MatchString(v) {
		ver := a.APIVersion
		if ver == "" {
			ver = DefaultAPIVersion
		}
		kept.Set("IBM-API-Version", ver)
	}
	kept.Set("Authorization", "Bearer "+c.Secret)
	kept.Set("Service-CRN", a.InstanceCRN)
	req.Header = kept
	return nil
}

// JobID implements provider.Adapter: the "id" of POST /jobs's answer.
func (Adapter) JobID(body []byte) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &out); err != nil || !jobIDRE.MatchString(out.ID) {
		return "", errors.New("no job id in the answer")
	}
	return out.ID, nil
}

// Outcome implements provider.Adapter for GET /jobs/{id}'s answer: the
// status (state.status, else status), whether it is final, and, when
// USDPerQPUSecond is set and the answer reports usage, the cost.
func (a Adapter) Outcome(body []byte) (provider.Outcome, error) {
	var out struct {
		State struct {
			Status string `json:"status"`
		} `json:"state"`
		Status string `json:"status"`
		Usage  *struct {
			QPUChargeSeconds *float64 `json:"qpu_charge_time_seconds"`
			QuantumSeconds   *float64 `json:"quantum_seconds"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return provider.Outcome{}, errors.New("the job answer is not JSON")
	}
	status := out.State.Status
	if status == "" {
		status = out.Status
	}
	if status == "" {
		return provider.Outcome{}, errors.New("no status in the job answer")
	}
	o := provider.Outcome{Status: status, Terminal: terminal(status)}
	if out.Usage != nil {
		secs := out.Usage.QPUChargeSeconds
		if secs == nil {
			secs = out.Usage.QuantumSeconds
		}
		if secs != nil && *secs >= 0 {
			o.QPUSeconds = secs
		}
		if a.USDPerQPUSecond > 0 && secs != nil && *secs >= 0 {
			cost := *secs * a.USDPerQPUSecond
			o.CostUSD = &cost
		}
	}
	return o, nil
}

// terminal reports whether status is final: the REST API's Completed,
// Cancelled, "Cancelled - Ran too long" and Failed, or the SDK's DONE,
// CANCELLED and ERROR.
func terminal(status string) bool {
	s := strings.ToLower(status)
	switch {
	case s == "completed" || s == "done" || s == "failed" || s == "error":
		return true
	case s == "cancelled" || strings.HasPrefix(s, "cancelled - "):
		return true
	}
	return false
}

// WriteError implements provider.Adapter: Qiskit Runtime's ErrorContainer
// {"errors":[{"code","message","solution","more_info"}],"trace"}, with the
// service's codes where one fits (1201 invalid credentials, 1200 not
// authorized, 1208 validation, 1291 job not found) and 1000+status
// otherwise.
func (Adapter) WriteError(w http.ResponseWriter, status int, msg string) {
	code := 1000 + status
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		code = 1208
	case http.StatusUnauthorized:
		code = 1201
	case http.StatusForbidden:
		code = 1200
	case http.StatusNotFound:
		code = 1291
	}
	type item struct {
		Code     int    `json:"code"`
		Message  string `json:"message"`
		MoreInfo string `json:"more_info"`
	}
	body, _ := json.Marshal(struct {
		Errors []item `json:"errors"`
		Trace  string `json:"trace"`
	}{Errors: []item{{Code: code, Message: msg, MoreInfo: "https://cloud.ibm.com/apidocs/quantum-computing#error-handling"}}, Trace: traceID()})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// traceID is a random UUID-shaped trace id, as the service sends.
func traceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// CancelCall implements provider.CancelCaller.
func (Adapter) CancelCall(id string) (string, string, []byte) {
	return http.MethodPost, "/api/v1/jobs/" + url.PathEscape(id) + "/cancel", nil
}
