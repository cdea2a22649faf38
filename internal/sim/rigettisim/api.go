package rigettisim

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxPageSize bounds pageSize on list calls (an emulator choice).
const maxPageSize = 100

// bearer wraps a REST route: exactly one "Authorization: Bearer <access
// token>" header whose token this emulator signed and whose exp is after
// Config.Now. Any failure is 401 with a WWW-Authenticate challenge.
func (e *Emulator) bearer(next func(http.ResponseWriter, *http.Request, *accessClaims)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vals := r.Header.Values("Authorization")
		refuse := func(desc string) {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+desc+`"`)
			writeAPIError(w, http.StatusUnauthorized, "unauthorized", desc)
		}
		if len(vals) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer`)
			writeAPIError(w, http.StatusUnauthorized, "unauthorized", "exactly one Authorization: Bearer header is required")
			return
		}
		scheme, tok, ok := strings.Cut(vals[0], " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || strings.ContainsAny(tok, " \t") {
			refuse("malformed Authorization header; expected Bearer <access token>")
			return
		}
		c, err := e.verifyAccess(tok)
		switch {
		case errors.Is(err, errExpired):
			refuse("the access token has expired")
			return
		case err != nil:
			refuse("the access token is invalid")
			return
		}
		next(w, r, c)
	})
}

// handleGetUser answers GET /v1/auth:getUser with the user behind a
// refresh-token access token; a client_credentials token has no user (404;
// UNCERTAIN).
func (e *Emulator) handleGetUser(w http.ResponseWriter, _ *http.Request, c *accessClaims) {
	if c.UserID == "" {
		writeAPIError(w, http.StatusNotFound, "not_found", "no user is associated with this client's token")
		return
	}
	writeJSON(w, http.StatusOK, user{
		CreatedTime: e.created.Format(time.RFC3339),
		ID:          e.userID,
		IdpID:       e.idpID,
		Profile:     userProfile{Email: e.cfg.Email, FirstName: "QCS", LastName: "User", Organization: "qbroker"},
	})
}

// handleListProcessors answers GET /v1/quantumProcessors?pageSize=&pageToken=.
// pageToken is the opaque nextPageToken of the previous page.
func (e *Emulator) handleListProcessors(w http.ResponseWriter, r *http.Request, _ *accessClaims) {
	q := r.URL.Query()
	size := 10
	if s := q.Get("pageSize"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPageSize {
			writeAPIError(w, http.StatusBadRequest, "bad_request", "pageSize must be between 1 and 100")
			return
		}
		size = n
	}
	start := 0
	if t := q.Get("pageToken"); t != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(t, "p"))
		if err != nil || !strings.HasPrefix(t, "p") || n < 0 || n > len(e.cfg.QuantumProcessors) {
			writeAPIError(w, http.StatusBadRequest, "bad_request", "invalid pageToken")
			return
		}
		start = n
	}
	end := min(start+size, len(e.cfg.QuantumProcessors))
	resp := listProcessorsResponse{QuantumProcessors: []quantumProcessor{}}
	for _, id := range e.cfg.QuantumProcessors[start:end] {
		resp.QuantumProcessors = append(resp.QuantumProcessors, quantumProcessor{ID: id})
	}
	if end < len(e.cfg.QuantumProcessors) {
		resp.NextPageToken = "p" + strconv.Itoa(end)
	}
	writeJSON(w, http.StatusOK, resp)
}

func (e *Emulator) handleGetProcessor(w http.ResponseWriter, r *http.Request, _ *accessClaims) {
	id := r.PathValue("id")
	for _, p := range e.cfg.QuantumProcessors {
		if p == id {
			writeJSON(w, http.StatusOK, quantumProcessor{ID: id})
			return
		}
	}
	writeAPIError(w, http.StatusNotFound, "not_found", "quantum processor not found")
}
