package ionq

import (
	"errors"
	"net/http"
	"strings"
)

// Authorization schemes.
const (
	SchemeAPIKey = "apiKey"
	SchemeBearer = "Bearer"
)

// ParseAuthorization reads the single Authorization header as
// "<scheme> <credential>": exactly one header, one space, a non-empty
// credential without whitespace. The scheme is returned as sent.
func ParseAuthorization(h http.Header) (scheme, credential string, ok bool) {
	vals := h.Values("Authorization")
	if len(vals) != 1 {
		return "", "", false
	}
	scheme, cred, found := strings.Cut(vals[0], " ")
	if !found || scheme == "" || cred == "" || strings.ContainsAny(cred, " \t\r\n") {
		return "", "", false
	}
	return scheme, cred, true
}

// APIKeyFromHeader returns the credential of an "Authorization: apiKey <k>"
// or "Authorization: Bearer <k>" header (scheme matched case-insensitively).
// Agents talking to the gateway may use either; the key is the job token.
func APIKeyFromHeader(h http.Header) (string, bool) {
	scheme, cred, ok := ParseAuthorization(h)
	if !ok {
		return "", false
	}
	if !strings.EqualFold(scheme, SchemeAPIKey) && !strings.EqualFold(scheme, SchemeBearer) {
		return "", false
	}
	return cred, true
}

// SetAPIKey replaces any Authorization header with "apiKey <key>", the form
// IonQ requires.
func SetAPIKey(h http.Header, key string) {
	h.Set("Authorization", SchemeAPIKey+" "+key)
}

// ErrorFromValidation maps a request problem to IonQ's 400 error shape,
// naming the offending key in validation.keys when known.
func ErrorFromValidation(err error) *Error {
	e := NewError(http.StatusBadRequest, err.Error())
	var ve *ValidationError
	if errors.As(err, &ve) && ve.Field != "" {
		e.Validation = &Validation{Keys: []string{ve.Field}, Source: "payload"}
	}
	return e
}
