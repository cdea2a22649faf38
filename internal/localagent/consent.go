package localagent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrDenied is a request the person refused, or did not answer in time.
var ErrDenied = errors.New("consent denied")

// Answer is the person's decision.
type Answer int

// Answers.
const (
	Deny     Answer = iota
	Allow           // this request only
	AllowFor        // this and the same program's like requests for GrantTTL
)

// GrantTTL is how long "allow for 10 minutes for this program" lasts. It
// is kept in memory only.
const GrantTTL = 10 * time.Minute

// Request is what a consent prompt shows.
type Request struct {
	Program  Program
	Client   string // the client software the program serves, as it names itself (an MCP host), if it says
	What     string // e.g. "a job token", "AWS credentials"
	Role     string
	Provider string
	Device   string
	Kind     string // qpu or simulator, when known
	Shots    int
	CostUSD  float64 // list-price estimate; negative: unknown
	Export   bool    // the credential itself leaves the daemon
	Reasons  []string
}

// Summary is the multi-line text of a prompt.
func (r Request) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Program: %s\n", r.Program)
	if r.Client != "" {
		fmt.Fprintf(&b, "On behalf of (as it names itself): %q\n", r.Client)
	}
	fmt.Fprintf(&b, "Asks for: %s (role %s", r.What, r.Role)
	if r.Provider != "" {
		fmt.Fprintf(&b, ", %s", r.Provider)
	}
	if r.Device != "" {
		fmt.Fprintf(&b, "/%s", r.Device)
	}
	if r.Kind != "" {
		fmt.Fprintf(&b, ", %s", r.Kind)
	}
	if r.Shots > 0 {
		fmt.Fprintf(&b, ", %d shots", r.Shots)
	}
	b.WriteString(")\n")
	if r.CostUSD >= 0 {
		fmt.Fprintf(&b, "Estimated cost: $%.2f\n", r.CostUSD)
	} else {
		b.WriteString("Estimated cost: unknown\n")
	}
	if len(r.Reasons) > 0 {
		fmt.Fprintf(&b, "Consent needed because: %s\n", strings.Join(r.Reasons, "; "))
	}
	return b.String()
}

// Asker puts a request to the person. It returns when they answer or ctx
// ends (which is a Deny).
type Asker interface {
	Ask(ctx context.Context, r Request) (Answer, error)
}

// Rules select the requests that need the person's consent.
type Rules struct {
	Hardware         bool          // any QPU device
	CostAboveUSD     float64       // estimates above this; negative: off
	FirstDevice      bool          // the first use of a device in this session
	CredentialExport bool          // credentials that leave the daemon (exec sessions, credential_process)
	Timeout          time.Duration // no answer within it denies (default 60 s)
}

// DefaultRules ask for hardware, anything estimated above $1, a device's
// first use and every credential export, and deny after a minute.
func DefaultRules() Rules {
	return Rules{Hardware: true, CostAboveUSD: 1, FirstDevice: true, CredentialExport: true, Timeout: time.Minute}
}

// Consent applies Rules, remembers "allow for 10 minutes" grants in memory
// and asks through an Asker.
type Consent struct {
	rules Rules
	ask   Asker
	log   *slog.Logger
	now   func() time.Time

	mu     sync.Mutex
	seen   map[string]bool      // provider/device used before
	grants map[string]time.Time // grant key → expiry
}

// NewConsent builds the consent gate. A nil asker denies everything that
// needs consent.
func NewConsent(rules Rules, ask Asker, log *slog.Logger) *Consent {
	if rules.Timeout <= 0 {
		rules.Timeout = time.Minute
	}
	return &Consent{rules: rules, ask: ask, log: log, now: time.Now, seen: map[string]bool{}, grants: map[string]time.Time{}}
}

func (c *Consent) reasons(r Request) []string {
	var out []string
	if c.rules.Hardware && r.Device != "" {
		switch r.Kind {
		case "simulator":
		case "qpu":
			out = append(out, "hardware device")
		default:
			out = append(out, "a device the catalogue does not know")
		}
	}
	if c.rules.CostAboveUSD >= 0 && r.CostUSD > c.rules.CostAboveUSD {
		out = append(out, fmt.Sprintf("estimated cost above $%.2f", c.rules.CostAboveUSD))
	}
	if c.rules.FirstDevice && r.Device != "" {
		c.mu.Lock()
		first := !c.seen[r.Provider+"/"+r.Device]
		c.mu.Unlock()
		if first {
			out = append(out, "first use of this device")
		}
	}
	if c.rules.CredentialExport && r.Export {
		out = append(out, "credential export")
	}
	return out
}

func grantKey(r Request) string {
	if r.Program.Exe == "" {
		return "" // an unknown program cannot hold a grant
	}
	// The command line too: one executable (qbroker, python) runs many
	// programs, and a grant to `qbroker mcp` is not one to `qbroker exec`.
	return r.Program.Exe + "\x00" + strings.Join(r.Program.Cmdline, "\x01") + "\x00" + r.What + "\x00" + r.Role
}

// Check returns nil if r may go ahead: no rule selects it, a grant covers
// it, or the person allows it. Otherwise an error wrapping ErrDenied.
func (c *Consent) Check(ctx context.Context, r Request) error {
	r.Reasons = c.reasons(r)
	if len(r.Reasons) == 0 {
		c.markSeen(r)
		return nil
	}
	key := grantKey(r)
	c.mu.Lock()
	exp, ok := c.grants[key]
	if ok && !c.now().Before(exp) {
		delete(c.grants, key)
		ok = false
	}
	c.mu.Unlock()
	if ok && key != "" {
		c.log.Info("local agent: consent: covered by a 10-minute grant", "pid", r.Program.PID, "exe", r.Program.Exe, "what", r.What, "role", r.Role)
		c.markSeen(r)
		return nil
	}
	if c.ask == nil {
		return fmt.Errorf("%w: %s needs consent and no prompt is configured", ErrDenied, r.What)
	}
	actx, cancel := context.WithTimeout(ctx, c.rules.Timeout)
	defer cancel()
	a, err := c.ask.Ask(actx, r)
	if err != nil || a == Deny {
		why := "the person denied it"
		if actx.Err() != nil {
			why = fmt.Sprintf("no answer within %s", c.rules.Timeout)
		} else if err != nil {
			why = err.Error()
		}
		c.log.Warn("local agent: consent denied", "pid", r.Program.PID, "exe", r.Program.Exe, "what", r.What, "role", r.Role, "why", why)
		return fmt.Errorf("%w: %s", ErrDenied, why)
	}
	if a == AllowFor && key != "" {
		c.mu.Lock()
		c.grants[key] = c.now().Add(GrantTTL)
		c.mu.Unlock()
	}
	c.log.Info("local agent: consent given", "pid", r.Program.PID, "exe", r.Program.Exe, "what", r.What, "role", r.Role, "for_10m", a == AllowFor)
	c.markSeen(r)
	return nil
}

func (c *Consent) markSeen(r Request) {
	if r.Device == "" {
		return
	}
	c.mu.Lock()
	c.seen[r.Provider+"/"+r.Device] = true
	c.mu.Unlock()
}

// Terminal asks on a terminal: it prints the request and reads one line.
// One question at a time; a line typed before the question is discarded.
type Terminal struct {
	out   io.Writer
	lines chan string
	mu    sync.Mutex
}

// NewTerminal reads answers from in (the terminal) and writes prompts to
// out. Its reader runs until in ends.
func NewTerminal(in io.Reader, out io.Writer) *Terminal {
	t := &Terminal{out: out, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case t.lines <- sc.Text():
			default: // nobody is asking and the buffer is full: drop it
			}
		}
		close(t.lines)
	}()
	return t
}

// IsTerminal reports whether fd is a terminal.
func IsTerminal(fd uintptr) bool {
	_, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
	return err == nil
}

// CanPrompt reports whether fd is a terminal this process may read from:
// not its controlling terminal (no job control applies), or one where it
// is in the foreground. A daemon started with `&` must not prompt there:
// its first read would stop it (SIGTTIN).
func CanPrompt(fd uintptr) bool {
	if !IsTerminal(fd) {
		return false
	}
	pg, err := unix.IoctlGetInt(int(fd), unix.TIOCGPGRP)
	if err != nil {
		return true
	}
	return pg == unix.Getpgrp()
}

// Ask implements Asker.
func (t *Terminal) Ask(ctx context.Context, r Request) (Answer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for drained := false; !drained; {
		select {
		case <-t.lines:
		default:
			drained = true
		}
	}
	deadline := ""
	if d, ok := ctx.Deadline(); ok {
		deadline = fmt.Sprintf(" (no answer by %s denies)", d.Format(time.TimeOnly))
	}
	fmt.Fprintf(t.out, "\nqbroker: a program asks for credentials\n%s[y] allow once, [a] allow for 10 minutes for this program, [N] deny%s: ", r.Summary(), deadline)
	select {
	case <-ctx.Done():
		fmt.Fprintln(t.out, "\nqbroker: no answer: denied")
		return Deny, ctx.Err()
	case line, ok := <-t.lines:
		if !ok {
			return Deny, errors.New("the terminal closed")
		}
		switch strings.ToLower(strings.TrimSpace(line)) {
		case "y", "yes", "allow":
			fmt.Fprintln(t.out, "qbroker: allowed once")
			return Allow, nil
		case "a", "always", "allow for 10 minutes":
			fmt.Fprintln(t.out, "qbroker: allowed for 10 minutes for this program")
			return AllowFor, nil
		}
		fmt.Fprintln(t.out, "qbroker: denied")
		return Deny, nil
	}
}

var _ Asker = (*Terminal)(nil)
