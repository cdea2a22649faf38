package azure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/qbroker/qbroker/internal/provider"
)

// Defaults.
const (
	// DefaultAPIVersion is the api-version the adapter sends upstream
	// whatever the client asked for (the current SDK's; from it on,
	// storage/sasUri creates the container).
	DefaultAPIVersion = "2026-01-15-preview"
	// DefaultPrefix is the gateway prefix the front is served under.
	DefaultPrefix = "/azure"
	// APIKeyHeader is where SDKs put a workspace API key; it may carry
	// the qbroker token instead of Authorization.
	APIKeyHeader = "x-ms-quantum-api-key"
	// storageVersion is the x-ms-version of the adapter's blob requests.
	storageVersion = "2021-08-06"
	// maxAnswer bounds the upstream JSON answers the adapter buffers.
	maxAnswer = 8 << 20
)

var (
	subRE       = regexp.MustCompile(`^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$`)
	rgRE        = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9\-_.()]{0,89}$`)
	workspaceRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9\-_]{1,49}$`)
)

// Config configures an Adapter.
type Config struct {
	// Endpoint is the workspace's data-plane base, scheme://host of
	// https://{location}.quantum.azure.com (required). Every workspace
	// request goes there; the Entra token is sent nowhere else.
	Endpoint string
	// SubscriptionID, ResourceGroup and Workspace name the one workspace
	// served; requests naming another are refused.
	SubscriptionID, ResourceGroup, Workspace string
	// Storage lists the scheme://host bases the adapter may upload job
	// input to and read output from: the host of the SAS URIs the
	// workspace hands out (https://<account>.blob.core.windows.net).
	// Default: Endpoint only, which fits the emulator's path-style storage.
	Storage []string
	// PublicURL is the external URL of this front (the gateway's address
	// plus Prefix, e.g. https://gateway.example.com/azure); the staging
	// SAS URIs given to agents start with it. Default: the scheme and
	// Host of the request that asked for one, plus Prefix.
	PublicURL string
	// Prefix is the gateway prefix (default DefaultPrefix).
	Prefix string
	// APIVersion is sent upstream on every workspace request (default
	// DefaultAPIVersion).
	APIVersion string
	// Staging bounds the uploads the adapter holds (zero values: defaults).
	Staging StagingLimits
	// Now is the clock for staging expiry (default time.Now).
	Now func() time.Time
}

// Adapter is the gateway's Azure Quantum front (provider.Adapter, with the
// Uploads extra). See the package documentation for the whole sequence.
type Adapter struct {
	endpoint   string   // scheme://host
	storage    []string // scheme://host
	wsPath     string   // /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Quantum/workspaces/{ws}
	sub, rg    string
	ws         string
	public     string
	prefix     string
	apiVersion string
	now        func() time.Time
	stage      *staging
}

var (
	_ provider.Adapter       = (*Adapter)(nil)
	_ provider.ResultFetcher = (*Adapter)(nil)
	_ Uploads                = (*Adapter)(nil)
)

// New validates cfg (every problem at once) and returns an Adapter.
func New(cfg Config) (*Adapter, error) {
	var problems []error
	bad := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	endpoint, err := baseURL(cfg.Endpoint)
	if err != nil {
		bad("endpoint: %w", err)
	}
	storage := []string{endpoint}
	if len(cfg.Storage) > 0 {
		storage = storage[:0]
		for i, s := range cfg.Storage {
			b, err := baseURL(s)
			if err != nil {
				bad("storage[%d]: %w", i, err)
			}
			storage = append(storage, b)
		}
	}
	if !subRE.MatchString(cfg.SubscriptionID) {
		bad("subscription id %q is not a GUID", cfg.SubscriptionID)
	}
	if !rgRE.MatchString(cfg.ResourceGroup) {
		bad("resource group %q is not a valid name", cfg.ResourceGroup)
	}
	if !workspaceRE.MatchString(cfg.Workspace) {
		bad("workspace %q is not a valid name", cfg.Workspace)
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasPrefix(prefix, "/") || strings.HasSuffix(prefix, "/") {
		bad("prefix %q must look like /azure", prefix)
	}
	public := strings.TrimSuffix(cfg.PublicURL, "/")
	if public != "" {
		u, err := url.Parse(public)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			bad("public URL %q must be an absolute http(s) URL without query", cfg.PublicURL)
		}
	}
	limits, err := cfg.Staging.withDefaults()
	if err != nil {
		bad("staging: %w", err)
	}
	if err := errors.Join(problems...); err != nil {
		return nil, fmt.Errorf("azure: invalid config: %w", err)
	}
	apiVersion := cfg.APIVersion
	if apiVersion == "" {
		apiVersion = DefaultAPIVersion
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	a := &Adapter{
		endpoint: endpoint, storage: storage, sub: strings.ToLower(cfg.SubscriptionID), rg: cfg.ResourceGroup, ws: cfg.Workspace,
		public: public, prefix: prefix, apiVersion: apiVersion, now: now,
	}
	a.wsPath = "/subscriptions/" + a.sub + "/resourceGroups/" + url.PathEscape(a.rg) + "/providers/Microsoft.Quantum/workspaces/" + a.ws
	a.stage = newStaging(limits, now)
	return a, nil
}

// baseURL checks that s is scheme://host[:port] (http or https, nothing
// else) and returns it without a trailing slash.
func baseURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q must be scheme://host[:port] only", s)
	}
	return u.Scheme + "://" + u.Host, nil
}

// Name implements provider.Adapter.
func (*Adapter) Name() string { return "azure" }

// WorkspacePath returns the escaped path of the served workspace, the
// start of every job path under the prefix.
func (a *Adapter) WorkspacePath() string { return a.wsPath }

// Token implements provider.Adapter: the qbroker token travels where the
// Azure SDKs put their credential, Authorization: Bearer (a
// TokenCredential), or, from clients set up with a workspace API key, in
// x-ms-quantum-api-key. Several Authorization headers, or an empty token,
// give none.
func (*Adapter) Token(h http.Header) (string, bool) {
	authz := h.Values("Authorization")
	switch len(authz) {
	case 0:
		keys := h.Values(APIKeyHeader)
		if len(keys) == 1 && strings.TrimSpace(keys[0]) != "" {
			return strings.TrimSpace(keys[0]), true
		}
	case 1:
		scheme, tok, ok := strings.Cut(authz[0], " ")
		if ok && strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(tok) != "" {
			return strings.TrimSpace(tok), true
		}
	}
	return "", false
}

// jobPath splits an escaped path under the prefix into the segments after
// the configured workspace. ARM paths compare case-insensitively.
func (a *Adapter) jobPath(escapedPath string) ([]string, bool) {
	segs := strings.Split(strings.TrimPrefix(escapedPath, "/"), "/")
	if len(segs) < 9 {
		return nil, false
	}
	want := []string{"subscriptions", a.sub, "resourceGroups", a.rg, "providers", "Microsoft.Quantum", "workspaces", a.ws}
	for i, w := range want {
		s, err := url.PathUnescape(segs[i])
		if err != nil || strings.Contains(s, "/") || !strings.EqualFold(s, w) {
			return nil, false
		}
	}
	return segs[8:], true
}

// Route implements provider.Adapter, for the configured workspace only:
//
//	PUT  {ws}/jobs/{id}          Submit (the job creation; its input must be staged)
//	GET  {ws}/jobs/{id}          Read ReadJob (the adapter fetches it and strips SAS tokens)
//	GET  {ws}/jobs/{id}/output   Read ReadResult (a qbroker extension: the job's output blob)
//	POST {ws}/jobs/{id}:cancel   Cancel CancelJob
//
// Everything else is refused: listing jobs, DELETE, sessions, quotas,
// providerStatus, jobUpdateOptions, and any other workspace. The upload
// flow (storage/sasUri and the staging area) is classified by UploadRoute.
func (a *Adapter) Route(method, escapedPath string) provider.Route {
	rest, ok := a.jobPath(escapedPath)
	if !ok || len(rest) < 2 || rest[0] != "jobs" {
		return provider.Route{Kind: provider.Refused}
	}
	id := rest[1]
	switch {
	case len(rest) == 2 && method == http.MethodPut && guidRE.MatchString(id):
		return provider.Route{Kind: provider.Submit}
	case len(rest) == 2 && method == http.MethodGet && guidRE.MatchString(id):
		return provider.Route{Kind: provider.Read, JobID: strings.ToLower(id), Action: "ReadJob", Result: true}
	case len(rest) == 3 && rest[2] == "output" && method == http.MethodGet && guidRE.MatchString(id):
		return provider.Route{Kind: provider.Read, JobID: strings.ToLower(id), Action: "ReadResult", Result: true}
	case len(rest) == 2 && method == http.MethodPost:
		if id, ok := cutCancel(id); ok && guidRE.MatchString(id) {
			return provider.Route{Kind: provider.Cancel, JobID: strings.ToLower(id), Action: "CancelJob"}
		}
	}
	return provider.Route{Kind: provider.Refused}
}

// cutCancel cuts the ":cancel" action (its colon possibly escaped) off a
// job segment.
func cutCancel(seg string) (string, bool) {
	for _, suffix := range []string{":cancel", "%3Acancel", "%3acancel"} {
		if id, ok := strings.CutSuffix(seg, suffix); ok {
			return id, true
		}
	}
	return "", false
}

// JobID implements provider.Adapter: the id of the JobDetails the
// workspace answered a creation with (lower case, as Route gives it).
func (*Adapter) JobID(body []byte) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &out); err != nil || !guidRE.MatchString(out.ID) {
		return "", errors.New("no job id in the answer")
	}
	return strings.ToLower(out.ID), nil
}

// Outcome implements provider.Adapter (a JobDetails answer). The cost is
// the service's costEstimate.estimatedTotal when it is in USD.
func (*Adapter) Outcome(body []byte) (provider.Outcome, error) {
	var out struct {
		Status       string `json:"status"`
		CostEstimate *struct {
			CurrencyCode   string   `json:"currencyCode"`
			EstimatedTotal *float64 `json:"estimatedTotal"`
		} `json:"costEstimate"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Status == "" {
		return provider.Outcome{}, errors.New("no status in the answer")
	}
	o := provider.Outcome{Status: out.Status, Terminal: isTerminal(out.Status)}
	if ce := out.CostEstimate; ce != nil && strings.EqualFold(ce.CurrencyCode, "USD") && ce.EstimatedTotal != nil {
		cost := *ce.EstimatedTotal
		o.CostUSD = &cost
	}
	return o, nil
}

// isTerminal reports whether a job status will not change again.
func isTerminal(s string) bool {
	switch s {
	case "Succeeded", "Completed", "Failed", "Cancelled":
		return true
	}
	return false
}

// Authenticate implements provider.Adapter: it removes every credential
// the client sent, sets the broker-minted Entra token as Authorization:
// Bearer, and replaces the query with the adapter's api-version (the
// adapter reads the answers, so it speaks one version). It refuses to put
// the token on a request to any host but the workspace endpoint.
func (a *Adapter) Authenticate(_ context.Context, req *http.Request, _ []byte, c provider.Credential) error {
	for _, h := range []string{"Authorization", APIKeyHeader, "Proxy-Authorization", "Cookie", "x-ms-authorization-auxiliary"} {
		req.Header.Del(h)
	}
	if !strings.EqualFold(req.URL.Scheme+"://"+req.URL.Host, a.endpoint) {
		return errors.New("azure: refusing to send the workspace credential to a host other than the endpoint")
	}
	if c.Secret == "" {
		return errors.New("azure: no access token")
	}
	req.URL.RawQuery = url.Values{"api-version": {a.apiVersion}}.Encode()
	req.Header.Set("Authorization", "Bearer "+c.Secret)
	return nil
}

// WriteError implements provider.Adapter: the Azure.Core error shape,
// {"error":{"code","message"}}, with the code also in x-ms-error-code.
func (*Adapter) WriteError(w http.ResponseWriter, status int, msg string) {
	writeAPIError(w, status, codeFor(status), msg)
}

func codeFor(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "BadRequest"
	case http.StatusUnauthorized:
		return "AuthenticationFailed"
	case http.StatusForbidden:
		return "AuthorizationFailed"
	case http.StatusNotFound:
		return "NotFound"
	case http.StatusConflict:
		return "Conflict"
	case http.StatusRequestEntityTooLarge:
		return "RequestEntityTooLarge"
	case http.StatusTooManyRequests:
		return "TooManyRequests"
	case http.StatusBadGateway:
		return "BadGateway"
	case http.StatusServiceUnavailable:
		return "ServiceUnavailable"
	}
	if status >= 500 {
		return "InternalServerError"
	}
	return "BadRequest"
}

func writeAPIError(w http.ResponseWriter, status int, code, msg string) {
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message = code, msg
	b, _ := json.Marshal(body) // strings always marshal
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("x-ms-error-code", code)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
