// Package testidp runs a real OpenID provider in-process for tests:
// zitadel/oidc's example OP on 127.0.0.1, with a confidential device client
// "device"/"devsecret" and users "alice" and "bob" (password "pw-<name>").
// It counts requests per path, remembers the query of the last request to
// each path and the device codes it hands out, so tests can prove what
// reached the IdP. AddWebClient registers an authorization-code client
// (PKCE allowed) once the test knows its redirect URI, and SubmitLogin
// plays the person at the OP's login form. Only tests import it.
package testidp

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Device client credentials registered at the OP.
const (
	DeviceClientID     = "device"
	DeviceClientSecret = "devsecret"
)

// users is a storage.UserStore whose user IDs equal their usernames: the
// example OP completes a device login with the username as subject and
// later looks the subject up by ID.
type users map[string]*storage.User

func (u users) GetUserByID(id string) *storage.User         { return u[id] }
func (u users) GetUserByUsername(name string) *storage.User { return u[name] }
func (users) ExampleClientID() string                       { return storage.ServiceUserID }

var _ storage.UserStore = users(nil)

// opStorage lets a test shorten the lifetime the OP stores for new device
// codes (the advertised expires_in stays 300 s), to reach expired_token.
//
// It also holds the web clients a test adds after the OP started; the
// example storage's own client map cannot be changed safely once it runs.
type opStorage struct {
	*storage.Storage
	lifetime atomic.Int64 // nanoseconds; 0 = the OP's own

	webMu      sync.Mutex
	webClients map[string]WebClient
}

func (s *opStorage) StoreDeviceAuthorization(ctx context.Context, clientID, deviceCode, userCode string, expires time.Time, scopes []string) error {
	if d := s.lifetime.Load(); d != 0 {
		expires = time.Now().Add(time.Duration(d))
	}
	return s.Storage.StoreDeviceAuthorization(ctx, clientID, deviceCode, userCode, expires, scopes)
}

// OP is a running provider.
type OP struct {
	Issuer string // with a trailing slash, as the OP names itself

	st          *opStorage
	mu          sync.Mutex
	hits        map[string]int
	queries     map[string]url.Values
	deviceCodes []string
}

// Start runs the OP until the test ends.
func Start(t testing.TB) *OP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String() + "/"
	mk := func(name string) *storage.User {
		return &storage.User{ID: name, Username: name, Password: "pw-" + name, FirstName: name, LastName: "Test", Email: name + "@example.test", EmailVerified: true}
	}
	clients := map[string]*storage.Client{DeviceClientID: storage.DeviceClient(DeviceClientID, DeviceClientSecret)}
	p := &OP{Issuer: issuer, hits: map[string]int{}, queries: map[string]url.Values{},
		st: &opStorage{webClients: map[string]WebClient{}, Storage: storage.NewStorageWithClients(users{"alice": mk("alice"), "bob": mk("bob")}, clients)}}
	router := exampleop.SetupServer(issuer, p.st, nil, false)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.hits[r.URL.Path]++
		p.queries[r.URL.Path] = r.URL.Query()
		p.mu.Unlock()
		if r.URL.Path != "/device_authorization" {
			router.ServeHTTP(w, r)
			return
		}
		rec := &recorder{ResponseWriter: w}
		router.ServeHTTP(rec, r)
		var out struct {
			DeviceCode string `json:"device_code"`
		}
		if json.Unmarshal([]byte(rec.body.String()), &out) == nil && out.DeviceCode != "" {
			p.mu.Lock()
			p.deviceCodes = append(p.deviceCodes, out.DeviceCode)
			p.mu.Unlock()
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return p
}

type recorder struct {
	http.ResponseWriter
	body strings.Builder
}

func (r *recorder) Write(b []byte) (int, error) {
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

// Count returns how many requests reached path.
func (p *OP) Count(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits[path]
}

// LastDeviceCode returns the last device code the OP handed out.
func (p *OP) LastDeviceCode(t testing.TB) string {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.deviceCodes) == 0 {
		t.Fatal("the OP handed out no device code")
	}
	return p.deviceCodes[len(p.deviceCodes)-1]
}

// SetDeviceCodeLifetime shortens how long new device codes live at the OP.
func (p *OP) SetDeviceCodeLifetime(d time.Duration) { p.st.lifetime.Store(int64(d)) }

// Approve plays the person at the browser with their password.
func (p *OP) Approve(t testing.TB, userCode, username, action string) {
	t.Helper()
	p.ApproveWith(t, userCode, username, "pw-"+username, action)
}

// ApproveWith logs in at the OP's device page with the user code and the
// given password, then answers action ("allowed" or "denied").
func (p *OP) ApproveWith(t testing.TB, userCode, username, password, action string) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, Timeout: 5 * time.Second}
	post := func(path string, form url.Values) string {
		resp, err := c.PostForm(p.Issuer+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %s", path, resp.Status)
		}
		return b.String()
	}
	post("device/login", url.Values{"user_code": {userCode}, "username": {username}, "password": {password}})
	if out := post("device/confirm", url.Values{"action": {action}}); !strings.Contains(out, "Device authorization "+action) {
		t.Fatalf("confirm %s: %q", action, out)
	}
}

// WebClient is a confidential authorization-code client (client_secret_basic)
// for AddWebClient. The OP accepts PKCE from it and checks the verifier when
// a code_challenge was sent.
type WebClient struct {
	ID, Secret   string
	RedirectURIs []string // exact; http is allowed (dev mode)
	// ClaimsInIDToken puts the email and profile claims in the ID token as
	// well as at the userinfo endpoint. Without it the ID token of a code
	// flow carries only the subject, as the OIDC spec prescribes.
	ClaimsInIDToken bool
}

// AddWebClient registers (or replaces) an authorization-code client. It may
// be called after Start, once the test knows its redirect URI.
func (p *OP) AddWebClient(c WebClient) {
	p.st.webMu.Lock()
	defer p.st.webMu.Unlock()
	p.st.webClients[c.ID] = c
}

// webClient wraps a registered web client to decide IDTokenUserinfoClaimsAssertion.
type webClient struct {
	op.Client
	claimsInIDToken bool
}

func (c webClient) IDTokenUserinfoClaimsAssertion() bool { return c.claimsInIDToken }

func (s *opStorage) webClient(id string) (WebClient, bool) {
	s.webMu.Lock()
	defer s.webMu.Unlock()
	c, ok := s.webClients[id]
	return c, ok
}

// GetClientByClientID serves the added web clients before the built-in ones.
func (s *opStorage) GetClientByClientID(ctx context.Context, clientID string) (op.Client, error) {
	if c, ok := s.webClient(clientID); ok {
		return webClient{Client: storage.WebClient(c.ID, c.Secret, c.RedirectURIs...), claimsInIDToken: c.ClaimsInIDToken}, nil
	}
	return s.Storage.GetClientByClientID(ctx, clientID)
}

// AuthorizeClientIDSecret checks the added web clients' secrets.
func (s *opStorage) AuthorizeClientIDSecret(ctx context.Context, clientID, clientSecret string) error {
	if c, ok := s.webClient(clientID); ok {
		if c.Secret != clientSecret {
			return errors.New("invalid secret")
		}
		return nil
	}
	return s.Storage.AuthorizeClientIDSecret(ctx, clientID, clientSecret)
}

// LastQuery returns the query of the last request that reached path (nil
// when none did).
func (p *OP) LastQuery(path string) url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.queries[path]
}

// SubmitLogin plays the person at the OP's login form: loginPage is the URL
// the OP sent the browser to (/login/username?authRequestID=...), c the
// browser (with its cookie jar and redirect policy). It returns the response
// to the form post, after whatever redirects c follows; the caller closes it.
func (p *OP) SubmitLogin(t testing.TB, c *http.Client, loginPage *url.URL, username, password string) *http.Response {
	t.Helper()
	id := loginPage.Query().Get("authRequestID")
	if id == "" {
		t.Fatalf("not the OP's login page: %s", loginPage)
	}
	resp, err := c.PostForm(p.Issuer+"login/username", url.Values{"id": {id}, "username": {username}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
