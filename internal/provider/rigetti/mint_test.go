package rigetti

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/sim/rigettisim"
)

// TestMintChainRotates: five mints, each fed the previous rotation, all
// succeed with working access tokens; every spent refresh token is then
// refused as ErrRefreshRejected, and the newest still works.
func TestMintChainRotates(t *testing.T) {
	q := newQCS(t, nil)
	root := initialRefresh
	spent := []string{}
	seen := map[string]bool{root: true}
	for i := range 5 {
		c, rotated := q.mint(t, root)
		if seen[rotated] || seen[c.Secret] {
			t.Fatalf("mint %d repeated a token", i)
		}
		seen[rotated], seen[c.Secret] = true, true
		if code, _ := q.getUser(t, c.Secret); code != http.StatusOK {
			t.Fatalf("mint %d: access token refused: %d", i, code)
		}
		spent = append(spent, root)
		root = rotated
	}
	for i, old := range spent {
		_, _, rotated, err := q.minter().Mint(context.Background(), old, "demo")
		if rotated != "" {
			t.Fatalf("reuse %d returned a rotation", i)
		}
		mustBeRejected(t, err, old, root)
	}
	if _, next := q.mint(t, root); next == "" {
		t.Fatal("newest refresh token no longer works")
	}
}

// TestMintReuseRejected: a refresh token that was already exchanged is
// dead at once; reusing it is ErrRefreshRejected, a *TokenError whose text
// tells the operator to re-enrol and holds no token.
func TestMintReuseRejected(t *testing.T) {
	q := newQCS(t, nil)
	c, rotated := q.mint(t, initialRefresh)
	cred, _, again, err := q.minter().Mint(context.Background(), initialRefresh, "demo")
	if cred.Secret != "" || again != "" {
		t.Fatal("a rejected refresh returned a credential or rotation")
	}
	mustBeRejected(t, err, initialRefresh, rotated, c.Secret)
	// An unknown token is refused the same way (expired or revoked ones
	// look alike to the server).
	_, _, _, err = q.minter().Mint(context.Background(), "never-issued-refresh-token-XYZ", "demo")
	mustBeRejected(t, err, "never-issued-refresh-token-XYZ")
}

// TestConcurrentMintsOneWins shows why the broker must serialise mints:
// several exchanges of one refresh token race, exactly one wins, every
// other is ErrRefreshRejected. Serialised the way broker.Upstream does it
// (one lock; each mint reads the root the previous stored), all succeed.
func TestConcurrentMintsOneWins(t *testing.T) {
	q := newQCS(t, nil)
	const n = 8
	m := q.minter()
	var wg sync.WaitGroup
	errs := make([]error, n)
	rotations := make([]string, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, _, rotations[i], errs[i] = m.Mint(context.Background(), initialRefresh, "demo")
		}()
	}
	close(start)
	wg.Wait()
	wins := 0
	var winner string
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
			winner = rotations[i]
		case errors.Is(err, ErrRefreshRejected):
			if rotations[i] != "" {
				t.Fatal("a losing mint returned a rotation")
			}
		default:
			t.Fatalf("mint %d: unexpected error %v", i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent mints with one refresh token succeeded, want exactly 1", wins, n)
	}

	// Serialised: the broker's rule.
	var mu sync.Mutex
	stored := winner
	ok := make([]bool, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			c, _, rotated, err := m.Mint(context.Background(), stored, "demo")
			if rotated != "" {
				stored = rotated // persisted before the credential is used
			}
			ok[i] = err == nil && c.Secret != ""
		}()
	}
	wg.Wait()
	for i, good := range ok {
		if !good {
			t.Fatalf("serialised mint %d failed", i)
		}
	}
	if _, next := q.mint(t, stored); next == "" {
		t.Fatal("the last stored rotation does not work")
	}
}

// TestAccessTokenExpiresWithQCSClock: the access token works on QCS's
// authenticated REST call, Expires is expires_in after the request on the
// shared clock, and QCS refuses the token once its clock passes that.
func TestAccessTokenExpiresWithQCSClock(t *testing.T) {
	q := newQCS(t, nil)
	t0 := q.clock.Now()
	c, _ := q.mint(t, initialRefresh)
	if !c.Expires.Equal(t0.Add(rigettisim.DefaultAccessTokenTTL)) {
		t.Fatalf("expires %s, want %s", c.Expires, t0.Add(rigettisim.DefaultAccessTokenTTL))
	}
	if code, _ := q.getUser(t, c.Secret); code != http.StatusOK {
		t.Fatalf("fresh token: %d", code)
	}
	q.clock.Set(c.Expires.Add(-time.Second))
	if code, _ := q.getUser(t, c.Secret); code != http.StatusOK {
		t.Fatalf("token a second before Expires: %d", code)
	}
	q.clock.Set(c.Expires.Add(time.Second))
	if code, qcsCode := q.getUser(t, c.Secret); code != http.StatusUnauthorized || qcsCode != "unauthorized" {
		t.Fatalf("token after Expires: %d %s", code, qcsCode)
	}
}

// TestMintHonoursShorterTTL: a server that issues shorter tokens is
// believed.
func TestMintHonoursShorterTTL(t *testing.T) {
	q := newQCS(t, func(c *rigettisim.Config) { c.AccessTokenTTL = 10 * time.Minute })
	t0 := q.clock.Now()
	c, _ := q.mint(t, initialRefresh)
	if !c.Expires.Equal(t0.Add(10 * time.Minute)) {
		t.Fatalf("expires %s, want 10 minutes after %s", c.Expires, t0)
	}
}

// TestMintTokenURLOrIssuer: the endpoint can be given as the issuer (with
// or without a trailing slash) or as the token URL itself.
func TestMintTokenURLOrIssuer(t *testing.T) {
	q := newQCS(t, nil)
	root := initialRefresh
	for _, m := range []*Minter{
		{Issuer: q.issuer(), ClientID: q.e.ClientID()},
		{Issuer: q.issuer() + "/", ClientID: q.e.ClientID()},
		{TokenURL: q.issuer() + "/v1/token", ClientID: q.e.ClientID()},
		{Issuer: "https://wrong.invalid/ignored", TokenURL: q.issuer() + "/v1/token"}, // TokenURL wins; default client id
	} {
		_, _, rotated, err := m.Mint(context.Background(), root, "demo")
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		root = rotated
	}
}

// TestMintWrongClientSparesToken: a wrong client id is invalid_client, not
// the re-enrol error, and does not spend the refresh token.
func TestMintWrongClientSparesToken(t *testing.T) {
	q := newQCS(t, nil)
	m := q.minter()
	m.ClientID = "0oaSomeOtherClient"
	_, _, rotated, err := m.Mint(context.Background(), initialRefresh, "demo")
	var te *TokenError
	if !errors.As(err, &te) || te.Code != "invalid_client" || te.Status != http.StatusUnauthorized || errors.Is(err, ErrRefreshRejected) || rotated != "" {
		t.Fatalf("wrong client: %v", err)
	}
	noSecrets(t, err, initialRefresh)
	q.mint(t, initialRefresh)
}

// TestMintFinishesAfterCallerCancels: a caller that stops waiting once the
// refresh is sent does not lose the rotation QCS made.
func TestMintFinishesAfterCallerCancels(t *testing.T) {
	q := newQCS(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q.wrap = func(w http.ResponseWriter, r *http.Request, emu http.Handler) {
		rec := httptest.NewRecorder()
		emu.ServeHTTP(rec, r) // QCS has rotated
		cancel()              // the caller gives up
		time.Sleep(50 * time.Millisecond)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}
	c, _, rotated, err := q.minter().Mint(ctx, initialRefresh, "demo")
	if err != nil || rotated == "" || c.Secret == "" {
		t.Fatalf("mint across cancel: rotated=%t err=%v", rotated != "", err)
	}
	q.wrap = nil
	q.mint(t, rotated)

	// Cancelled before sending: nothing is sent.
	before := q.tokens.Load()
	_, _, _, err = q.minter().Mint(ctx, rotated, "demo")
	if !errors.Is(err, context.Canceled) || q.tokens.Load() != before {
		t.Fatalf("cancelled mint: %v, %d requests", err, q.tokens.Load()-before)
	}
}

// TestMintDoesNotFollowRedirects: a token endpoint that redirects does not
// get the refresh token re-sent to the target, and the token stays usable.
func TestMintDoesNotFollowRedirects(t *testing.T) {
	q := newQCS(t, nil)
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		redirector := httptest.NewServer(http.RedirectHandler(q.issuer()+"/v1/token", status))
		// A client that would follow redirects: Mint must override it.
		m := &Minter{TokenURL: redirector.URL + "/v1/token", ClientID: q.e.ClientID(), HTTPClient: &http.Client{}}
		_, _, rotated, err := m.Mint(context.Background(), initialRefresh, "demo")
		redirector.Close()
		if err == nil || rotated != "" {
			t.Fatalf("%d: redirect followed or accepted", status)
		}
		noSecrets(t, err, initialRefresh)
		if n := q.tokens.Load(); n != 0 {
			t.Fatalf("%d: the redirect target received %d token requests", status, n)
		}
	}
	q.mint(t, initialRefresh)
}

// TestMintRefusesUnsafeURLs: the refresh token is never sent in clear to a
// non-loopback host, nor to a URL with credentials or a query.
func TestMintRefusesUnsafeURLs(t *testing.T) {
	var sent int
	hc := &http.Client{Transport: roundTrip(func(*http.Request) (*http.Response, error) {
		sent++
		return nil, errors.New("must not be sent")
	})}
	for _, m := range []*Minter{
		{Issuer: "http://auth.qcs.rigetti.com/oauth2/aus8jcovzG0gW2TUG355"},
		{TokenURL: "http://10.0.0.1/v1/token"},
		{TokenURL: "ftp://127.0.0.1/v1/token"},
		{TokenURL: "https://user:pw@auth.example/v1/token"},
		{TokenURL: "https://auth.example/v1/token?x=1"},
		{TokenURL: "https://auth.example/v1/token#f"},
		{TokenURL: "/v1/token"},
	} {
		m.HTTPClient = hc
		_, _, _, err := m.Mint(context.Background(), initialRefresh, "demo")
		if err == nil {
			t.Fatalf("%+v accepted", m)
		}
		noSecrets(t, err, initialRefresh, "pw")
	}
	if sent != 0 {
		t.Fatalf("%d requests sent", sent)
	}
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
