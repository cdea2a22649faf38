package token

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

const (
	testIss = "https://broker.example"
	testAud = "gateway-1"
)

func newRing(t testing.TB, now time.Time) *KeyRing {
	t.Helper()
	k, err := GenerateKey(now)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewKeyRing([]Key{k})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func goodClaims(now time.Time) Claims {
	return Claims{
		Issuer: testIss, Subject: "agent-7", Audience: testAud,
		IssuedAt: now, Expiry: now.Add(2 * time.Minute), ID: "jti-1",
		Role: "researcher", Provider: "ionq", Device: "qpu.aria-1", MaxShots: 200,
		ProgramSHA256: strings.Repeat("ab", 32),
	}
}

type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

func newVerifier(t testing.TB, ks KeySource, c *clock) *Verifier {
	t.Helper()
	v, err := NewVerifier(VerifierConfig{Issuer: testIss, Audience: testAud, Keys: ks, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// b64 encodes a JSON value as a JWS segment.
func b64(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// signWith signs claims with an arbitrary Ed25519 key under the given kid.
func signWith(t testing.TB, priv ed25519.PrivateKey, kid string, w wireClaims) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: priv, KeyID: kid}},
		(&jose.SignerOptions{}).WithType(JobTokenType))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(s).Claims(w).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func assertNoLeak(t *testing.T, err error, raw string) {
	t.Helper()
	parts := strings.Split(raw, ".")
	for _, p := range parts {
		if len(p) > 10 && strings.Contains(err.Error(), p) {
			t.Fatalf("error leaks token: %v", err)
		}
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	r := newRing(t, t0)
	c := goodClaims(t0)
	raw, err := r.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	// Header has alg EdDSA, typ and kid.
	hdrJSON, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	var hdr map[string]any
	if err := json.Unmarshal(hdrJSON, &hdr); err != nil {
		t.Fatal(err)
	}
	if hdr["alg"] != "EdDSA" || hdr["typ"] != JobTokenType || hdr["kid"] != r.ActiveKeyID() {
		t.Fatalf("header %v", hdr)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
	for _, field := range []string{`"max_shots":200`, `"program_sha256"`, `"aud":"gateway-1"`, `"jti":"jti-1"`} {
		if !strings.Contains(string(payload), field) {
			t.Fatalf("payload %s lacks %s", payload, field)
		}
	}
	got, err := newVerifier(t, r, &clock{t0.Add(time.Minute)}).Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	c.NotBefore = c.IssuedAt // defaulted by Sign
	if *got != c {
		t.Fatalf("claims differ:\n got %+v\nwant %+v", *got, c)
	}
}

func TestSignRefusesBadClaims(t *testing.T) {
	r := newRing(t, t0)
	for name, mut := range map[string]func(*Claims){
		"no jti":         func(c *Claims) { c.ID = "" },
		"no provider":    func(c *Claims) { c.Provider = "" },
		"no device":      func(c *Claims) { c.Device = "" },
		"zero shots":     func(c *Claims) { c.MaxShots = 0 },
		"exp before iat": func(c *Claims) { c.Expiry = c.IssuedAt.Add(-time.Second) },
		"bad digest":     func(c *Claims) { c.ProgramSHA256 = "ABCD" },
	} {
		c := goodClaims(t0)
		mut(&c)
		if _, err := r.Sign(c); !errors.Is(err, ErrClaims) {
			t.Errorf("%s: got %v, want ErrClaims", name, err)
		}
	}
}

func TestVerifyTampered(t *testing.T) {
	r := newRing(t, t0)
	v := newVerifier(t, r, &clock{t0})
	raw, _ := r.Sign(goodClaims(t0))
	parts := strings.Split(raw, ".")

	// Payload swapped for one granting more shots, signature kept.
	w := goodClaims(t0).wire()
	w.MaxShots = 1_000_000
	forged := parts[0] + "." + b64(t, w) + "." + parts[2]
	if _, err := v.Verify(context.Background(), forged); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered payload: got %v", err)
	}
	// Header altered (still EdDSA, same kid): signature covers it.
	var hdr map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	_ = json.Unmarshal(hb, &hdr)
	hdr["x"] = "y"
	if _, err := v.Verify(context.Background(), b64(t, hdr)+"."+parts[1]+"."+parts[2]); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered header: got %v", err)
	}
	// One bit of the signature flipped.
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[5] ^= 1
	bad := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	if _, err := v.Verify(context.Background(), bad); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered signature: got %v", err)
	}
	// Signature removed.
	if _, err := v.Verify(context.Background(), parts[0]+"."+parts[1]+"."); err == nil {
		t.Fatal("unsigned token accepted")
	}
	// Junk.
	for _, junk := range []string{"", "a.b", "a.b.c.d", "...", raw + "x", strings.Repeat("A", 9000)} {
		if _, err := v.Verify(context.Background(), junk); err == nil {
			t.Fatalf("junk %q accepted", junk[:min(len(junk), 20)])
		}
	}
}

func TestVerifyOtherKey(t *testing.T) {
	r := newRing(t, t0)
	v := newVerifier(t, r, &clock{t0})
	_, evil, _ := ed25519.GenerateKey(rand.Reader)
	w := goodClaims(t0).wire()

	// Attacker's key, spoofing the real kid.
	raw := signWith(t, evil, r.ActiveKeyID(), w)
	_, err := v.Verify(context.Background(), raw)
	if !errors.Is(err, ErrBadSignature) {
		t.Fatalf("spoofed kid: got %v", err)
	}
	assertNoLeak(t, err, raw)

	// Attacker's key under its own kid.
	raw = signWith(t, evil, KeyID(evil.Public().(ed25519.PublicKey)), w)
	if _, err := v.Verify(context.Background(), raw); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown kid: got %v", err)
	}

	// Missing kid.
	raw = signWith(t, evil, "", w)
	if _, err := v.Verify(context.Background(), raw); !errors.Is(err, ErrMalformed) {
		t.Fatalf("no kid: got %v", err)
	}
}

// countingSource records lookups so tests can show refusal happens before any.
type countingSource struct {
	KeySource
	n int
}

func (c *countingSource) Key(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	c.n++
	return c.KeySource.Key(ctx, kid)
}

func TestVerifyRefusesOtherAlgorithms(t *testing.T) {
	r := newRing(t, t0)
	cs := &countingSource{KeySource: r}
	v := newVerifier(t, cs, &clock{t0})
	kid := r.ActiveKeyID()
	payload := b64(t, goodClaims(t0).wire())
	pub, _ := r.Key(context.Background(), kid)

	hmacToken := func(alg string, key []byte) string {
		input := b64(t, map[string]string{"alg": alg, "typ": JobTokenType, "kid": kid}) + "." + payload
		m := hmac.New(sha256.New, key)
		m.Write([]byte(input))
		return input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsInput := b64(t, map[string]string{"alg": "RS256", "typ": JobTokenType, "kid": kid}) + "." + payload
	digest := sha256.Sum256([]byte(rsInput))
	rsSig, _ := rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA256, digest[:])

	cases := map[string]string{
		"none":              b64(t, map[string]string{"alg": "none", "typ": JobTokenType, "kid": kid}) + "." + payload + ".",
		"None":              b64(t, map[string]string{"alg": "None", "kid": kid}) + "." + payload + ".",
		"HS256 pubkey":      hmacToken("HS256", pub),
		"HS256 x":           hmacToken("HS256", []byte(base64.RawURLEncoding.EncodeToString(pub))),
		"HS256 jwks":        hmacToken("HS256", r.JWKS()),
		"RS256":             rsInput + "." + base64.RawURLEncoding.EncodeToString(rsSig),
		"ES256":             b64(t, map[string]string{"alg": "ES256", "kid": kid}) + "." + payload + ".AAAA",
		"Ed25519 (not alg)": b64(t, map[string]string{"alg": "Ed25519", "kid": kid}) + "." + payload + ".AAAA",
	}
	for name, raw := range cases {
		_, err := v.Verify(context.Background(), raw)
		if !errors.Is(err, ErrUnsupportedAlg) {
			t.Errorf("%s: got %v, want ErrUnsupportedAlg", name, err)
			continue
		}
		assertNoLeak(t, err, raw)
	}
	if cs.n != 0 {
		t.Fatalf("%d key lookups for refused algorithms; want 0", cs.n)
	}
}

func TestVerifyRefusesEmbeddedKeyAndWrongType(t *testing.T) {
	r := newRing(t, t0)
	v := newVerifier(t, r, &clock{t0})
	_, evil, _ := ed25519.GenerateKey(rand.Reader)
	w := goodClaims(t0).wire()

	// Attacker embeds its own key in the header ("jwk"), claiming the real kid.
	s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: evil},
		(&jose.SignerOptions{EmbedJWK: true}).WithType(JobTokenType).WithHeader("kid", r.ActiveKeyID()))
	raw, err := jwt.Signed(s).Claims(w).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), raw); !errors.Is(err, ErrMalformed) {
		t.Fatalf("token with embedded jwk: got %v, want ErrMalformed", err)
	}

	// Right key, wrong typ (e.g. some other JWT the key might sign).
	s, _ = jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: r.active.Private, KeyID: r.ActiveKeyID()}},
		(&jose.SignerOptions{}).WithType("JWT"))
	raw, _ = jwt.Signed(s).Claims(w).Serialize()
	if _, err := v.Verify(context.Background(), raw); !errors.Is(err, ErrMalformed) {
		t.Fatalf("wrong typ: got %v", err)
	}
}

func TestVerifyTimes(t *testing.T) {
	r := newRing(t, t0)
	raw, _ := r.Sign(goodClaims(t0)) // iat t0, exp t0+2m
	cases := []struct {
		now  time.Time
		want error
	}{
		{t0, nil},
		{t0.Add(-4 * time.Second), nil}, // within leeway of iat/nbf
		{t0.Add(2*time.Minute + 4*time.Second), nil}, // within leeway of exp
		{t0.Add(2*time.Minute + 6*time.Second), ErrExpired},
		{t0.Add(time.Hour), ErrExpired},
		{t0.Add(-6 * time.Second), ErrNotYetValid},
	}
	for _, c := range cases {
		_, err := newVerifier(t, r, &clock{c.now}).Verify(context.Background(), raw)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("now=%s: got %v, want %v", c.now.Sub(t0), err, c.want)
		}
	}
	// nbf later than iat.
	c := goodClaims(t0)
	c.NotBefore = t0.Add(time.Minute)
	raw, _ = r.Sign(c)
	if _, err := newVerifier(t, r, &clock{t0.Add(30 * time.Second)}).Verify(context.Background(), raw); !errors.Is(err, ErrNotYetValid) {
		t.Fatalf("nbf: got %v", err)
	}
}

func TestVerifyClaims(t *testing.T) {
	r := newRing(t, t0)
	v := newVerifier(t, r, &clock{t0})
	good := goodClaims(t0).wire()
	cases := map[string]func(*wireClaims){
		"wrong iss":       func(w *wireClaims) { w.Issuer = "https://evil.example" },
		"empty iss":       func(w *wireClaims) { w.Issuer = "" },
		"wrong aud":       func(w *wireClaims) { w.Audience = jwt.Audience{"gateway-2"} },
		"aud prefix":      func(w *wireClaims) { w.Audience = jwt.Audience{testAud + "x"} },
		"extra aud":       func(w *wireClaims) { w.Audience = jwt.Audience{testAud, "other"} },
		"no aud":          func(w *wireClaims) { w.Audience = jwt.Audience{} },
		"ttl > max":       func(w *wireClaims) { w.Expiry = jwt.NewNumericDate(t0.Add(5*time.Minute + time.Second)) },
		"no exp":          func(w *wireClaims) { w.Expiry = nil },
		"no iat":          func(w *wireClaims) { w.IssuedAt = nil },
		"empty jti":       func(w *wireClaims) { w.ID = "" },
		"empty provider":  func(w *wireClaims) { w.Provider = "" },
		"empty device":    func(w *wireClaims) { w.Device = "" },
		"zero shots":      func(w *wireClaims) { w.MaxShots = 0 },
		"negative shots":  func(w *wireClaims) { w.MaxShots = -5 },
		"bad program sha": func(w *wireClaims) { w.ProgramSHA256 = "xyz" },
	}
	for name, mut := range cases {
		w := good
		mut(&w)
		raw, err := r.signWire(w)
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(context.Background(), raw)
		if !errors.Is(err, ErrClaims) {
			t.Errorf("%s: got %v, want ErrClaims", name, err)
			continue
		}
		assertNoLeak(t, err, raw)
	}
	// Exactly MaxTTL is allowed.
	w := good
	w.Expiry = jwt.NewNumericDate(t0.Add(5 * time.Minute))
	raw, _ := r.signWire(w)
	if _, err := v.Verify(context.Background(), raw); err != nil {
		t.Fatalf("ttl == max: %v", err)
	}
	// A custom lower MaxTTL applies.
	strict, _ := NewVerifier(VerifierConfig{Issuer: testIss, Audience: testAud, Keys: r, MaxTTL: time.Minute, Now: (&clock{t0}).Now})
	raw, _ = r.Sign(goodClaims(t0)) // 2 minute TTL
	if _, err := strict.Verify(context.Background(), raw); !errors.Is(err, ErrClaims) {
		t.Fatalf("custom MaxTTL: got %v", err)
	}
}

func TestVerifyNonJSONClaims(t *testing.T) {
	r := newRing(t, t0)
	v := newVerifier(t, r, &clock{t0})
	// Correctly signed, but the payload is not a claims object.
	s := r.signer
	obj, err := s.Sign([]byte(`["not","claims"]`))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := obj.CompactSerialize()
	if _, err := v.Verify(context.Background(), raw); !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v, want ErrMalformed", err)
	}
	// max_shots as a huge number does not wrap around.
	obj, _ = s.Sign([]byte(`{"iss":"` + testIss + `","aud":"` + testAud + `","sub":"a","jti":"j","provider":"p","device":"d","max_shots":1e30,"iat":1893553445,"exp":1893553500}`))
	raw, _ = obj.CompactSerialize()
	if _, err := v.Verify(context.Background(), raw); err == nil {
		t.Fatal("max_shots 1e30 accepted")
	}
}

func TestNewVerifierConfig(t *testing.T) {
	r := newRing(t, t0)
	bad := []VerifierConfig{
		{Audience: testAud, Keys: r},
		{Issuer: testIss, Keys: r},
		{Issuer: testIss, Audience: testAud},
		{Issuer: testIss, Audience: testAud, Keys: r, Leeway: 31 * time.Second},
		{Issuer: testIss, Audience: testAud, Keys: r, Leeway: -time.Second},
		{Issuer: testIss, Audience: testAud, Keys: r, MaxTTL: -time.Second},
	}
	for i, c := range bad {
		if _, err := NewVerifier(c); err == nil {
			t.Errorf("config %d accepted", i)
		}
	}
	v, err := NewVerifier(VerifierConfig{Issuer: testIss, Audience: testAud, Keys: r})
	if err != nil || v.leeway != DefaultLeeway || v.maxTTL != DefaultMaxTTL {
		t.Fatalf("defaults not applied: %v", err)
	}
}

func BenchmarkSign(b *testing.B) {
	r := newRing(b, t0)
	c := goodClaims(t0)
	for b.Loop() {
		if _, err := r.Sign(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	r := newRing(b, t0)
	raw, _ := r.Sign(goodClaims(t0))
	v := newVerifier(b, r, &clock{t0})
	ctx := context.Background()
	for b.Loop() {
		if _, err := v.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
}

func jsonSegment(raw string, i int) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[i])
}

func b64raw(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
