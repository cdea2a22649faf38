package server

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/config"
)

// A configured syslog sink receives the broker's audit lines (RFC 5424,
// octet-counted frames) without the secrets.
func TestSyslogSinkReceivesTheTrail(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	frames := make(chan string, 100)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadString('}')
			if err != nil {
				return
			}
			frames <- line
		}
	}()
	d, err := StartDev(context.Background(), DevOptions{
		Addr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0", SimAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		Audit: config.Audit{Sinks: []config.AuditSink{{Type: "syslog", Name: "siem", Address: ln.Addr().String()}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 10 * time.Second}}
	e.mustLogin(d.RoleID, d.SecretID)
	var seen strings.Builder
	deadline := time.After(10 * time.Second)
	for !strings.Contains(seen.String(), `"type":"login"`) {
		select {
		case f := <-frames:
			seen.WriteString(f)
		case <-deadline:
			t.Fatalf("no login event at the syslog sink; got %q", seen.String())
		}
	}
	if !strings.Contains(seen.String(), " qbroker ") || strings.Contains(seen.String(), d.SecretID) {
		t.Fatalf("syslog frames %q", seen.String())
	}
}
