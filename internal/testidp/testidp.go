// Package testidp runs a real OpenID provider in-process for tests:
// zitadel/oidc's example OP on 127.0.0.1, with a confidential device client
// "device"/"devsecret" and users "alice" and "bob" (password "pw-<name>").
// It counts requests per path and remembers the device codes it hands out,
// so tests can prove what reached the IdP. Only tests import it.
package testidp

import (
	"context"
	"encoding/json"
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
type opStorage struct {
	*storage.Storage
	lifetime atomic.Int64 // nanoseconds; 0 = the OP's own
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
	p := &OP{Issuer: issuer, hits: map[string]int{},
		st: &opStorage{Storage: storage.NewStorageWithClients(users{"alice": mk("alice"), "bob": mk("bob")}, clients)}}
	router := exampleop.SetupServer(issuer, p.st, nil, false)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.hits[r.URL.Path]++
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
