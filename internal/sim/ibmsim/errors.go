package ibmsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Qiskit Runtime error codes. The ones marked "seen" appear in answers
// captured from the live service (issue threads and a client's recorded
// tests); the others are UNCERTAIN: IBM's code for that case was not found,
// and the value is the one IBM's own Direct Access emulator uses or, failing
// that, one the emulator picked.
const (
	// codeNotAuthorized: 403 "You are not authorized to perform this
	// action." (seen, for a wrong Service-CRN).
	codeNotAuthorized = 1200
	// codeInvalidCredentials: 401 "Invalid credentials." (seen).
	codeInvalidCredentials = 1201
	// codeValidation: 400 "Request validation of body failed, because: …"
	// (seen).
	codeValidation = 1208
	// codeBackendNotFound: 404 "Backend X not found." (UNCERTAIN: from
	// IBM's Direct Access emulator).
	codeBackendNotFound = 1216
	// codeJobNotFound: 404 "Job not found. Job ID: X." (seen).
	codeJobNotFound = 1291
	// codeNotCancellable: 409 "Job is not cancellable." (UNCERTAIN: from
	// IBM's Direct Access emulator; the 409 status is in the OpenAPI).
	codeNotCancellable = 1306
	// codeNotTerminal: 400 for deleting an unfinished job (UNCERTAIN: from
	// IBM's Direct Access emulator).
	codeNotTerminal = 1337
	// codeRateLimited: 429 for the jobs-per-minute limit (UNCERTAIN: the
	// emulator's choice; IBM's code was not found).
	codeRateLimited = 1429
	// codeNotFound: 404 for an unknown route (UNCERTAIN: the emulator's
	// choice).
	codeNotFound = 1404
	// codeUnavailable: 503 while shutting down (UNCERTAIN).
	codeUnavailable = 1503

	// reasonJobNotValid is the state.reason_code of a job that failed
	// validation after it was queued ("Error code 3211; Job not valid.",
	// seen).
	reasonJobNotValid = 3211
)

const moreInfo = "https://cloud.ibm.com/apidocs/quantum-computing#error-handling"

// apiError is a Qiskit Runtime error answer.
type apiError struct {
	status   int
	code     int
	msg      string
	solution string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d: %s", e.code, e.msg) }

func validationError(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: codeValidation,
		msg: "Request validation of body failed, because: " + fmt.Sprintf(format, args...)}
}

func jobNotFound(id string) *apiError {
	return &apiError{status: http.StatusNotFound, code: codeJobNotFound,
		msg:      fmt.Sprintf("Job not found. Job ID: %s.", id),
		solution: "Verify the job ID is correct, and that you have the correct access permissions."}
}

func backendNotFound(name string) *apiError {
	return &apiError{status: http.StatusNotFound, code: codeBackendNotFound,
		msg: fmt.Sprintf("Backend %s not found.", name), solution: "Use a different backend."}
}

// errorItem and errorContainer are the OpenAPI ErrorContainer. IBM declares
// code a string but sends an integer (seen), and adds a solution.
type errorItem struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	Solution string `json:"solution,omitempty"`
	MoreInfo string `json:"more_info"`
}

type errorContainer struct {
	Errors []errorItem `json:"errors"`
	Trace  string      `json:"trace"`
}

// writeError writes e as an ErrorContainer with a fresh trace id.
func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, errorContainer{
		Errors: []errorItem{{Code: e.code, Message: e.msg, Solution: e.solution, MoreInfo: moreInfo}},
		Trace:  newUUID(),
	})
}

// writeJSON writes v as the JSON answer.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "could not encode the response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// iamContext is the "context" object of an IAM error. The fields are the
// ones IAM sends (seen); the values describe the emulator.
type iamContext struct {
	RequestID   string `json:"requestId"`
	RequestType string `json:"requestType"`
	URL         string `json:"url"`
	InstanceID  string `json:"instanceId"`
	StartTime   string `json:"startTime"`
	EndTime     string `json:"endTime"`
	ElapsedTime string `json:"elapsedTime"`
	Locale      string `json:"locale"`
	ClusterName string `json:"clusterName"`
}

type iamError struct {
	ErrorCode    string     `json:"errorCode"`
	ErrorMessage string     `json:"errorMessage"`
	ErrorDetails string     `json:"errorDetails,omitempty"`
	Context      iamContext `json:"context"`
}

// writeIAMError writes IAM's error shape:
// {"errorCode","errorMessage","errorDetails","context":{…}}.
func writeIAMError(w http.ResponseWriter, now time.Time, status int, code, msg, details string) {
	ts := now.UTC().Format("02.01.2006 15:04:05:000 UTC")
	writeJSON(w, status, iamError{
		ErrorCode: code, ErrorMessage: msg, ErrorDetails: details,
		Context: iamContext{
			RequestID: newUUID(), RequestType: "incoming.Identity_Token", URL: "https://iam.cloud.ibm.com",
			InstanceID: "ibmsim", StartTime: ts, EndTime: ts, ElapsedTime: "0", Locale: "en_US",
			ClusterName: "ibmsim",
		},
	})
}
