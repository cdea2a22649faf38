package device

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeIdP is a scripted device-grant IdP for the cases the real OP cannot
// produce on demand (slow_down, 5xx, odd errors, blocking).
type fakeIdP struct {
	srv         *httptest.Server
	issuer      atomic.Value // string: what discovery claims; default srv.URL
	noDevice    bool         // omit device_authorization_endpoint
	tokenStatus atomic.Int64
	tokenBody   atomic.Value // string
	block       chan struct{}
	tokenHits   atomic.Int64
	deviceHits  atomic.Int64
	mu          sync.Mutex
	authHeaders []string
}

func newFakeIdP(t *testing.T, setup func(*fakeIdP)) *fakeIdP {
	t.Helper()
	p := &fakeIdP{}
	p.tokenStatus.Store(400)
	p.tokenBody.Store(`{"error":"authorization_pending"}`)
	if setup != nil {
		setup(p)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		iss, _ := p.issuer.Load().(string)
		if iss == "" {
			iss = p.srv.URL
		}
		doc := map[string]any{"issuer": iss, "token_endpoint": p.srv.URL + "/token", "jwks_uri": p.srv.URL + "/keys"}
		if !p.noDevice {
			doc["device_authorization_endpoint"] = p.srv.URL + "/device"
		}
		_ = json.NewEncoder(w).Encode(doc)
	})
	mux.HandleFunc("POST /device", func(w http.ResponseWriter, r *http.Request) {
		p.deviceHits.Add(1)
		p.mu.Lock()
		p.authHeaders = append(p.authHeaders, r.Header.Get("Authorization"))
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"device_code":"DEVCODE-secret","user_code":"ABCD-EFGH","verification_url":"https://idp.test/device","expires_in":600,"interval":2}`))
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		p.tokenHits.Add(1)
		if p.block != nil {
			<-p.block
		}
		if err := r.ParseForm(); err != nil || r.PostForm.Get("device_code") != "DEVCODE-secret" ||
			r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:device_code" {
			http.Error(w, `{"error":"invalid_request"}`, 400)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(p.tokenStatus.Load()))
		_, _ = w.Write([]byte(p.tokenBody.Load().(string)))
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *fakeIdP) respond(status int, body string) {
	p.tokenStatus.Store(int64(status))
	p.tokenBody.Store(body)
}

func fakeFlow(t *testing.T, p *fakeIdP, clk *fakeClock, mut ...func(*Config)) *Flow {
	t.Helper()
	cfg := Config{Issuer: p.srv.URL, ClientID: "broker id", ClientSecret: "s3cr:et&x", Now: clk.Now}
	for _, m := range mut {
		m(&cfg)
	}
	f, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestClientAuthAndResponseShape: client_secret_basic with RFC 6749 §2.3.1
// encoding; verification_url spelling accepted; interval from the IdP.
func TestClientAuthAndResponseShape(t *testing.T) {
	p := newFakeIdP(t, nil)
	clk := newClock()
	f := fakeFlow(t, p, clk)
	pd, err := f.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pd.VerificationURI != "https://idp.test/device" || pd.Interval != 2*time.Second || pd.VerificationURIComplete != "" ||
		!pd.ExpiresAt.Equal(clk.Now().Add(10*time.Minute)) {
		t.Fatalf("pending %+v", pd)
	}
	req, _ := http.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", p.authHeaders[0])
	id, secret, ok := req.BasicAuth()
	if !ok || id != "broker+id" || secret != "s3cr%3Aet%26x" {
		t.Fatalf("basic auth %q %q", id, secret)
	}
}

// TestIdPSlowDown: an IdP slow_down adds 5 s to the handle's interval.
func TestIdPSlowDown(t *testing.T) {
	p := newFakeIdP(t, nil)
	clk := newClock()
	f := fakeFlow(t, p, clk)
	pd, _ := f.Start(ctx)
	p.respond(400, `{"error":"slow_down"}`)
	clk.Advance(2 * time.Second)
	_, err := f.Poll(ctx, pd.Handle)
	wantErr(t, err, ErrSlowDown)
	clk.Advance(2 * time.Second) // the old interval is no longer enough
	_, err = f.Poll(ctx, pd.Handle)
	wantErr(t, err, ErrSlowDown)
	if n := p.tokenHits.Load(); n != 1 {
		t.Fatalf("token hits %d", n)
	}
	clk.Advance(5 * time.Second)
	p.respond(200, `{"access_token":"at","token_type":"Bearer","id_token":"a.b.c","expires_in":60}`)
	res, err := f.Poll(ctx, pd.Handle)
	if err != nil || res.AccessToken != "at" || res.IDToken != "a.b.c" || !res.Expiry.Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("res %v err %v", res, err)
	}
}

// TestIdPFailures: 5xx keeps the handle (transient); an unexpected OAuth error
// ends it; neither leaks the device code, the secret or IdP-supplied text.
func TestIdPFailures(t *testing.T) {
	p := newFakeIdP(t, nil)
	clk := newClock()
	f := fakeFlow(t, p, clk)
	pd, _ := f.Start(ctx)

	p.respond(503, `{"error":"temporarily_unavailable"}`)
	clk.Advance(2 * time.Second)
	_, err := f.Poll(ctx, pd.Handle)
	wantErr(t, err, ErrIdPUnavailable)
	if f.Len() != 1 {
		t.Fatal("a transient IdP failure removed the handle")
	}

	p.respond(400, `{"error":"invalid_grant","error_description":"DEVCODE-secret <script>"}`)
	clk.Advance(2 * time.Second)
	_, err = f.Poll(ctx, pd.Handle)
	wantErr(t, err, ErrIdPRefused)
	for _, leak := range []string{"DEVCODE-secret", "s3cr", "<script>"} {
		if strings.Contains(err.Error(), leak) {
			t.Fatalf("error leaks %q: %v", leak, err)
		}
	}
	if !strings.Contains(err.Error(), "invalid_grant") || f.Len() != 0 {
		t.Fatalf("err %v, pending %d", err, f.Len())
	}

	p.respond(200, `{"token_type":"Bearer"}`)
	pd, _ = f.Start(ctx)
	clk.Advance(2 * time.Second)
	_, err = f.Poll(ctx, pd.Handle)
	wantErr(t, err, ErrIdPRefused)
}

// TestConcurrentPollsOneIdPRequest: while one poll is at the IdP, a second
// poll of the same handle gets ErrSlowDown without a second request.
func TestConcurrentPollsOneIdPRequest(t *testing.T) {
	block := make(chan struct{})
	p := newFakeIdP(t, func(p *fakeIdP) { p.block = block })
	clk := newClock()
	f := fakeFlow(t, p, clk)
	pd, _ := f.Start(ctx)
	clk.Advance(time.Hour / 60)
	done := make(chan error)
	go func() { _, err := f.Poll(ctx, pd.Handle); done <- err }()
	for p.tokenHits.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	clk.Advance(time.Minute) // even with the interval elapsed
	_, err := f.Poll(ctx, pd.Handle)
	wantErr(t, err, ErrSlowDown)
	close(block)
	wantErr(t, <-done, ErrPending)
	if n := p.tokenHits.Load(); n != 1 {
		t.Fatalf("token hits %d", n)
	}
}

// TestPendingCap: at MaxPending, Start refuses without asking the IdP; expired
// entries are swept to make room.
func TestPendingCap(t *testing.T) {
	p := newFakeIdP(t, nil)
	clk := newClock()
	f := fakeFlow(t, p, clk, func(c *Config) { c.MaxPending = 2 })
	for range 2 {
		if _, err := f.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	_, err := f.Start(ctx)
	wantErr(t, err, ErrTooManyPending)
	if n := p.deviceHits.Load(); n != 2 {
		t.Fatalf("device hits %d: a refused start reached the IdP", n)
	}
	clk.Advance(10 * time.Minute)
	if _, err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if f.Len() != 1 {
		t.Fatalf("pending %d after sweep", f.Len())
	}
}

// TestDiscoveryChecks: a document without a device endpoint, or naming another
// issuer, fails Start with ErrIdPUnavailable; discovery is retried later.
func TestDiscoveryChecks(t *testing.T) {
	clk := newClock()
	p := newFakeIdP(t, func(p *fakeIdP) { p.noDevice = true })
	_, err := fakeFlow(t, p, clk).Start(ctx)
	wantErr(t, err, ErrIdPUnavailable)
	if !strings.Contains(err.Error(), "device_authorization_endpoint") {
		t.Fatalf("err %v", err)
	}
	q := newFakeIdP(t, func(p *fakeIdP) { p.issuer.Store("https://evil.test") })
	f := fakeFlow(t, q, clk)
	_, err = f.Start(ctx)
	wantErr(t, err, ErrIdPUnavailable)
	q.issuer.Store("")
	if _, err := f.Start(ctx); err != nil {
		t.Fatalf("discovery not retried: %v", err)
	}
	if q.deviceHits.Load() != 1 {
		t.Fatal("device endpoint used before discovery succeeded")
	}
}

// TestConfigValidation reports every problem at once.
func TestConfigValidation(t *testing.T) {
	_, err := New(ctx, Config{Issuer: "ftp://x", DiscoveryURL: "http://u:p@h/", MaxPending: -1})
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"issuer", "discovery_url", "client_id", "max_pending"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("%q missing from %v", want, err)
		}
	}
	var e *Error
	if errors.As(err, &e) {
		t.Fatal("config error must not look like a device-flow error")
	}
}
