package e2e

// Issue #3: qbroker against a real SPIRE v1.13.3 server and agent (built
// as Go tools in their own tools module, tools/spire/go.mod): the test
// process gets its X.509-SVID and JWT-SVIDs from the agent's Workload API
// and logs in with them; the broker reads its trust bundles from the same
// agent. SVIDs from another trust domain and JWT-SVIDs for another
// audience are refused.
//
// `make test` builds SPIRE (scripts/spire/install.sh) and sets
// QBROKER_SPIRE_BIN to the directory holding spire-server and spire-agent;
// plain `go test ./...` does not build SPIRE and skips this test.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

const (
	spireTD       = "broker.test"
	spireNodeID   = "spiffe://broker.test/node/ci"
	spireAgentID  = "spiffe://broker.test/workload/agent-1"
	spireEntityID = "cert:broker.test:workload/agent-1"
	spireAudience = "qbroker"
	// The agent syncs its entries some seconds after it starts; SVIDs are
	// only served after that.
	spireSyncTimeout = 45 * time.Second
)

var reServerHTTPS = regexp.MustCompile(`(?m)^qbroker server listening on (https://\S+)$`)

// spireBin returns $QBROKER_SPIRE_BIN, skipping the test when it is unset.
// When it is set both binaries must be there: no skip then.
func spireBin(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("QBROKER_SPIRE_BIN")
	if dir == "" {
		t.Skip("QBROKER_SPIRE_BIN is unset: `make test` builds SPIRE v1.13.3 (scripts/spire/install.sh) and runs this test against it")
	}
	for _, b := range []string{"spire-server", "spire-agent"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Fatalf("QBROKER_SPIRE_BIN=%s: %v (run scripts/spire/install.sh)", dir, err)
		}
	}
	return dir
}

// startExternal runs a non-qbroker program. In t.Cleanup it gets SIGTERM,
// then SIGKILL after stopTimeout; its output is logged if the test failed.
func startExternal(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = baseEnv()
	cmd.Dir = t.TempDir()
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopTimeout
	p := &proc{t: t, name: name, cmd: cmd, stdout: newSyncBuf(), stderr: newSyncBuf(), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
		if t.Failed() {
			t.Logf("%s stdout:\n%s\n%s stderr:\n%s", name, p.stdout, name, p.stderr)
		}
	})
	return p
}

// runTool runs a short SPIRE CLI command and returns its combined output.
func runTool(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = baseEnv()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// shortTempDir is a temporary directory with a short path: unix socket
// paths must stay under 108 bytes, which t.TempDir's need not.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "qbs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// spireDeployment is a running SPIRE server and agent; the agent serves
// the Workload API on agentSock.
type spireDeployment struct {
	agentSock string // a path
}

// startSPIRE starts the server (join_token node attestation, sqlite,
// memory keys), registers this test process's uid as spireAgentID under
// the node, and starts the agent with a fresh join token.
func startSPIRE(t *testing.T, binDir string) spireDeployment {
	t.Helper()
	serverBin, agentBin := filepath.Join(binDir, "spire-server"), filepath.Join(binDir, "spire-agent")
	sock := shortTempDir(t)
	serverSock, agentSock := filepath.Join(sock, "s.sock"), filepath.Join(sock, "a.sock")
	dir := t.TempDir()
	port := freePort(t)

	serverConf := filepath.Join(dir, "server.conf")
	writeFile(t, serverConf, fmt.Sprintf(`server {
  bind_address = "127.0.0.1"
  bind_port = "%d"
  socket_path = %q
  trust_domain = %q
  data_dir = %q
  log_level = "INFO"
  ca_ttl = "24h"
  default_x509_svid_ttl = "1h"
  default_jwt_svid_ttl = "5m"
}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = %q
    }
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "memory" {
    plugin_data {}
  }
}
`, port, serverSock, spireTD, filepath.Join(dir, "server-data"), filepath.Join(dir, "datastore.sqlite3")))
	server := startExternal(t, "spire-server", serverBin, "run", "-config", serverConf)

	deadline := time.Now().Add(startTimeout)
	for {
		out, err := runTool(serverBin, "healthcheck", "-socketPath", serverSock)
		if err == nil {
			break
		}
		select {
		case <-server.done:
			t.Fatalf("spire-server exited (%v)\nstderr:\n%s", server.err, server.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("spire-server not healthy within %s: %v: %s", startTimeout, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}

	out, err := runTool(serverBin, "token", "generate", "-socketPath", serverSock, "-spiffeID", spireNodeID, "-ttl", "600")
	m := regexp.MustCompile(`Token: (\S+)`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("spire-server token generate: %v: %s", err, out)
	}
	token := m[1]
	if out, err := runTool(serverBin, "entry", "create", "-socketPath", serverSock, "-parentID", spireNodeID,
		"-spiffeID", spireAgentID, "-selector", "unix:uid:"+strconv.Itoa(os.Getuid())); err != nil {
		t.Fatalf("spire-server entry create: %v: %s", err, out)
	}

	agentConf := filepath.Join(dir, "agent.conf")
	writeFile(t, agentConf, fmt.Sprintf(`agent {
  server_address = "127.0.0.1"
  server_port = "%d"
  socket_path = %q
  trust_domain = %q
  data_dir = %q
  log_level = "INFO"
  insecure_bootstrap = true
}
plugins {
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "memory" {
    plugin_data {}
  }
  WorkloadAttestor "unix" {
    plugin_data {}
  }
}
`, port, agentSock, spireTD, filepath.Join(dir, "agent-data")))
	startExternal(t, "spire-agent", agentBin, "run", "-config", agentConf, "-joinToken", token)
	return spireDeployment{agentSock: agentSock}
}

// brokerTLS writes a self-signed certificate for 127.0.0.1 and its key,
// and returns the files and a pool trusting it.
func brokerTLS(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "qbroker e2e"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})))
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

// foreignSVID mints a CA for trustDomain and an X.509-SVID for id under it.
func foreignSVID(t *testing.T, trustDomain, id string) tls.Certificate {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tdURL, _ := url.Parse("spiffe://" + trustDomain)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: trustDomain + " CA"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, URIs: []*url.URL{tdURL}}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	idURL, _ := url.Parse(id)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, URIs: []*url.URL{idURL}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key}
}

// tlsPost posts body to u with an HTTPS client trusting pool and
// presenting certs; it returns the status and body or the transport error.
func tlsPost(pool *x509.CertPool, u, body string, certs ...tls.Certificate) (int, []byte, error) {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs, MinVersion: tls.VersionTLS12},
	}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

type spireLoginAnswer struct {
	Auth struct {
		ClientToken   string `json:"client_token"`
		EntityID      string `json:"entity_id"`
		LeaseDuration int    `json:"lease_duration"`
	} `json:"auth"`
}

// Issue #3: SPIFFE X.509 and JWT-SVID logins with SVIDs a real SPIRE
// server and agent issue; an SVID from another trust domain and a JWT-SVID
// for another audience are refused.
func TestSPIRELogins(t *testing.T) {
	binDir := spireBin(t)
	t.Parallel()
	spire := startSPIRE(t, binDir)
	addr := "unix://" + spire.agentSock

	// The test process's own SVID, as a workload gets it. X509Source waits
	// until the agent has synced the entry and issued the SVID.
	ctx, cancel := context.WithTimeout(context.Background(), spireSyncTimeout)
	defer cancel()
	src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(addr)))
	if err != nil {
		t.Fatalf("X.509-SVID from the SPIRE agent within %s: %v", spireSyncTimeout, err)
	}
	defer src.Close()
	svid, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	if svid.ID.String() != spireAgentID {
		t.Fatalf("agent issued %s, want %s", svid.ID, spireAgentID)
	}
	chain := make([][]byte, len(svid.Certificates))
	for i, c := range svid.Certificates {
		chain[i] = c.Raw
	}
	spireCert := tls.Certificate{Certificate: chain, PrivateKey: svid.PrivateKey}

	// The broker, over TLS, reading bundles from the same agent.
	cfgDir := t.TempDir()
	certFile, keyFile, pool := brokerTLS(t, cfgDir)
	cfgFile := filepath.Join(cfgDir, "qbroker.yaml")
	writeFile(t, cfgFile, fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: %s
tls:
  cert_file: %s
  key_file: %s
auth:
  spiffe:
    trust_domains: [%s]
    workload_api_socket: %s
    roles:
      - name: workloads
        id_patterns: ["spiffe://%s/workload/*"]
        audiences: [%s]
        broker_role: e2e
`, filepath.Join(t.TempDir(), "data"), certFile, keyFile, spireTD, spire.agentSock, spireTD, spireAudience))
	srv := startProc(t, "qbroker server", baseEnv(), "server", "--config", cfgFile)
	root := srv.waitLine(reRootToken)[1]
	broker := srv.waitLine(reServerHTTPS)[1]

	// The admin CLI trusts the broker's private CA through QBROKER_CACERT;
	// without it the https broker is refused.
	roleWrite := []string{"role", "write", "e2e", "--provider", "ionq", "--devices", "simulator", "--max-shots", "1000"}
	if _, stderr, err := tryCmd(t, adminEnv(broker, root), "", roleWrite...); err == nil || !strings.Contains(stderr, "certificate") {
		t.Errorf("admin CLI without QBROKER_CACERT against the https broker: %v, stderr %q; want a certificate error", err, stderr)
	}
	runCmd(t, append(adminEnv(broker, root), "QBROKER_CACERT="+certFile), "", roleWrite...)

	// X.509-SVID over mTLS.
	st, body, err := tlsPost(pool, broker+"/v1/auth/cert/login", "", spireCert)
	var ans spireLoginAnswer
	if err != nil || st != http.StatusOK || json.Unmarshal(body, &ans) != nil {
		t.Fatalf("cert login with the SPIRE X.509-SVID: %d %s %v", st, body, err)
	}
	if ans.Auth.EntityID != spireEntityID || ans.Auth.ClientToken == "" {
		t.Fatalf("cert login auth %+v, want entity %s and a token", ans.Auth, spireEntityID)
	}
	if left := time.Until(svid.Certificates[0].NotAfter); time.Duration(ans.Auth.LeaseDuration)*time.Second > left+time.Second {
		t.Errorf("token lease %ds outlives the SVID (%s left)", ans.Auth.LeaseDuration, left)
	}
	// The token it issued works.
	a := newAgentHTTP(t)
	a.hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	var self struct {
		Data struct {
			EntityID string `json:"entity_id"`
		} `json:"data"`
	}
	a.expect(http.StatusOK, &self, http.MethodGet, broker+"/v1/auth/token/lookup-self", nil, "X-Vault-Token: "+ans.Auth.ClientToken)
	if self.Data.EntityID != spireEntityID {
		t.Errorf("lookup-self entity %q, want %q", self.Data.EntityID, spireEntityID)
	}

	// Another trust domain: the handshake fails.
	if st, body, err := tlsPost(pool, broker+"/v1/auth/cert/login", "", foreignSVID(t, "other.test", "spiffe://other.test/workload/agent-1")); err == nil {
		t.Errorf("an SVID from other.test completed the TLS handshake: %d %s", st, body)
	}
	// Same ID, same trust domain name, but not SPIRE's CA: refused too.
	if st, body, err := tlsPost(pool, broker+"/v1/auth/cert/login", "", foreignSVID(t, spireTD, spireAgentID)); err == nil {
		t.Errorf("an SVID for %s from a CA SPIRE does not hold completed the handshake: %d %s", spireAgentID, st, body)
	}

	// JWT-SVIDs from the agent.
	jwtLogin := func(audience string) (int, []byte) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		defer cancel()
		js, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: audience}, workloadapi.WithAddr(addr))
		if err != nil {
			t.Fatalf("JWT-SVID for %s from the SPIRE agent: %v", audience, err)
		}
		if js.ID.String() != spireAgentID {
			t.Fatalf("JWT-SVID for %s, want %s", js.ID, spireAgentID)
		}
		req, _ := json.Marshal(map[string]string{"role": "workloads", "jwt": js.Marshal()})
		st, body, err := tlsPost(pool, broker+"/v1/auth/spiffe-jwt/login", string(req))
		if err != nil {
			t.Fatalf("spiffe-jwt login: %v", err)
		}
		return st, body
	}
	st, body = jwtLogin(spireAudience)
	ans = spireLoginAnswer{}
	if st != http.StatusOK || json.Unmarshal(body, &ans) != nil {
		t.Fatalf("JWT-SVID login: %d %s", st, body)
	}
	if ans.Auth.EntityID != "spiffe-jwt:broker.test:workload/agent-1" || ans.Auth.ClientToken == "" {
		t.Errorf("JWT-SVID login auth %+v", ans.Auth)
	}
	if ans.Auth.LeaseDuration > 5*60 {
		t.Errorf("JWT-SVID token lease %ds outlives the 5-minute JWT-SVID", ans.Auth.LeaseDuration)
	}
	st, body = jwtLogin("someone-else")
	if st != http.StatusBadRequest || !bytes.Contains(body, []byte("audience")) {
		t.Errorf("JWT-SVID for another audience: %d %s, want 400 naming the audience", st, body)
	}

	if took := srv.terminate(); took > stopTimeout {
		t.Errorf("server took %s to stop", took)
	}
}
