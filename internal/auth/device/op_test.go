package device

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
)

// users is a storage.UserStore whose user IDs equal their usernames: the
// example OP completes a device login with the username as subject and later
// looks the subject up by ID.
type users map[string]*storage.User

func (u users) GetUserByID(id string) *storage.User         { return u[id] }
func (u users) GetUserByUsername(name string) *storage.User { return u[name] }
func (users) ExampleClientID() string                       { return storage.ServiceUserID }

var _ storage.UserStore = users(nil)

func newUsers() users {
	mk := func(name string) *storage.User {
		return &storage.User{ID: name, Username: name, Password: "pw-" + name, FirstName: name, LastName: "Test",
			Email: name + "@example.test", EmailVerified: true}
	}
	return users{"alice": mk("alice"), "bob": mk("bob")}
}

// opStorage lets a test shorten the lifetime the OP stores for new device codes
// (the advertised expires_in stays 300 s), to reach the OP's expired_token.
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

// testOP is zitadel/oidc's example OpenID provider on 127.0.0.1 with a device
// client "device"/"devsecret", counting requests per path and remembering the
// device codes it handed out.
type testOP struct {
	issuer string
	st     *opStorage

	mu          sync.Mutex
	hits        map[string]int
	deviceCodes []string
}

func startOP(t *testing.T) *testOP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String() + "/"
	clients := map[string]*storage.Client{"device": storage.DeviceClient("device", "devsecret")}
	p := &testOP{issuer: issuer, hits: map[string]int{},
		st: &opStorage{Storage: storage.NewStorageWithClients(newUsers(), clients)}}
	router := exampleop.SetupServer(issuer, p.st, nil, false)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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

func (p *testOP) count(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits[path]
}

func (p *testOP) lastDeviceCode(t *testing.T) string {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.deviceCodes) == 0 {
		t.Fatal("the OP handed out no device code")
	}
	return p.deviceCodes[len(p.deviceCodes)-1]
}

// userAct plays the person at the browser: log in at the OP's device page with
// the user code, then confirm with action "allowed" or "denied".
func (p *testOP) userAct(t *testing.T, userCode, username, password, action string) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, Timeout: 5 * time.Second}
	post := func(path string, form url.Values) string {
		resp, err := c.PostForm(p.issuer+path, form)
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
	out := post("device/confirm", url.Values{"action": {action}})
	if !strings.Contains(out, "Device authorization "+action) {
		t.Fatalf("confirm %s: %q", action, out)
	}
}

// fakeClock drives the Flow's Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newFlow(t *testing.T, op *testOP, clk *fakeClock, mut ...func(*Config)) *Flow {
	t.Helper()
	cfg := Config{Issuer: op.issuer, ClientID: "device", ClientSecret: "devsecret",
		Scopes: []string{"openid", "profile"}, Now: clk.Now}
	for _, m := range mut {
		m(&cfg)
	}
	f, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestWrongClientSecret: the real OP refuses the broker's client; the error
// names neither secret.
func TestWrongClientSecret(t *testing.T) {
	op := startOP(t)
	f := newFlow(t, op, newClock(), func(c *Config) { c.ClientSecret = "wrong-secret" })
	_, err := f.Start(context.Background())
	if !errors.Is(err, ErrIdPRefused) {
		t.Fatalf("want ErrIdPRefused, got %v", err)
	}
	if strings.Contains(err.Error(), "wrong-secret") || strings.Contains(err.Error(), "devsecret") {
		t.Fatalf("error leaks a secret: %v", err)
	}
}
