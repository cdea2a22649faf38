package audit

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testLine builds a chained-looking audit line.
func testLine(seq int, typ, decision string) []byte {
	d := ""
	if decision != "" {
		d = `,"decision":"` + decision + `"`
	}
	return fmt.Appendf(nil, `{"seq":%d,"prev":"%064d","time":"2026-03-04T05:06:07.891234567Z","type":"%s","agent":"ci-bot"%s,"v":2}`,
		seq, seq-1, typ, d)
}

type syslogMsg struct {
	pri                                      int
	version, ts, host, app, procid, msgid, m string
}

// syslogServer is an in-process RFC 5424 collector with octet-counting
// framing (RFC 6587 §3.4.1).
type syslogServer struct {
	ln   net.Listener
	msgs chan syslogMsg
	errs chan error
	mu   sync.Mutex
	conn []net.Conn
}

func startSyslog(t *testing.T, tlsConf *tls.Config) *syslogServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	s := &syslogServer{ln: ln, msgs: make(chan syslogMsg, 1000), errs: make(chan error, 10)}
	t.Cleanup(func() { _ = ln.Close(); s.dropConns() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conn = append(s.conn, c)
			s.mu.Unlock()
			go s.serve(c)
		}
	}()
	return s
}

func (s *syslogServer) dropConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conn {
		_ = c.Close()
	}
	s.conn = nil
}

var rfc5424 = regexp.MustCompile(`^<(\d{1,3})>(\d) (\S+) (\S+) (\S+) (\S+) (\S+) - (.*)$`)

func (s *syslogServer) serve(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		lenStr, err := r.ReadString(' ')
		if err != nil {
			if err != io.EOF && !strings.Contains(err.Error(), "closed") {
				s.errs <- err
			}
			return
		}
		n, err := strconv.Atoi(strings.TrimSuffix(lenStr, " "))
		if err != nil || n <= 0 {
			s.errs <- fmt.Errorf("bad octet count %q", lenStr)
			return
		}
		frame := make([]byte, n)
		if _, err := io.ReadFull(r, frame); err != nil {
			s.errs <- fmt.Errorf("short frame: %w", err)
			return
		}
		m := rfc5424.FindSubmatch(frame)
		if m == nil {
			s.errs <- fmt.Errorf("not RFC 5424: %q", frame)
			return
		}
		pri, _ := strconv.Atoi(string(m[1]))
		s.msgs <- syslogMsg{pri, string(m[2]), string(m[3]), string(m[4]), string(m[5]), string(m[6]), string(m[7]), string(m[8])}
	}
}

func (s *syslogServer) next(t *testing.T) syslogMsg {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case err := <-s.errs:
		t.Fatalf("syslog server: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no syslog message")
	}
	return syslogMsg{}
}

func TestSyslogFramesAndHeader(t *testing.T) {
	srv := startSyslog(t, nil)
	e, err := NewSyslogExporter(SyslogOptions{Address: srv.ln.Addr().String(), Facility: FacilityAuth, Hostname: "broker 1", AppName: "qbroker"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	lines := [][]byte{testLine(1, "issue", "allow"), testLine(2, "issue", "deny"), testLine(3, "submit", "error"),
		testLine(4, "anomaly", ""), testLine(5, "checkpoint", "")}
	if err := e.Export(context.Background(), lines); err != nil {
		t.Fatal(err)
	}
	wantSev := []int{SeverityInfo, SeverityWarning, SeverityErr, SeverityWarning, SeverityInfo}
	for i, l := range lines {
		m := srv.next(t)
		if m.pri != 4*8+wantSev[i] {
			t.Errorf("line %d: PRI %d, want %d", i+1, m.pri, 4*8+wantSev[i])
		}
		if m.version != "1" || m.ts != "2026-03-04T05:06:07.891234Z" || m.host != "broker1" || m.app != "qbroker" {
			t.Errorf("line %d: header %+v", i+1, m)
		}
		if _, err := strconv.Atoi(m.procid); err != nil {
			t.Errorf("procid %q", m.procid)
		}
		if want := []string{"issue", "issue", "submit", "anomaly", "checkpoint"}[i]; m.msgid != want {
			t.Errorf("msgid %q, want %q", m.msgid, want)
		}
		if m.m != string(l) {
			t.Errorf("MSG is not the exact line:\n got %s\nwant %s", m.m, l)
		}
	}
}

func TestSyslogFacilityDefaultAndInvalid(t *testing.T) {
	if _, err := NewSyslogExporter(SyslogOptions{Address: "127.0.0.1:1", Facility: "kern"}); err == nil {
		t.Error("facility kern accepted")
	}
	if _, err := NewSyslogExporter(SyslogOptions{Address: "nohostport"}); err == nil {
		t.Error("address without port accepted")
	}
	srv := startSyslog(t, nil)
	e, _ := NewSyslogExporter(SyslogOptions{Address: srv.ln.Addr().String()})
	t.Cleanup(func() { _ = e.Close() })
	if err := e.Export(context.Background(), [][]byte{testLine(1, "login", "allow")}); err != nil {
		t.Fatal(err)
	}
	if m := srv.next(t); m.pri != 10*8+SeverityInfo {
		t.Errorf("default facility: PRI %d, want authpriv.info %d", m.pri, 10*8+6)
	}
}

func TestSyslogReconnects(t *testing.T) {
	srv := startSyslog(t, nil)
	e, _ := NewSyslogExporter(SyslogOptions{Address: srv.ln.Addr().String()})
	t.Cleanup(func() { _ = e.Close() })
	ctx := context.Background()
	if err := e.Export(ctx, [][]byte{testLine(1, "issue", "")}); err != nil {
		t.Fatal(err)
	}
	srv.next(t)
	srv.dropConns() // the collector restarts
	time.Sleep(50 * time.Millisecond)
	if err := e.Export(ctx, [][]byte{testLine(2, "issue", "")}); err != nil {
		t.Fatal(err)
	}
	if m := srv.next(t); !strings.Contains(m.m, `"seq":2,`) {
		t.Errorf("after reconnect got %s", m.m)
	}

	// Collector gone entirely: Export fails rather than pretending.
	_ = srv.ln.Close()
	srv.dropConns()
	time.Sleep(50 * time.Millisecond)
	if err := e.Export(ctx, [][]byte{testLine(3, "issue", "")}); err == nil {
		t.Error("Export to a dead collector succeeded")
	}
}

// testCA mints a CA and a server certificate for 127.0.0.1.
func testCA(t *testing.T) (serverConf *tls.Config, roots *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "syslog"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(ca)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, roots
}

func TestSyslogTLS(t *testing.T) {
	serverConf, roots := testCA(t)
	srv := startSyslog(t, serverConf)
	e, err := NewSyslogExporter(SyslogOptions{Address: srv.ln.Addr().String(), TLS: &tls.Config{RootCAs: roots}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	line := testLine(7, "redeem", "deny")
	if err := e.Export(context.Background(), [][]byte{line}); err != nil {
		t.Fatal(err)
	}
	if m := srv.next(t); m.m != string(line) || m.pri != 10*8+SeverityWarning {
		t.Errorf("got %+v", m)
	}
}

func TestSyslogTLSRefusesUnknownServer(t *testing.T) {
	serverConf, _ := testCA(t)
	_, otherRoots := testCA(t)
	srv := startSyslog(t, serverConf)
	e, _ := NewSyslogExporter(SyslogOptions{Address: srv.ln.Addr().String(), TLS: &tls.Config{RootCAs: otherRoots}})
	t.Cleanup(func() { _ = e.Close() })
	err := e.Export(context.Background(), [][]byte{testLine(1, "issue", "")})
	if err == nil || !strings.Contains(err.Error(), "TLS handshake") {
		t.Fatalf("export to a server signed by an unknown CA: %v", err)
	}
	select {
	case m := <-srv.msgs:
		t.Fatalf("server received %+v over an unverified connection", m)
	case <-time.After(50 * time.Millisecond):
	}
}
