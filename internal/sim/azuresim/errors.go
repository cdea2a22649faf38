package azuresim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// entraError is a refusal of the token endpoint, rendered in Entra's shape:
//
//	{"error":"invalid_client","error_description":"AADSTS7000215: … Trace ID: … Correlation ID: … Timestamp: …",
//	 "error_codes":[7000215],"timestamp":"2006-01-02 15:04:05Z","trace_id":"…","correlation_id":"…",
//	 "error_uri":"https://login.microsoftonline.com/error?code=7000215"}
//
// invalid_client answers 401, everything else 400, as OAuth 2.0 (RFC 6749
// §5.2) and Entra's observed answers do.
type entraError struct {
	err  string // OAuth error: invalid_client, invalid_request, …
	code int    // AADSTS number
	msg  string
}

func (e *entraError) Error() string { return fmt.Sprintf("%s: AADSTS%d: %s", e.err, e.code, e.msg) }

func (e *entraError) status() int {
	if e.err == "invalid_client" {
		return http.StatusUnauthorized
	}
	return http.StatusBadRequest
}

type entraBody struct {
	Error         string `json:"error"`
	Description   string `json:"error_description"`
	ErrorCodes    []int  `json:"error_codes"`
	Timestamp     string `json:"timestamp"`
	TraceID       string `json:"trace_id"`
	CorrelationID string `json:"correlation_id"`
	ErrorURI      string `json:"error_uri"`
}

func (e *Emulator) writeEntraError(w http.ResponseWriter, r *http.Request, ee *entraError) {
	now := e.now().UTC()
	trace, corr := newUUID(), r.Header.Get("client-request-id")
	if !guidRE.MatchString(corr) {
		corr = newUUID()
	}
	ts := now.Format("2006-01-02 15:04:05Z")
	desc := fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", ee.code, ee.msg, trace, corr, ts)
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, ee.status(), entraBody{
		Error: ee.err, Description: desc, ErrorCodes: []int{ee.code}, Timestamp: ts,
		TraceID: trace, CorrelationID: corr, ErrorURI: "https://login.microsoftonline.com/error?code=" + strconv.Itoa(ee.code),
	})
}

// apiError is a refusal of the workspace API in the Azure.Core error shape
// of the data-plane spec: {"error":{"code","message"}} with the code also in
// the x-ms-error-code header. The codes come from Azure Resource Manager
// and the Azure REST API guidelines; the exact codes the Quantum data plane
// uses are UNCERTAIN.
type apiError struct {
	status int
	code   string
	msg    string
	// bearer, when set, is the error_description of a WWW-Authenticate:
	// Bearer challenge (401 answers).
	bearer string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

type apiErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (e *Emulator) writeAPIError(w http.ResponseWriter, ae *apiError) {
	if ae.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization_uri="https://login.microsoftonline.com/%s", error="invalid_token", error_description=%q`,
			e.cfg.TenantID, ae.bearer))
	}
	w.Header().Set("x-ms-error-code", ae.code)
	w.Header().Set("x-ms-request-id", newUUID())
	var b apiErrorBody
	b.Error.Code, b.Error.Message = ae.code, ae.msg
	writeJSON(w, ae.status, b)
}

func badRequest(code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, msg: fmt.Sprintf(format, args...)}
}

// storageError is a refusal of blob storage: XML <Error><Code/><Message/>
// with x-ms-error-code, as Azure Storage answers.
type storageError struct {
	status int
	code   string
	msg    string
}

func (e *Emulator) writeStorageError(w http.ResponseWriter, r *http.Request, se *storageError) {
	reqID := newUUID()
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("x-ms-error-code", se.code)
	w.Header().Set("x-ms-request-id", reqID)
	w.WriteHeader(se.status)
	if r.Method == http.MethodHead {
		return
	}
	body := struct {
		XMLName xml.Name `xml:"Error"`
		Code    string   `xml:"Code"`
		Message string   `xml:"Message"`
	}{Code: se.code, Message: fmt.Sprintf("%s\nRequestId:%s\nTime:%s", se.msg, reqID, e.now().UTC().Format("2006-01-02T15:04:05.0000000Z"))}
	out, _ := xml.Marshal(body) // a struct of strings always marshals
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// azureTime formats t as the service does: 7 fractional digits, +00:00.
func azureTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000-07:00") }

// randomB64 returns n random bytes, base64url-encoded without padding.
func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}
