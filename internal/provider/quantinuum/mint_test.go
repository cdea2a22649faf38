package quantinuum

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/provider"
	"github.com/qbroker/qbroker/internal/sim/quantinuumsim"
)

// machines calls GET /v1/machine/ with the id-token raw, as Quantinuum
// clients do, and returns the status.
func (s *emu) machines(t *testing.T, idToken string) (int, string) {
	t.Helper()
	return s.machinesWith(t, http.Header{"Authorization": {idToken}})
}

func (s *emu) machinesWith(t *testing.T, h http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.url+"/v1/machine/?config=true", nil)
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestMintWithRefreshToken(t *testing.T) {
	s := newEmu(t, nil)
	refresh := s.passwordLogin(t, nil)
	c, scope, rotated, err := s.minter().Mint(context.Background(), refresh, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if rotated != "" || scope != (provider.Scope{}) {
		t.Fatalf("rotated %q scope %+v; want none (the emulator does not rotate)", rotated, scope)
	}
	if want := s.clk.Now().Add(DefaultIDTokenLifetime); !c.Expires.Equal(want) {
		t.Fatalf("Expires %v, want %v (55 min after the login)", c.Expires, want)
	}
	if c.Secret == "" || c.Secret == refresh {
		t.Fatal("the credential is not a new id-token")
	}
	if code, body := s.machines(t, c.Secret); code != 200 {
		t.Fatalf("the minted id-token is refused: %d %s", code, body)
	}
	// The id-token goes raw: with a scheme the service refuses it.
	if code, _ := s.machines(t, "Bearer "+c.Secret); code != 401 {
		t.Fatalf("Bearer id-token: %d, want 401", code)
	}
	// The login was a refresh, not a password login.
	var last seen
	for _, r := range s.requests() {
		if r.path == "/v1/login" {
			last = r
		}
	}
	if last.path != "/v1/login" || !strings.Contains(string(last.body), `"refresh-token"`) || strings.Contains(string(last.body), "password") {
		t.Fatalf("last login %s %s", last.path, last.body)
	}
}

func TestMintWithEmailPassword(t *testing.T) {
	s := newEmu(t, nil)
	c := s.mint(t, testEmail+":"+testPassword) // the password itself holds a ':'
	if code, body := s.machines(t, c.Secret); code != 200 {
		t.Fatalf("id-token from a password login refused: %d %s", code, body)
	}
	var login struct{ Email, Password string }
	if err := json.Unmarshal(s.requests()[0].body, &login); err != nil || login.Email != testEmail || login.Password != testPassword {
		t.Fatalf("login body %s", s.requests()[0].body)
	}
}

func TestMintMFA(t *testing.T) {
	s := newEmu(t, func(c *quantinuumsim.Config) { c.MFACode = "424242" })
	_, _, _, err := s.minter().Mint(context.Background(), testEmail+":"+testPassword, "demo")
	var me *MintError
	if !errors.As(err, &me) || me.Status != 401 || me.Code != codeMFARequired || !strings.Contains(err.Error(), "store its refresh token") {
		t.Fatalf("MFA account with a password root: %v", err)
	}
	// A refresh token from a login with the code works.
	refresh := s.passwordLogin(t, map[string]string{"code": "424242"})
	c := s.mint(t, refresh)
	if code, _ := s.machines(t, c.Secret); code != 200 {
		t.Fatalf("id-token refused: %d", code)
	}
}

// The id-token stops working when the emulator's clock passes its expiry;
// the minter's Expires is before that, and minting again with the same
// refresh token gives a working one.
func TestIDTokenExpiry(t *testing.T) {
	s := newEmu(t, nil)
	refresh := s.passwordLogin(t, nil)
	minted := s.clk.Now()
	c := s.mint(t, refresh)
	if !c.Expires.Before(minted.Add(quantinuumsim.DefaultIDTokenTTL)) {
		t.Fatalf("Expires %v is not before the emulator's expiry %v", c.Expires, minted.Add(quantinuumsim.DefaultIDTokenTTL))
	}
	s.clk.Advance(c.Expires.Sub(minted) - time.Second)
	if code, body := s.machines(t, c.Secret); code != 200 {
		t.Fatalf("just before Expires: %d %s", code, body)
	}
	s.clk.Advance(6 * time.Minute) // past the emulator's hour
	code, body := s.machines(t, c.Secret)
	if code != 401 || !strings.Contains(body, "expired") {
		t.Fatalf("after the emulator's expiry: %d %s, want 401 expired", code, body)
	}
	again := s.mint(t, refresh)
	if again.Secret == c.Secret || !again.Expires.Equal(s.clk.Now().Add(DefaultIDTokenLifetime)) {
		t.Fatalf("re-mint gave %+v", again)
	}
	if code, body := s.machines(t, again.Secret); code != 200 {
		t.Fatalf("re-minted id-token: %d %s", code, body)
	}
}

// An expired refresh token is refused with a hint, and without the token.
func TestMintExpiredRefreshToken(t *testing.T) {
	s := newEmu(t, nil)
	refresh := s.passwordLogin(t, nil)
	s.clk.Advance(quantinuumsim.DefaultRefreshTokenTTL + time.Minute)
	_, _, _, err := s.minter().Mint(context.Background(), refresh, "demo")
	var me *MintError
	if !errors.As(err, &me) || me.Status != 400 || !strings.Contains(err.Error(), "store a new one") {
		t.Fatalf("expired refresh token: %v", err)
	}
	if strings.Contains(err.Error(), refresh) {
		t.Fatal("the error holds the refresh token")
	}
}

// loginStub answers POST /v1/login with answer(body).
func loginStub(t *testing.T, answer func(body []byte) (int, string)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != "/v1/login" {
			http.NotFound(w, r)
			return
		}
		status, out := answer(body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, out)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestMintReturnsARotatedRefreshToken(t *testing.T) {
	srv, _ := loginStub(t, func(body []byte) (int, string) {
		var req map[string]string
		json.Unmarshal(body, &req)
		if req["refresh-token"] != "old-refresh" {
			return 400, `{"error":{"code":400,"text":"Invalid Refresh Token"}}`
		}
		return 200, `{"id-token":"id-1","refresh-token":"new-refresh"}`
	})
	m := &Minter{BaseURL: srv.URL}
	c, _, rotated, err := m.Mint(context.Background(), "old-refresh", "demo")
	if err != nil || c.Secret != "id-1" || rotated != "new-refresh" {
		t.Fatalf("Mint: %+v rotated %q err %v", c, rotated, err)
	}
	// A password login is not a rotation, whatever refresh token it gives.
	srv2, _ := loginStub(t, func([]byte) (int, string) { return 200, `{"id-token":"id-2","refresh-token":"r"}` })
	if _, _, rotated, err := (&Minter{BaseURL: srv2.URL}).Mint(context.Background(), "a@b.example:pw", "demo"); err != nil || rotated != "" {
		t.Fatalf("password login: rotated %q err %v", rotated, err)
	}
	// A malformed rotated token is refused, not stored.
	srv3, _ := loginStub(t, func([]byte) (int, string) { return 200, `{"id-token":"id-3","refresh-token":"bad token\r\n"}` })
	if _, _, rotated, err := (&Minter{BaseURL: srv3.URL}).Mint(context.Background(), "old-refresh", "demo"); err == nil || rotated != "" {
		t.Fatalf("malformed rotation: rotated %q err %v", rotated, err)
	}
}

func jwtWithExp(exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(fmt.Sprintf(`{"exp":%d}`, exp.Unix()))) + ".c2ln"
}

func TestMintExpiry(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		idToken string
		life    time.Duration
		want    time.Time
	}{
		{"JWT exp", jwtWithExp(now.Add(10 * time.Minute)), 0, now.Add(10 * time.Minute)},
		{"JWT exp capped", jwtWithExp(now.Add(5 * time.Hour)), 0, now.Add(MaxIDTokenLifetime)},
		{"JWT exp in the past ignored", jwtWithExp(now.Add(-time.Hour)), 0, now.Add(DefaultIDTokenLifetime)},
		{"opaque token", "opaque-id-token", 0, now.Add(DefaultIDTokenLifetime)},
		{"configured lifetime", "opaque-id-token", 20 * time.Minute, now.Add(20 * time.Minute)},
		{"configured lifetime capped", "opaque-id-token", 3 * time.Hour, now.Add(MaxIDTokenLifetime)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := loginStub(t, func([]byte) (int, string) { return 200, `{"id-token":"` + tc.idToken + `","refresh-token":"r"}` })
			m := &Minter{BaseURL: srv.URL, Now: func() time.Time { return now }, IDTokenLifetime: tc.life}
			c, _, _, err := m.Mint(context.Background(), "r", "demo")
			if err != nil || !c.Expires.Equal(tc.want) {
				t.Fatalf("Expires %v err %v, want %v", c.Expires, err, tc.want)
			}
		})
	}
}

// The root credential never appears in an error, whatever the service or
// the network does.
func TestMintErrorsNeverHoldTheRoot(t *testing.T) {
	const refresh = "refresh-SECRET-0123456789abcdef"
	const password = "pass-SECRET-fedcba9876543210"
	roots := []string{refresh, "ops@example.com:" + password}
	echo, _ := loginStub(t, func(body []byte) (int, string) {
		b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": 400, "text": "bad request: " + string(body)}})
		return 400, string(b)
	})
	badJSON, _ := loginStub(t, func(body []byte) (int, string) { return 200, "not json " + string(body) })
	noToken, _ := loginStub(t, func([]byte) (int, string) { return 200, `{"id-token":"has space"}` })
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	emuSrv := newEmu(t, nil)
	for _, base := range []string{echo.URL, badJSON.URL, noToken.URL, closedURL, emuSrv.url} {
		for _, root := range roots {
			_, _, _, err := (&Minter{BaseURL: base}).Mint(context.Background(), root, "demo")
			if err == nil {
				t.Fatalf("%s: Mint succeeded", base)
			}
			if s := err.Error(); strings.Contains(s, refresh) || strings.Contains(s, password) {
				t.Fatalf("%s: error holds the secret: %s", base, s)
			}
		}
	}
	// A cancelled context is still recognisable.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, _, err := (&Minter{BaseURL: emuSrv.url}).Mint(ctx, refresh, "demo"); !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), refresh) {
		t.Fatalf("cancelled: %v", err)
	}
}

// The secret is never sent to a host the minter was not configured with:
// redirects are not followed and plain http is refused off loopback.
func TestMintSendsTheSecretOnlyToTheConfiguredHost(t *testing.T) {
	var stolen atomic.Int32
	thief := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { stolen.Add(1) }))
	defer thief.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, thief.URL+"/v1/login", http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	if _, _, _, err := (&Minter{BaseURL: redirect.URL}).Mint(context.Background(), "refresh-x", "demo"); err == nil {
		t.Fatal("a redirect was accepted as a login")
	}
	if stolen.Load() != 0 {
		t.Fatal("the redirect was followed")
	}
	for _, base := range []string{"http://qapi.quantinuum.com", "ftp://127.0.0.1", "https://user:pw@qapi.quantinuum.com", "https://qapi.quantinuum.com?x=1", "/v1"} {
		if _, _, _, err := (&Minter{BaseURL: base}).Mint(context.Background(), "refresh-x", "demo"); err == nil || strings.Contains(err.Error(), "refresh-x") {
			t.Fatalf("base %q: %v", base, err)
		}
	}
}

func TestParseRoot(t *testing.T) {
	for _, tc := range []struct {
		root               string
		refresh, email, pw string
		bad                bool
	}{
		{root: "eyJjdHkiOiJKV1QiLCJlbmMiOiJBMjU2R0NNIn0.abc.def", refresh: "eyJjdHkiOiJKV1QiLCJlbmMiOiJBMjU2R0NNIn0.abc.def"},
		{root: " tok\n", refresh: "tok"},
		{root: "a@b.example:pw:with:colons", email: "a@b.example", pw: "pw:with:colons"},
		{root: "a@b.example: spaced pw ", email: "a@b.example", pw: " spaced pw "},
		{root: "no-at:sign", refresh: "no-at:sign"},
		{root: "", bad: true},
		{root: "   ", bad: true},
		{root: "a@b.example:", bad: true},
		{root: "@:pw", bad: false, email: "@", pw: "pw"},
		{root: "a b@c:pw", bad: true},
		{root: "tok en", bad: true},
	} {
		rc, err := parseRoot(tc.root)
		if (err != nil) != tc.bad {
			t.Fatalf("%q: err %v", tc.root, err)
		}
		if !tc.bad && (rc.refresh != tc.refresh || rc.email != tc.email || rc.password != tc.pw) {
			t.Fatalf("%q: %+v", tc.root, rc)
		}
		if err != nil && strings.TrimSpace(tc.root) != "" && strings.Contains(err.Error(), strings.TrimSpace(tc.root)) {
			t.Fatalf("%q: error holds the root: %v", tc.root, err)
		}
	}
}
