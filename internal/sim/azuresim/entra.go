package azuresim

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// Entra's refusals. Codes and texts follow Microsoft's error-code reference
// (learn.microsoft.com/entra/identity-platform/reference-error-codes) and
// answers seen in public logs (AADSTS7000215, 700016, 700211/700212/700213
// as invalid_client with 401, 700024, 700027, 50027, 90002, 900144,
// 7000218, 1002012, 500011). Where a code could not be confirmed the
// comment says UNCERTAIN.
func errMissingParam(name string) *entraError {
	return &entraError{err: "invalid_request", code: 900144, msg: fmt.Sprintf("The request body must contain the following parameter: '%s'.", name)}
}

func errTenantNotFound(tenant string) *entraError {
	return &entraError{err: "invalid_request", code: 90002, msg: fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", clip(tenant))}
}

func errAppNotFound(clientID, tenant string) *entraError {
	return &entraError{err: "unauthorized_client", code: 700016, msg: fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clip(clientID), tenant)}
}

func errBadSecret(clientID string) *entraError {
	return &entraError{err: "invalid_client", code: 7000215, msg: fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", clientID)}
}

// tokenResponse is Entra's v2.0 client-credentials answer.
type tokenResponse struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	ExtExpiresIn int64  `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
}

func (e *Emulator) entraRoutes() {
	e.entra.HandleFunc("/{tenant}/oauth2/v2.0/token", e.handleToken)
	e.entra.HandleFunc("GET /{tenant}/discovery/v2.0/keys", e.handleKeys)
}

func (e *Emulator) serveEntra(w http.ResponseWriter, r *http.Request) {
	if _, pattern := e.entra.Handler(r); pattern == "" {
		// Entra answers unknown endpoints with an HTML error page; JSON
		// with the same code is close enough for a client. UNCERTAIN.
		e.writeEntraError(w, r, &entraError{err: "invalid_request", code: 900561, msg: "The endpoint is not served by this emulator."})
		return
	}
	e.entra.ServeHTTP(w, r)
}

func (e *Emulator) handleKeys(w http.ResponseWriter, r *http.Request) {
	if t := r.PathValue("tenant"); !strings.EqualFold(t, e.cfg.TenantID) && t != "common" {
		e.writeEntraError(w, r, errTenantNotFound(t))
		return
	}
	writeJSON(w, http.StatusOK, e.JWKS())
}

// handleToken is POST /{tenant}/oauth2/v2.0/token with
// grant_type=client_credentials. Checks, in order: method, tenant, form,
// grant_type, client_id, the client credential (secret or assertion), scope.
func (e *Emulator) handleToken(w http.ResponseWriter, r *http.Request) {
	tok, ee := e.token(w, r)
	if ee != nil {
		e.log.Debug("azuresim: token refused", "error", ee.err, "code", ee.code)
		e.writeEntraError(w, r, ee)
		return
	}
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, tok)
}

func (e *Emulator) token(w http.ResponseWriter, r *http.Request) (*tokenResponse, *entraError) {
	if r.Method != http.MethodPost {
		return nil, &entraError{err: "invalid_request", code: 900561, msg: fmt.Sprintf("The endpoint only accepts POST requests. Received a %s request.", r.Method)}
	}
	if t := r.PathValue("tenant"); !strings.EqualFold(t, e.cfg.TenantID) {
		// "common" and "organizations" name no tenant for an application
		// acting as itself; Entra refuses them for client credentials
		// (the exact code there is UNCERTAIN; 90002 is used for all).
		return nil, errTenantNotFound(t)
	}
	form, ee := readForm(w, r)
	if ee != nil {
		return nil, ee
	}
	switch gt := form.Get("grant_type"); gt {
	case "":
		return nil, errMissingParam("grant_type")
	case "client_credentials":
	default:
		// AADSTS70003 (unsupported_grant_type) is UNCERTAIN for other
		// valid grants, which Entra may route to their own checks.
		return nil, &entraError{err: "unsupported_grant_type", code: 70003, msg: fmt.Sprintf("The app requested an unsupported grant type '%s'.", clip(gt))}
	}
	clientID := form.Get("client_id")
	if clientID == "" {
		return nil, errMissingParam("client_id")
	}
	if !strings.EqualFold(clientID, e.cfg.ClientID) {
		return nil, errAppNotFound(clientID, e.cfg.TenantID)
	}
	acr, ee := e.authenticateClient(form)
	if ee != nil {
		return nil, ee
	}
	resource, ee := scopeResource(form.Get("scope"), e.cfg.TenantID)
	if ee != nil {
		return nil, ee
	}
	access, exp, err := e.issueToken(resource, acr)
	if err != nil {
		return nil, &entraError{err: "temporarily_unavailable", code: 90033, msg: "A transient error has occurred. Please try again."}
	}
	e.log.Debug("azuresim: token issued", "resource", resource, "appidacr", acr, "expires", exp)
	ttl := int64(e.cfg.TokenTTL.Seconds())
	return &tokenResponse{TokenType: "Bearer", ExpiresIn: ttl, ExtExpiresIn: ttl, AccessToken: access}, nil
}

// readForm reads the form body (never the query: a secret in a URL is not
// accepted). A body that is not a form reads as an empty one, so Entra's
// "missing grant_type" follows.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, *entraError) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return url.Values{}, nil
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &entraError{err: "invalid_request", code: 90015, msg: "The request body is too large."} // code UNCERTAIN
		}
		return nil, &entraError{err: "invalid_request", code: 900144, msg: "The request body must contain the following parameter: 'grant_type'."}
	}
	for k, vs := range r.PostForm {
		if len(vs) > 1 {
			// Code UNCERTAIN: Entra refuses repeated parameters, but the
			// number it uses was not confirmed.
			return nil, &entraError{err: "invalid_request", code: 90100, msg: fmt.Sprintf("The parameter '%s' is repeated.", clip(k))}
		}
	}
	return r.PostForm, nil
}

// authenticateClient checks the client secret or the client assertion and
// returns the appidacr of the token to issue ("1" secret, "2" assertion).
func (e *Emulator) authenticateClient(form url.Values) (string, *entraError) {
	secret, assertion := form.Get("client_secret"), form.Get("client_assertion")
	switch {
	case secret != "" && assertion != "":
		// Code UNCERTAIN: both credentials at once is refused.
		return "", &entraError{err: "invalid_request", code: 90100, msg: "Only one of 'client_secret' and 'client_assertion' may be sent."}
	case secret != "":
		if e.cfg.ClientSecret == "" || !equalHash(secret, e.secretHash) {
			return "", errBadSecret(e.cfg.ClientID)
		}
		return "1", nil
	case assertion != "":
		switch at := form.Get("client_assertion_type"); at {
		case "":
			return "", errMissingParam("client_assertion_type")
		case ClientAssertionType:
		default:
			// Code UNCERTAIN.
			return "", &entraError{err: "invalid_request", code: 90100, msg: fmt.Sprintf("The client_assertion_type '%s' is not supported; use '%s'.", clip(at), ClientAssertionType)}
		}
		if ee := e.verifyAssertion(assertion); ee != nil {
			return "", ee
		}
		return "2", nil
	default:
		return "", &entraError{err: "invalid_client", code: 7000218, msg: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."}
	}
}

// knownResources are the resources tokens can be issued for: Azure Quantum
// and ARM (both in the reference). Any other is not in the tenant.
var knownResources = []string{QuantumResource, ManagementResource}

// scopeResource checks a client-credentials scope: exactly one
// "<resource>/.default" for a known resource.
func scopeResource(scope, tenant string) (string, *entraError) {
	fields := strings.Fields(scope)
	switch {
	case len(fields) == 0:
		return "", errMissingParam("scope")
	case len(fields) > 1:
		return "", &entraError{err: "invalid_scope", code: 70011, msg: fmt.Sprintf("The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope %s is not valid. Client credential flows must request a single resource's /.default scope.", clip(scope))}
	}
	s := fields[0]
	res, ok := strings.CutSuffix(s, "/.default")
	if !ok {
		return "", &entraError{err: "invalid_scope", code: 1002012, msg: fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", clip(s))}
	}
	res = strings.TrimSuffix(res, "/")
	for _, k := range knownResources {
		if res == k {
			return k, nil
		}
	}
	return "", &entraError{err: "invalid_resource", code: 500011, msg: fmt.Sprintf("The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", clip(res), tenant)}
}

// equalHash compares SHA-256(s) with want in constant time.
func equalHash(s string, want [32]byte) bool {
	got := sha256.Sum256([]byte(s))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// clip bounds a caller-supplied value echoed in a message.
func clip(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
