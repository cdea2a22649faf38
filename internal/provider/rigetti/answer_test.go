package rigetti

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	fakeAccess  = "eyJhbGciOiJSUzI1NiJ9.fake-access-token.sig"
	fakeRotated = "qcs-rotated-refresh-Jk3Pq8Zr2Wm5Tx7Yb"
)

// TestMintAnswerShapes: what Mint makes of each token answer. Whenever a
// 200 answer carries a new refresh token, it is returned — even with an
// error — because the presented one is spent.
func TestMintAnswerShapes(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ok := func(extra string) string {
		return `{"token_type":"Bearer","access_token":"` + fakeAccess + `","expires_in":3600` + extra + `}`
	}
	cases := []struct {
		name       string
		status     int
		body       string
		wantErr    bool
		wantRotate string
		wantLife   time.Duration
	}{
		{"rotating", 200, ok(`,"refresh_token":"` + fakeRotated + `"`), false, fakeRotated, time.Hour},
		{"not rotating", 200, ok(""), false, "", time.Hour},
		{"day-long token", 200, strings.Replace(ok(""), "3600", "86400", 1), false, "", 24 * time.Hour},
		{"over-long token cut", 200, strings.Replace(ok(""), "3600", "9999999", 1), false, "", MaxTokenLifetime},
		{"no access token", 200, `{"token_type":"Bearer","expires_in":3600,"refresh_token":"` + fakeRotated + `"}`, true, fakeRotated, 0},
		{"access token with space", 200, `{"token_type":"Bearer","access_token":"a b","expires_in":3600,"refresh_token":"` + fakeRotated + `"}`, true, fakeRotated, 0},
		{"access token is the refresh token", 200, `{"token_type":"Bearer","access_token":"` + fakeRotated + `","expires_in":3600,"refresh_token":"` + fakeRotated + `"}`, true, fakeRotated, 0},
		{"not bearer", 200, strings.Replace(ok(`,"refresh_token":"`+fakeRotated+`"`), "Bearer", "mac", 1), true, fakeRotated, 0},
		{"no expiry", 200, strings.Replace(ok(`,"refresh_token":"`+fakeRotated+`"`), "3600", "0", 1), true, fakeRotated, 0},
		{"malformed rotation", 200, ok(`,"refresh_token":"bad token"`), true, "", 0},
		{"not JSON", 200, `<html>ok</html>`, true, "", 0},
		{"server error", 500, `<html>oops</html>`, true, "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := fake(t, tc.status, tc.body)
			m := &Minter{TokenURL: srv.URL + "/v1/token", Now: func() time.Time { return t0 }}
			c, _, rotated, err := m.Mint(context.Background(), initialRefresh, "demo")
			if rotated != tc.wantRotate {
				t.Fatalf("rotated = %q, want %q", rotated, tc.wantRotate)
			}
			if tc.wantErr {
				if c.Secret != "" {
					t.Fatal("credential returned with an error")
				}
				noSecrets(t, err, initialRefresh, fakeAccess, fakeRotated)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Secret != fakeAccess || !c.Expires.Equal(t0.Add(tc.wantLife)) {
				t.Fatalf("credential expires %s, want %s", c.Expires, t0.Add(tc.wantLife))
			}
		})
	}
}

// TestMintErrorsHoldNoToken: a server that echoes the refresh token (or
// puts tokens where text is expected) does not get it into error text.
func TestMintErrorsHoldNoToken(t *testing.T) {
	for name, tc := range map[string]struct {
		status int
		body   string
	}{
		"echoed in description": {400, `{"error":"invalid_grant","error_description":"token ` + initialRefresh + ` is unknown"}`},
		"echoed in code":        {400, `{"error":"` + initialRefresh + `","error_description":"x"}`},
		"token_type":            {200, `{"token_type":"` + fakeAccess + `","access_token":"` + fakeAccess + `","expires_in":60,"refresh_token":"` + fakeRotated + `"}`},
		"control characters":    {401, `{"error":"invalid_client","error_description":"line\nbreak\u001b[31m"}`},
	} {
		t.Run(name, func(t *testing.T) {
			srv, _ := fake(t, tc.status, tc.body)
			_, _, _, err := (&Minter{TokenURL: srv.URL}).Mint(context.Background(), initialRefresh, "demo")
			noSecrets(t, err, initialRefresh, fakeAccess, fakeRotated)
			if strings.ContainsAny(err.Error(), "\n\x1b") {
				t.Fatalf("control characters in error: %q", err)
			}
		})
	}
	// An invalid_grant with an echo is still the re-enrol error.
	srv, _ := fake(t, 400, `{"error":"invalid_grant","error_description":"`+initialRefresh+`"}`)
	_, _, _, err := (&Minter{TokenURL: srv.URL}).Mint(context.Background(), initialRefresh, "demo")
	mustBeRejected(t, err, initialRefresh)
}

// TestMintTooLargeAnswer: an endless answer is cut off, not buffered.
func TestMintTooLargeAnswer(t *testing.T) {
	srv, _ := fake(t, 200, `{"x":"`+strings.Repeat("a", maxAnswer+10)+`"}`)
	_, _, _, err := (&Minter{TokenURL: srv.URL}).Mint(context.Background(), initialRefresh, "demo")
	if err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("huge answer: %v", err)
	}
}

// TestMintRequestShape: exactly the SDK's refresh form — grant_type,
// client_id, refresh_token — as a form POST, with no Authorization header
// and nothing in the URL.
func TestMintRequestShape(t *testing.T) {
	var got *http.Request
	var form url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b, _ := io.ReadAll(r.Body)
		form, _ = url.ParseQuery(string(b))
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"invalid_grant","error_description":"x"}`)
	}))
	defer srv.Close()
	_, _, _, err := (&Minter{TokenURL: srv.URL + "/oauth2/x/v1/token"}).Mint(context.Background(), "  "+initialRefresh+"\n", "demo")
	mustBeRejected(t, err, initialRefresh)
	if got.Method != http.MethodPost || got.URL.Path != "/oauth2/x/v1/token" || got.URL.RawQuery != "" ||
		got.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || got.Header.Get("Authorization") != "" {
		t.Fatalf("request %s %s %v", got.Method, got.URL, got.Header)
	}
	want := url.Values{"grant_type": {"refresh_token"}, "client_id": {DefaultClientID}, "refresh_token": {initialRefresh}}
	if fmt.Sprint(form) != fmt.Sprint(want) {
		t.Fatalf("form %v, want %v", form, want)
	}
}

func TestParseRoot(t *testing.T) {
	for raw, want := range map[string]string{
		initialRefresh:               initialRefresh,
		"  " + initialRefresh + "\n": initialRefresh,
		"a":                          "a",
	} {
		if got, err := ParseRoot(raw); err != nil || got != want {
			t.Fatalf("ParseRoot(%q) = %q, %v", raw, got, err)
		}
	}
	secret := "sekret-part"
	for _, raw := range []string{"", " \n", "two " + secret, secret + "\x00", secret + "é", strings.Repeat("a", MaxRefreshTokenLen+1), `refresh_token = "` + secret + `"`} {
		_, err := ParseRoot(raw)
		if err == nil {
			t.Fatalf("ParseRoot(%q) accepted", raw)
		}
		noSecrets(t, err, secret)
	}
	// Mint refuses a malformed root without sending it.
	srv, hits := fake(t, 200, "{}")
	_, _, _, err := (&Minter{TokenURL: srv.URL}).Mint(context.Background(), "two words", "demo")
	if err == nil || hits.Load() != 0 {
		t.Fatalf("malformed root: %v, %d requests", err, hits.Load())
	}
}

// TestRedact: a transport error quoting the token is scrubbed and still
// matches its context cause.
func TestRedact(t *testing.T) {
	err := redact(fmt.Errorf("sending %s: %w", initialRefresh, context.DeadlineExceeded), initialRefresh)
	noSecrets(t, err, initialRefresh)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "[redacted]") {
		t.Fatalf("redacted: %v", err)
	}
	plain := errors.New("dial tcp: refused")
	if redact(plain, initialRefresh) != plain {
		t.Fatal("an error without the token was rewritten")
	}
}
