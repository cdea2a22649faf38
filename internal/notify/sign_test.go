package notify

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestSignKnownAnswer(t *testing.T) {
	// openssl: printf '%s' '1700000000.{"text":"hi"}' | openssl dgst -sha256 -hmac 0123456789abcdef
	got := Sign([]byte("0123456789abcdef"), "1700000000", []byte(`{"text":"hi"}`))
	want := "v1=f3fbef9e6dd9321e73dc29c58e566ffc6b7f9a39c12eabc86e4133ab42f3513d"
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	secret := []byte("0123456789abcdef-secret")
	body := []byte(`{"text":"approve?"}`)
	now := time.Unix(1_700_000_000, 0)
	signed := func(ts int64, key, b []byte) http.Header {
		h := http.Header{}
		s := strconv.FormatInt(ts, 10)
		h.Set(HeaderTimestamp, s)
		h.Set(HeaderSignature, Sign(key, s, b))
		return h
	}
	tests := []struct {
		name   string
		h      http.Header
		body   []byte
		secret []byte
		want   error
	}{
		{"valid", signed(now.Unix(), secret, body), body, secret, nil},
		{"valid at the edge of tolerance", signed(now.Unix()-60, secret, body), body, secret, nil},
		{"wrong secret", signed(now.Unix(), []byte("another-secret-of-16+"), body), body, secret, ErrBadSignature},
		{"altered body", signed(now.Unix(), secret, body), []byte(`{"text":"approve!"}`), secret, ErrBadSignature},
		{"stale", signed(now.Unix()-61, secret, body), body, secret, ErrStale},
		{"from the future", signed(now.Unix()+61, secret, body), body, secret, ErrStale},
		{"max int timestamp", signed(1<<63-1, secret, body), body, secret, ErrStale},
		{"min int timestamp", signed(-1<<63, secret, body), body, secret, ErrStale},
		{"empty secret", signed(now.Unix(), nil, body), body, nil, ErrBadSignature},
		{"no headers", http.Header{}, body, secret, ErrMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.secret, tt.h, tt.body, now, time.Minute)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}

	t.Run("timestamp swapped after signing", func(t *testing.T) {
		h := signed(now.Unix(), secret, body)
		h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix()-1, 10))
		if err := Verify(secret, h, body, now, time.Minute); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("Verify = %v, want ErrBadSignature", err)
		}
	})
	t.Run("stale signature replayed with a fresh timestamp", func(t *testing.T) {
		old := signed(now.Unix()-3600, secret, body)
		h := http.Header{}
		h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		h.Set(HeaderSignature, old.Get(HeaderSignature))
		if err := Verify(secret, h, body, now, time.Minute); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("Verify = %v, want ErrBadSignature", err)
		}
	})
	t.Run("malformed timestamp", func(t *testing.T) {
		h := http.Header{}
		h.Set(HeaderTimestamp, "soon")
		h.Set(HeaderSignature, Sign(secret, "soon", body))
		if err := Verify(secret, h, body, now, time.Minute); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("Verify = %v, want ErrBadSignature", err)
		}
	})
	t.Run("missing signature only", func(t *testing.T) {
		h := signed(now.Unix(), secret, body)
		h.Del(HeaderSignature)
		if err := Verify(secret, h, body, now, time.Minute); !errors.Is(err, ErrMissing) {
			t.Fatalf("Verify = %v, want ErrMissing", err)
		}
	})
	t.Run("bare hex without the scheme prefix", func(t *testing.T) {
		h := signed(now.Unix(), secret, body)
		h.Set(HeaderSignature, h.Get(HeaderSignature)[len("v1="):])
		if err := Verify(secret, h, body, now, time.Minute); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("Verify = %v, want ErrBadSignature", err)
		}
	})
	t.Run("default tolerance is five minutes", func(t *testing.T) {
		if err := Verify(secret, signed(now.Unix()-299, secret, body), body, now, 0); err != nil {
			t.Fatalf("299s old: %v", err)
		}
		if err := Verify(secret, signed(now.Unix()-301, secret, body), body, now, 0); !errors.Is(err, ErrStale) {
			t.Fatalf("301s old: %v, want ErrStale", err)
		}
	})
}
