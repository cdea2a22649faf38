package audit

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

// Syslog facilities accepted by SyslogOptions.Facility (RFC 5424 §6.2.1).
const (
	FacilityAuth     = "auth"     // 4, security/authorization messages
	FacilityAuthPriv = "authpriv" // 10, security/authorization messages (private)
)

// Syslog severities used for audit lines (RFC 5424 §6.2.1). The mapping:
//
//	decision "error"                         → err (3)
//	decision "deny", or type "anomaly"       → warning (4)
//	everything else (allow, checkpoints, …)  → info (6)
const (
	SeverityErr     = 3
	SeverityWarning = 4
	SeverityInfo    = 6
)

// SyslogOptions configure NewSyslogExporter.
type SyslogOptions struct {
	// Address is the collector's host:port (TCP).
	Address string
	// TLS, when set, wraps the connection (RFC 5425). The server name
	// defaults to Address's host; MinVersion to TLS 1.2.
	TLS *tls.Config
	// Facility is "auth" or "authpriv"; empty means "authpriv".
	Facility string
	// Hostname is the HOSTNAME field; empty means os.Hostname().
	Hostname string
	// AppName is the APP-NAME field; empty means "qbroker".
	AppName string
	// DialTimeout and WriteTimeout bound connecting and sending one batch
	// (ctx may end them sooner). Zero means 5 s and 10 s.
	DialTimeout, WriteTimeout time.Duration
}

// SyslogExporter sends each line as an RFC 5424 message over TCP (or TLS)
// with octet-counting framing (RFC 6587 §3.4.1):
//
//	LEN SP <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG
//
// PRI is facility×8+severity (see SeverityErr for the mapping), TIMESTAMP is
// the event's time (UTC, microseconds), MSGID the event type, and MSG the
// line itself, unchanged (MSG-ANY, no BOM). A failed connection is dropped
// and redialled on the next Export. Syslog over TCP has no acknowledgement:
// a batch counts as delivered once written to the socket.
type SyslogExporter struct {
	opts     SyslogOptions
	facility int
	header   string // " HOSTNAME APP-NAME PROCID "

	mu   sync.Mutex
	conn net.Conn
	raw  net.Conn // the TCP connection under conn
}

// NewSyslogExporter checks opts; it connects on the first Export.
func NewSyslogExporter(opts SyslogOptions) (*SyslogExporter, error) {
	if _, _, err := net.SplitHostPort(opts.Address); err != nil {
		return nil, fmt.Errorf("audit: syslog address: %w", err)
	}
	e := &SyslogExporter{opts: opts}
	switch opts.Facility {
	case FacilityAuth:
		e.facility = 4
	case FacilityAuthPriv, "":
		e.facility = 10
	default:
		return nil, fmt.Errorf("audit: syslog facility %q: want %q or %q", opts.Facility, FacilityAuth, FacilityAuthPriv)
	}
	if e.opts.DialTimeout <= 0 {
		e.opts.DialTimeout = 5 * time.Second
	}
	if e.opts.WriteTimeout <= 0 {
		e.opts.WriteTimeout = 10 * time.Second
	}
	if opts.TLS != nil {
		c := opts.TLS.Clone()
		if c.MinVersion < tls.VersionTLS12 {
			c.MinVersion = tls.VersionTLS12
		}
		e.opts.TLS = c
	}
	host := opts.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	app := opts.AppName
	if app == "" {
		app = "qbroker"
	}
	e.header = " " + headerField(host, 255) + " " + headerField(app, 48) + " " + strconv.Itoa(os.Getpid()) + " "
	return e, nil
}

// headerField makes s a valid RFC 5424 header field: printable US-ASCII
// without spaces, at most n characters, "-" when empty.
func headerField(s string, n int) string {
	b := make([]byte, 0, min(len(s), n))
	for i := 0; i < len(s) && len(b) < n; i++ {
		if c := s[i]; c > 32 && c < 127 {
			b = append(b, c)
		}
	}
	if len(b) == 0 {
		return "-"
	}
	return string(b)
}

// Export writes one frame per line. On any error the connection is closed,
// so the next Export reconnects.
func (e *SyslogExporter) Export(ctx context.Context, lines [][]byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn != nil && !e.alive() {
		e.closeConn()
	}
	if e.conn == nil {
		if err := e.dial(ctx); err != nil {
			return err
		}
	}
	var buf []byte
	for _, l := range lines {
		buf = e.appendFrame(buf, l)
	}
	deadline := time.Now().Add(e.opts.WriteTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = e.conn.SetWriteDeadline(deadline)
	raw := e.raw
	stop := context.AfterFunc(ctx, func() { _ = raw.SetWriteDeadline(time.Unix(1, 0)) })
	_, err := e.conn.Write(buf)
	stop()
	if err != nil {
		e.closeConn()
		return fmt.Errorf("audit: syslog %s: write: %w", e.opts.Address, err)
	}
	return nil
}

// alive reports whether the peer has not closed the connection: a syslog
// collector never sends, so a read that does not time out at once means EOF
// or an error. Without this check the first write after the collector went
// away would "succeed" into a dead socket.
func (e *SyslogExporter) alive() bool {
	// A deadline already past fails without looking at the socket, so
	// give the read a moment to see a pending EOF.
	_ = e.raw.SetReadDeadline(time.Now().Add(time.Millisecond))
	var b [1]byte
	_, err := e.raw.Read(b[:])
	_ = e.raw.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (e *SyslogExporter) dial(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, e.opts.DialTimeout)
	defer cancel()
	d := &net.Dialer{KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", e.opts.Address)
	if err != nil {
		return fmt.Errorf("audit: syslog %s: dial: %w", e.opts.Address, err)
	}
	conn := raw
	if e.opts.TLS != nil {
		c := e.opts.TLS
		if c.ServerName == "" {
			c = c.Clone()
			c.ServerName, _, _ = net.SplitHostPort(e.opts.Address)
		}
		tc := tls.Client(raw, c)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return fmt.Errorf("audit: syslog %s: TLS handshake: %w", e.opts.Address, err)
		}
		conn = tc
	}
	e.conn, e.raw = conn, raw
	return nil
}

func (e *SyslogExporter) closeConn() {
	if e.conn != nil {
		_ = e.conn.Close()
	}
	e.conn, e.raw = nil, nil
}

// Close closes the connection.
func (e *SyslogExporter) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closeConn()
	return nil
}

// lineMeta is what the exporters read from a line.
type lineMeta struct {
	Time     time.Time `json:"time"`
	Type     string    `json:"type"`
	Decision string    `json:"decision"`
}

func parseMeta(line []byte) lineMeta {
	var m lineMeta
	_ = json.Unmarshal(line, &m) // a foreign line keeps zero values
	if m.Time.IsZero() {
		m.Time = time.Now()
	}
	return m
}

// syslogSeverity maps an event to a severity; see SeverityErr.
func syslogSeverity(m lineMeta) int {
	switch {
	case m.Decision == DecisionError:
		return SeverityErr
	case m.Decision == DecisionDeny || m.Type == "anomaly":
		return SeverityWarning
	default:
		return SeverityInfo
	}
}

// appendFrame appends "LEN SP MSG" for one line.
func (e *SyslogExporter) appendFrame(dst, line []byte) []byte {
	m := parseMeta(line)
	msg := make([]byte, 0, len(line)+96)
	msg = append(msg, '<')
	msg = strconv.AppendInt(msg, int64(e.facility*8+syslogSeverity(m)), 10)
	msg = append(msg, ">1 "...)
	msg = m.Time.UTC().AppendFormat(msg, "2006-01-02T15:04:05.000000Z07:00")
	msg = append(msg, e.header...)
	msg = append(msg, headerField(m.Type, 32)...)
	msg = append(msg, " - "...)
	msg = append(msg, line...)
	dst = strconv.AppendInt(dst, int64(len(msg)), 10)
	dst = append(dst, ' ')
	return append(dst, msg...)
}

var _ Exporter = (*SyslogExporter)(nil)
