package ibmsim

import (
	"net/http"
	"regexp"
	"strings"
	"time"
)

// call is one authenticated Qiskit Runtime request.
type call struct {
	w   http.ResponseWriter
	r   *http.Request
	crn string // the instance named by Service-CRN
	// apiVersion is the IBM-API-Version header ("" when absent).
	apiVersion string
	now        time.Time
}

func (c *call) fail(e *apiError) { writeError(c.w, e) }

var apiVersionRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// runtime wraps a Qiskit Runtime route: it authenticates the caller
// (Authorization), authorizes the instance (Service-CRN) and checks
// IBM-API-Version, in that order.
func (e *Emulator) runtime(h func(*call)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := e.now()
		if !e.authenticated(r, now) {
			e.log.Debug("ibmsim: request refused: invalid credentials", "method", r.Method, "path", r.URL.Path)
			writeError(w, &apiError{status: http.StatusUnauthorized, code: codeInvalidCredentials,
				msg: "Invalid credentials.", solution: "Verify your credentials and try again."})
			return
		}
		crns := r.Header.Values("Service-CRN")
		// UNCERTAIN: IBM's answer to a missing Service-CRN was not found; a
		// wrong one is 403 code 1200 (seen), and a missing one is treated
		// the same.
		if len(crns) != 1 || !e.instances[crns[0]] {
			e.log.Debug("ibmsim: request refused: instance not authorized", "method", r.Method, "path", r.URL.Path)
			writeError(w, &apiError{status: http.StatusForbidden, code: codeNotAuthorized,
				msg: "You are not authorized to perform this action.", solution: "Try again or contact support."})
			return
		}
		c := &call{w: w, r: r, crn: crns[0], now: now}
		if vs := r.Header.Values("IBM-API-Version"); len(vs) > 0 {
			// UNCERTAIN: the header is optional in the OpenAPI; how the
			// service answers a malformed one was not found.
			if _, err := time.Parse(time.DateOnly, vs[0]); len(vs) != 1 || !apiVersionRE.MatchString(vs[0]) || err != nil {
				writeError(w, &apiError{status: http.StatusBadRequest, code: codeValidation,
					msg: "Request validation of header failed, because: IBM-API-Version must be one date in the format YYYY-MM-DD."})
				return
			}
			c.apiVersion = vs[0]
		}
		h(c)
	})
}

// authenticated checks "Authorization: Bearer <IAM access token>" (live,
// unexpired) or "Authorization: apikey <API key>", the fallback IBM's SDK
// uses and the OpenAPI lists (IBMCloudAPIKey). Exactly one Authorization
// header is accepted.
func (e *Emulator) authenticated(r *http.Request, now time.Time) bool {
	vals := r.Header.Values("Authorization")
	if len(vals) != 1 {
		return false
	}
	scheme, cred, ok := strings.Cut(vals[0], " ")
	cred = strings.TrimLeft(cred, " ")
	if !ok || cred == "" || strings.ContainsAny(cred, " \t") {
		return false
	}
	switch strings.ToLower(scheme) {
	case "bearer":
		return e.tokenValid(cred, now)
	case "apikey":
		return e.apiKeyValid(cred)
	default:
		return false
	}
}

// versionInfo is one entry of GET /api/v1/versions.
type versionInfo struct {
	Version    string `json:"version"`
	SunsetDate string `json:"sunset_date,omitempty"`
	Status     string `json:"status"`
}

// handleVersions is GET /api/v1/versions (no authentication), with the
// versions of the published OpenAPI example.
func (e *Emulator) handleVersions(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string][]versionInfo{"versions": {
		{Version: "2024-01-01", SunsetDate: "2027-01-01", Status: "deprecated"},
		{Version: "2025-01-01", SunsetDate: "2027-01-01", Status: "deprecated"},
		{Version: "2025-05-01", SunsetDate: "2027-01-01", Status: "deprecated"},
		{Version: "2026-02-01", SunsetDate: "2027-02-01", Status: "deprecated"},
		{Version: "2026-02-15", SunsetDate: "2027-02-15", Status: "deprecated"},
		{Version: "2026-03-15", Status: "live"},
	}})
}
