package spiffe

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type mtlsServer struct {
	srv     *httptest.Server
	log     *syncBuffer
	reached atomic.Int32
	resumed atomic.Bool // the last cert login's connection was a resumed TLS session
}

// newMTLSServer wires the authenticator the way the broker does: one TLS
// listener for everyone, cert login reading r.TLS, token routes untouched.
func newMTLSServer(t *testing.T, a *Authenticator) *mtlsServer {
	t.Helper()
	m := &mtlsServer{log: &syncBuffer{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/auth/cert/login", func(w http.ResponseWriter, r *http.Request) {
		m.reached.Add(1)
		m.resumed.Store(r.TLS != nil && r.TLS.DidResume)
		id, err := a.LoginTLS(r.Context(), r.URL.Query().Get("role"), r.TLS)
		w.Header().Set("Content-Type", "application/json")
		var le *LoginError
		switch {
		case errors.As(err, &le):
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]any{"errors": []string{le.Reason}})
		case err != nil:
			w.WriteHeader(http.StatusInternalServerError)
		default:
			_ = json.NewEncoder(w).Encode(id)
		}
	})
	mux.HandleFunc("GET /v1/sys/health", func(w http.ResponseWriter, r *http.Request) {
		m.reached.Add(1)
		_, _ = io.WriteString(w, "ok")
	})
	m.srv = httptest.NewUnstartedServer(mux)
	m.srv.TLS = a.ServerTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12})
	m.srv.Config.ErrorLog = log.New(m.log, "", 0)
	m.srv.StartTLS()
	t.Cleanup(m.srv.Close)
	return m
}

// client returns an HTTP client trusting the server, presenting cert if given.
func (m *mtlsServer) client(cert *tls.Certificate) *http.Client {
	// srv.Client() is one shared client: copy it, and clone its transport
	// so connections (and their certificates) are not shared between cases.
	tr := m.srv.Client().Transport.(*http.Transport).Clone()
	if cert != nil {
		tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func (m *mtlsServer) login(t *testing.T, c *http.Client, role string) (int, map[string]any, error) {
	t.Helper()
	u := m.srv.URL + "/v1/auth/cert/login"
	if role != "" {
		u += "?role=" + role
	}
	resp, err := c.Post(u, "application/json", nil)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return resp.StatusCode, body, nil
}

func (m *mtlsServer) waitLog(t *testing.T, want string) {
	t.Helper()
	m.waitLogAfter(t, 0, want)
}

// waitLogAfter waits for want in the server log past byte offset mark.
func (m *mtlsServer) waitLogAfter(t *testing.T, mark int, want string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !strings.Contains(m.log.String()[mark:], want) {
		if time.Now().After(deadline) {
			t.Fatalf("server log lacks %q:\n%s", want, m.log.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMTLSLogin(t *testing.T) {
	f := newFixture(t)
	m := newMTLSServer(t, f.auth)

	cert, _ := f.broker.svid(t, "spiffe://broker.test/workload/agent-1")
	c := m.client(&cert)
	code, body, err := m.login(t, c, "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("login: %d %v %v", code, body, err)
	}
	if body["ID"] != "spiffe://broker.test/workload/agent-1" || body["Role"] != "agents" || body["BrokerRole"] != "agent" {
		t.Fatalf("identity %v", body)
	}
	// The same client asking for a role its ID is not bound to.
	code, body, err = m.login(t, c, "ci")
	if err != nil || code != http.StatusUnauthorized || !strings.Contains(jsonString(body), "SPIFFE ID not bound to role") {
		t.Fatalf("wrong role: %d %v %v", code, body, err)
	}
	// A valid SVID of the trust domain that no role binds: handshake fine, login refused.
	unbound, _ := f.broker.svid(t, "spiffe://broker.test/db/primary")
	code, body, err = m.login(t, m.client(&unbound), "")
	if err != nil || code != http.StatusUnauthorized || !strings.Contains(jsonString(body), "SPIFFE ID not bound to role") {
		t.Fatalf("unbound: %d %v %v", code, body, err)
	}

	// No client certificate: the handshake succeeds, token routes work, cert login says why.
	plain := m.client(nil)
	resp, err := plain.Get(m.srv.URL + "/v1/sys/health")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("token client: %v %v", resp, err)
	}
	resp.Body.Close()
	code, body, err = m.login(t, plain, "")
	if err != nil || code != http.StatusUnauthorized || !strings.Contains(jsonString(body), "no client certificate") {
		t.Fatalf("no cert: %d %v %v", code, body, err)
	}
}

func TestMTLSRefusesUntrustedCertificates(t *testing.T) {
	f := newFixture(t)
	m := newMTLSServer(t, f.auth)
	other, _ := f.other.svid(t, "spiffe://other.test/workload/agent-1")
	rogue, _ := f.rogue.svid(t, "spiffe://broker.test/workload/agent-1")
	expired, _ := f.broker.svidValid(t, "spiffe://broker.test/workload/agent-1", time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	for _, c := range []struct {
		name   string
		cert   tls.Certificate
		reason string
	}{
		{"other trust domain", other, "trust domain not accepted"},
		{"same name, another CA", rogue, "certificate not issued by a trusted SPIFFE trust domain"},
		{"expired", expired, "certificate expired or not yet valid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := m.reached.Load()
			_, _, err := m.login(t, m.client(&c.cert), "")
			if err == nil {
				t.Fatal("untrusted client certificate accepted")
			}
			if m.reached.Load() != before {
				t.Fatal("request reached a handler")
			}
			m.waitLog(t, "spiffe: client certificate refused: "+c.reason)
		})
	}
}

func TestServerTLSConfigKeepsRequirement(t *testing.T) {
	f := newFixture(t)
	called := false
	base := &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, VerifyConnection: func(tls.ConnectionState) error {
		called = true
		return nil
	}}
	cfg := f.auth.ServerTLSConfig(base)
	if cfg.ClientAuth != tls.RequireAnyClientCert || cfg.ClientCAs != nil || cfg.MinVersion != tls.VersionTLS12 {
		t.Fatalf("config %+v", cfg)
	}
	if base.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatal("base modified")
	}
	if err := cfg.VerifyConnection(tls.ConnectionState{}); err != nil || !called {
		t.Fatalf("chained VerifyConnection: %v %v", err, called)
	}
	if got := f.auth.ServerTLSConfig(nil).ClientAuth; got != tls.RequestClientCert {
		t.Fatalf("nil base: %v", got)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestMTLSIntermediateAndRotation(t *testing.T) {
	f := newFixture(t)
	m := newMTLSServer(t, f.auth)
	inter := f.broker.intermediate(t)
	cert, _ := inter.svid(t, "spiffe://broker.test/workload/agent-7")
	cert.Certificate = append(cert.Certificate, inter.cert.Raw) // leaf, then intermediate
	c := m.client(&cert)
	c.Transport.(*http.Transport).TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	c.Transport.(*http.Transport).DisableKeepAlives = true // a new (resumed) TLS session per request
	if code, body, err := m.login(t, c, "agents"); err != nil || code != http.StatusOK {
		t.Fatalf("chain with intermediate: %d %v %v", code, body, err)
	}
	if code, _, err := m.login(t, c, "agents"); err != nil || code != http.StatusOK || !m.resumed.Load() {
		t.Fatalf("second login: %d %v, resumed %v", code, err, m.resumed.Load())
	}
	// Without its intermediate the leaf cannot be verified.
	bare, _ := inter.svid(t, "spiffe://broker.test/workload/agent-8")
	if _, _, err := m.login(t, m.client(&bare), ""); err == nil {
		t.Fatal("leaf without intermediate accepted")
	}
	// Rotate the trust bundle away from this CA: a resumed session must not log in.
	mark := len(m.log.String())
	f.set.Add(f.rogue.bundle())
	code, body, err := m.login(t, c, "agents")
	if err == nil && code == http.StatusOK {
		t.Fatalf("login on a resumed session after rotation: %v", body)
	}
	m.waitLogAfter(t, mark, "spiffe: client certificate refused: certificate not issued by a trusted SPIFFE trust domain")
}
