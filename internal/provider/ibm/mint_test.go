package ibm

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/sim/ibmsim"
)

// TestMintBearerExpiresWithIAMClock: the minted bearer works on Qiskit
// Runtime, Expires is IAM's hour on the emulator's clock, and once that
// clock passes it the service refuses the token.
func TestMintBearerExpiresWithIAMClock(t *testing.T) {
	s := newEmu(t, nil)
	a := s.adapter()
	before := s.now()
	cred := s.mint(t)
	if cred.Secret == "" || cred.Secret == rootKey || cred.AccessKeyID != "" || cred.SessionToken != "" {
		t.Fatalf("credential = %+v", cred)
	}
	if d := cred.Expires.Sub(before); d < time.Hour-2*time.Second || d > time.Hour {
		t.Fatalf("expires in %s, want IAM's hour", d)
	}
	if ans := s.forward(t, a, http.MethodGet, "/api/v1/backends", http.Header{}, nil, cred); ans.status != http.StatusOK {
		t.Fatalf("fresh token: %d %s", ans.status, ans.body)
	}
	s.advance(cred.Expires.Sub(s.now()) + time.Second)
	ans := s.forward(t, a, http.MethodGet, "/api/v1/backends", http.Header{}, nil, cred)
	if ans.status != http.StatusUnauthorized || errCode(ans.body) != 1201 {
		t.Fatalf("expired token: %d %s", ans.status, ans.body)
	}
	again := s.mint(t)
	if ans := s.forward(t, a, http.MethodGet, "/api/v1/backends", http.Header{}, nil, again); ans.status != http.StatusOK {
		t.Fatalf("re-minted token: %d %s", ans.status, ans.body)
	}
}

// TestMintShorterTokenTTL: an IAM that issues shorter tokens is honoured.
func TestMintShorterTokenTTL(t *testing.T) {
	s := newEmu(t, func(c *ibmsim.Config) { c.TokenTTL = 10 * time.Minute })
	before := s.now()
	cred := s.mint(t)
	if d := cred.Expires.Sub(before); d < 10*time.Minute-2*time.Second || d > 10*time.Minute {
		t.Fatalf("expires in %s, want 10m", d)
	}
}

// TestMintWrongKeyKeepsKeySecret: IAM's refusal is a MintError with IAM's
// code, and its text never holds the key that was tried.
func TestMintWrongKeyKeepsKeySecret(t *testing.T) {
	s := newEmu(t, nil)
	wrong := "ibm-wrong-api-key-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	_, _, _, err := s.minter().Mint(context.Background(), wrong, "demo")
	var me *MintError
	if !errors.As(err, &me) || me.Status != http.StatusBadRequest || me.Code != "BXNIM0415E" {
		t.Fatalf("err = %v", err)
	}
	mustContainNot(t, "mint error", err.Error(), wrong, rootKey)
}

// TestMintHostileIAM: whatever the IAM endpoint answers, the key is never
// in the error, and a bad answer is no credential.
func TestMintHostileIAM(t *testing.T) {
	cases := map[string]struct {
		status int
		body   string
	}{
		"echoes the key":     {400, `{"errorCode":"BXNIM0415E","errorMessage":"key ` + rootKey + ` not found"}`},
		"not JSON":           {200, `<html>` + rootKey},
		"no token":           {200, `{"token_type":"Bearer","expires_in":3600}`},
		"not bearer":         {200, `{"access_token":"x","token_type":"MAC","expires_in":3600}`},
		"no expiry":          {200, `{"access_token":"x","token_type":"Bearer"}`},
		"expired":            {200, `{"access_token":"x","token_type":"Bearer","expiration":1000}`},
		"token with a space": {200, `{"access_token":"a b","token_type":"Bearer","expires_in":3600}`},
		"server error":       {503, `upstream ` + rootKey},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(c.status)
				_, _ = w.Write([]byte(c.body))
			}))
			defer srv.Close()
			cred, _, _, err := (&Minter{IAMURL: srv.URL}).Mint(context.Background(), rootKey, "demo")
			if err == nil {
				t.Fatalf("minted %+v", cred)
			}
			mustContainNot(t, "mint error", err.Error(), rootKey)
		})
	}
}

// TestMintExpiry: the earlier of expires_in and expiration wins, a past
// expiration is ignored (clock skew), and no token outlives IAM's hour.
func TestMintExpiry(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cases := []struct {
		name string
		ans  tokenAnswer
		want time.Duration
	}{
		{"expires_in", tokenAnswer{ExpiresIn: 3600}, time.Hour},
		{"earlier expiration", tokenAnswer{ExpiresIn: 3600, Expiration: now.Add(30 * time.Minute).Unix()}, 30 * time.Minute},
		{"past expiration ignored", tokenAnswer{ExpiresIn: 1200, Expiration: now.Add(-time.Hour).Unix()}, 20 * time.Minute},
		{"expiration only", tokenAnswer{Expiration: now.Add(15 * time.Minute).Unix()}, 15 * time.Minute},
		{"capped", tokenAnswer{ExpiresIn: 86400}, time.Hour},
		{"capped expiration", tokenAnswer{Expiration: now.Add(48 * time.Hour).Unix()}, time.Hour},
	}
	for _, c := range cases {
		got, err := expiry(now, c.ans)
		if err != nil || got.Sub(now) != c.want {
			t.Errorf("%s: %s, %v; want %s", c.name, got.Sub(now), err, c.want)
		}
	}
}

// TestMintNeverFollowsRedirects: an IAM endpoint that redirects (307
// replays the POST body) does not get the key sent anywhere else.
func TestMintNeverFollowsRedirects(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		elsewhere.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer other.Close()
	iam := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/identity/token", http.StatusTemporaryRedirect)
	}))
	defer iam.Close()
	follows := &http.Client{} // a caller's client that would follow redirects
	_, _, _, err := (&Minter{IAMURL: iam.URL, HTTPClient: follows}).Mint(context.Background(), rootKey, "demo")
	if err == nil {
		t.Fatal("minted through a redirect")
	}
	if elsewhere.Load() != 0 {
		t.Fatal("the key was replayed to the redirect target")
	}
	if follows.CheckRedirect != nil {
		t.Fatal("the caller's client was modified")
	}
}

// TestMintRefusesBadConfig: an empty key and IAM URLs that would expose
// the key in clear are refused before anything is sent.
func TestMintRefusesBadConfig(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	if _, _, _, err := (&Minter{IAMURL: srv.URL}).Mint(context.Background(), "  ", "demo"); err == nil {
		t.Error("an empty key was exchanged")
	}
	for _, u := range []string{"http://iam.example.com", "ftp://iam.cloud.ibm.com", "https://user:pw@iam.cloud.ibm.com", "https://iam.cloud.ibm.com?x=1", "iam.cloud.ibm.com"} {
		_, _, _, err := (&Minter{IAMURL: u}).Mint(context.Background(), rootKey, "demo")
		if err == nil || !strings.Contains(err.Error(), "IAM URL") {
			t.Errorf("IAM URL %q: %v", u, err)
		}
	}
	if hits.Load() != 0 {
		t.Error("a request was sent")
	}
	if u, err := (&Minter{}).tokenURL(); err != nil || u != DefaultIAMURL+"/identity/token" {
		t.Errorf("default token URL = %q, %v", u, err)
	}
}

// TestMintContextCanceled: a canceled exchange reports the context error.
func TestMintContextCanceled(t *testing.T) {
	s := newEmu(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, _, err := s.minter().Mint(ctx, rootKey, "demo")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	mustContainNot(t, "mint error", err.Error(), rootKey)
}
