// Package testidp runs a real OpenID provider in-process for tests:
// zitadel/oidc's example OP on 127.0.0.1, with a confidential device client
// "device"/"devsecret" and users "alice" and "bob" (password "pw-<name>").
// Only tests import it.
package testidp

import (
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
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

// users is a storage.UserStore whose user IDs equal their usernames (the
// example OP's device login needs that).
type users map[string]*storage.User

func (u users) GetUserByID(id string) *storage.User         { return u[id] }
func (u users) GetUserByUsername(name string) *storage.User { return u[name] }
func (users) ExampleClientID() string                       { return storage.ServiceUserID }

// OP is a running provider.
type OP struct {
	Issuer string // with a trailing slash, as the OP names itself
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
	st := storage.NewStorageWithClients(users{"alice": mk("alice"), "bob": mk("bob")}, clients)
	srv := &http.Server{Handler: exampleop.SetupServer(issuer, st, nil, false), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &OP{Issuer: issuer}
}

// Approve plays the person at the browser: log in at the OP's device page
// with the user code and answer action ("allowed" or "denied").
func (p *OP) Approve(t testing.TB, userCode, username, action string) {
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
	post("device/login", url.Values{"user_code": {userCode}, "username": {username}, "password": {"pw-" + username}})
	if out := post("device/confirm", url.Values{"action": {action}}); !strings.Contains(out, "Device authorization "+action) {
		t.Fatalf("confirm %s: %q", action, out)
	}
}
