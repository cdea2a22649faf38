package rigettisim

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"code":"internal","message":"could not encode the answer","requestId":""}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// writeToken answers a token request; token answers must not be cached
// (RFC 6749 §5.1).
func writeToken(w http.ResponseWriter, t tokenResponse) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, t)
}

// oauthError is an OAuth 2.0 error answer (RFC 6749 §5.2).
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Cache-Control", "no-store")
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="qcs"`)
	}
	writeJSON(w, status, oauthError{Error: code, Description: desc})
}

// apiError is the QCS REST error model {code, message, requestId}. The
// code strings are the emulator's (UNCERTAIN: QCS's values are not in the
// reference).
type apiError struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"requestId"`
}

func writeAPIError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, apiError{Code: code, Message: msg, RequestID: requestID()})
}

func codeFor(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	default:
		return "bad_request"
	}
}

func requestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return fmt.Sprintf("%x", b)
}

// user is the QCS User model (GET /v1/auth:getUser).
type user struct {
	CreatedTime string      `json:"createdTime"`
	ID          int64       `json:"id"`
	IdpID       string      `json:"idpId"`
	Profile     userProfile `json:"profile"`
}

type userProfile struct {
	Email        string `json:"email"`
	FirstName    string `json:"firstName"`
	LastName     string `json:"lastName"`
	Organization string `json:"organization"`
}

// quantumProcessor is the QCS QuantumProcessor model.
type quantumProcessor struct {
	ID string `json:"id"`
}

// listProcessorsResponse is the QCS ListQuantumProcessorsResponse model.
type listProcessorsResponse struct {
	QuantumProcessors []quantumProcessor `json:"quantumProcessors"`
	NextPageToken     string             `json:"nextPageToken,omitempty"`
}
