package console

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/qbroker/qbroker/internal/auth/authutil"
)

// oidcClient signs people in with the authorization-code flow and PKCE.
type oidcClient struct {
	issuer   string
	clientID string
	claim    string
	client   *http.Client
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	oauth    oauth2.Config
}

func newOIDCClient(ctx context.Context, cfg OIDCConfig, redirectURL string, now func() time.Time) (*oidcClient, error) {
	if err := authutil.CheckIdPURL(cfg.Issuer); err != nil {
		return nil, fmt.Errorf("OIDC issuer: %w", err)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, hc), cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("OIDC discovery: %w", err)
	}
	scopes := cfg.Scopes
	if len(scopes) == 0 {
		scopes = []string{oidc.ScopeOpenID, "email", "profile"}
	}
	if !slices.Contains(scopes, oidc.ScopeOpenID) {
		scopes = append([]string{oidc.ScopeOpenID}, scopes...)
	}
	claim := cfg.PersonClaim
	if claim == "" {
		claim = "email"
	}
	return &oidcClient{
		issuer: cfg.Issuer, clientID: cfg.ClientID, claim: claim, client: hc, provider: p,
		verifier: p.Verifier(&oidc.Config{ClientID: cfg.ClientID, Now: now}),
		oauth: oauth2.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
			Endpoint: p.Endpoint(), RedirectURL: redirectURL, Scopes: scopes,
		},
	}, nil
}

// loginState is the signed login-state cookie: what the callback needs to
// finish the sign-in this browser started.
type loginState struct {
	State    string `json:"st"`
	Nonce    string `json:"no"`
	Verifier string `json:"pv"` // PKCE code verifier
	Next     string `json:"nx"` // a safe path under /ui/
	Expires  int64  `json:"e"`
}

// login starts a sign-in: a fresh state, nonce and PKCE verifier in the
// login-state cookie, then off to the IdP.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	next := safeReturn(r.URL.Query().Get("next"))
	if _, ok := c.currentSession(r); ok {
		http.Redirect(w, r, c.href(next), http.StatusSeeOther)
		return
	}
	if c.oidc == nil {
		if c.devLogin {
			c.message(w, r, http.StatusUnauthorized, "Sign in", []string{
				"This console is running in development mode. To sign in, open the one-time sign-in link that “qbroker dev” printed in its terminal when it started.",
				"Each link works once and expires after a while. Restart “qbroker dev” for a new one.",
			}, nil)
			return
		}
		c.message(w, r, http.StatusServiceUnavailable, "Sign-in is not set up", []string{
			"No way to sign in is configured for this console. Ask the broker's operator to configure an OpenID Connect provider.",
		}, nil)
		return
	}
	exp := c.now().Add(stateTTL)
	st := loginState{State: randomString(24), Nonce: randomString(24), Verifier: oauth2.GenerateVerifier(), Next: next, Expires: exp.Unix()}
	v, err := seal(c.keys.state, st)
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	c.setCookie(w, "login", v, exp)
	http.Redirect(w, r, c.oidc.oauth.AuthCodeURL(st.State, oidc.Nonce(st.Nonce), oauth2.S256ChallengeOption(st.Verifier)), http.StatusFound)
}

// idpErrors are the authorization error codes shown by name; anything else
// (and every error_description, which anyone can put in a link) is not.
var idpErrors = map[string]string{
	"access_denied":             "the sign-in was cancelled or refused at the identity provider",
	"login_required":            "the identity provider needs you to sign in",
	"consent_required":          "the identity provider needs your consent",
	"interaction_required":      "the identity provider needs you to interact with it",
	"temporarily_unavailable":   "the identity provider is temporarily unavailable",
	"server_error":              "the identity provider had an error",
	"unauthorized_client":       "this console is not allowed to sign people in at the identity provider",
	"invalid_scope":             "the identity provider refused the requested scopes",
	"invalid_request":           "the identity provider refused the request",
	"unsupported_response_type": "the identity provider refused the request",
}

// callback finishes a sign-in: it checks the state against the cookie
// (once), exchanges the code with the PKCE verifier, verifies the ID token
// and its nonce, and starts the session.
func (c *Console) callback(w http.ResponseWriter, r *http.Request) {
	if c.oidc == nil {
		c.notFound(w, r)
		return
	}
	q := r.URL.Query()
	raw := c.readCookie(r, "login")
	c.clearCookie(w, "login")
	if e := q.Get("error"); e != "" {
		why, ok := idpErrors[e]
		if !ok {
			why = "the identity provider reported an error"
		}
		c.signInFailed(w, r, http.StatusBadRequest, why)
		return
	}
	var st loginState
	if raw == "" || open(c.keys.state, raw, &st) != nil || !c.now().Before(time.Unix(st.Expires, 0)) {
		c.signInFailed(w, r, http.StatusBadRequest, "it took too long, or it was started in another browser")
		return
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(st.State)) != 1 {
		c.signInFailed(w, r, http.StatusBadRequest, "the answer from the identity provider does not belong to the sign-in this browser started")
		return
	}
	if !c.usedStates.add(st.State, time.Unix(st.Expires, 0)) {
		c.signInFailed(w, r, http.StatusBadRequest, "this sign-in answer was already used")
		return
	}
	code := q.Get("code")
	if code == "" {
		c.signInFailed(w, r, http.StatusBadRequest, "the identity provider sent no authorization code")
		return
	}
	p, err := c.oidc.finish(r.Context(), code, st.Verifier, st.Nonce)
	if err != nil {
		c.log.Warn("console: sign-in failed", "err", err, "remote", remoteHost(r))
		status, why := http.StatusBadRequest, "the identity provider's answer could not be verified"
		var re *oauth2.RetrieveError
		switch {
		case errors.As(err, &re):
			why = "the identity provider refused to complete it"
		case errors.Is(err, errIdPUnreachable):
			status, why = http.StatusBadGateway, "the identity provider could not be reached"
		}
		c.signInFailed(w, r, status, why)
		return
	}
	if err := c.startSession(w, p, methodOIDC); err != nil {
		c.internalError(w, r, err)
		return
	}
	c.log.Info("console: signed in", "person", p.ID, "issuer", p.Issuer, "remote", remoteHost(r))
	http.Redirect(w, r, c.href(st.Next), http.StatusSeeOther)
}

func (c *Console) signInFailed(w http.ResponseWriter, r *http.Request, status int, why string) {
	c.message(w, r, status, "Sign-in failed", []string{
		"We could not sign you in: " + why + ". Nothing was changed.",
	}, &link{Href: c.href("/ui/login"), Text: "Start signing in again"})
}

var errIdPUnreachable = errors.New("identity provider unreachable")

// finish exchanges the code and returns the verified person.
func (o *oidcClient) finish(ctx context.Context, code, verifier, nonce string) (Person, error) {
	ctx = oidc.ClientContext(context.WithValue(ctx, oauth2.HTTPClient, o.client), o.client)
	tok, err := o.oauth.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return Person{}, fmt.Errorf("code exchange: %w", err)
		}
		return Person{}, fmt.Errorf("%w: code exchange: %w", errIdPUnreachable, err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return Person{}, errors.New("token response without id_token")
	}
	idt, err := o.verifier.Verify(ctx, rawID) // signature, issuer, audience, expiry
	if err != nil {
		return Person{}, fmt.Errorf("ID token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return Person{}, errors.New("ID token: nonce does not match this sign-in")
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return Person{}, fmt.Errorf("ID token claims: %w", err)
	}
	if len(idt.Audience) > 1 {
		if azp, _ := claims["azp"].(string); azp != o.clientID {
			return Person{}, errors.New("ID token: several audiences and azp is not this client")
		}
	}
	if _, ok := claims[o.claim]; !ok && o.provider.UserInfoEndpoint() != "" {
		// A code-flow ID token may carry only the subject; the userinfo
		// endpoint, asked with the access token just received from the token
		// endpoint, has the rest. Its subject must be the ID token's.
		ui, err := o.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return Person{}, fmt.Errorf("%w: userinfo: %w", errIdPUnreachable, err)
		}
		if ui.Subject != idt.Subject {
			return Person{}, errors.New("userinfo subject differs from the ID token's")
		}
		extra := map[string]any{}
		if err := ui.Claims(&extra); err != nil {
			return Person{}, fmt.Errorf("userinfo claims: %w", err)
		}
		for k, v := range extra {
			if _, ok := claims[k]; !ok {
				claims[k] = v
			}
		}
	}
	return personFrom(claims, idt.Subject, o.issuer, o.claim), nil
}

// personFrom derives the person: the PersonClaim when it is a non-empty
// string (for "email", only when email_verified is not false), else the
// subject.
func personFrom(claims map[string]any, subject, issuer, claim string) Person {
	id := subject
	if v, ok := claims[claim].(string); ok && v != "" && (claim != "email" || !isFalse(claims["email_verified"])) {
		id = v
	}
	name, _ := claims["name"].(string)
	if name == "" {
		name, _ = claims["preferred_username"].(string)
	}
	if name == "" {
		name = id
	}
	return Person{ID: id, Name: name, Issuer: issuer}
}

// isFalse reports a claim that says false, as a boolean or as the string
// some IdPs send.
func isFalse(v any) bool {
	switch v := v.(type) {
	case bool:
		return !v
	case string:
		return strings.EqualFold(v, "false")
	}
	return false
}
