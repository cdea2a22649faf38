package localagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
)

// Config configures a Daemon.
type Config struct {
	// Broker is the broker's API (no token: the daemon signs in itself).
	Broker *client.Client
	// Login signs the person (device flow) or the machine identity in and
	// returns the broker token. It runs at start and again whenever the
	// token has expired or the broker no longer accepts it.
	Login func(ctx context.Context, c *client.Client) (*api.Auth, error)
	// GatewayURL is where the passthrough forwards reads (default: the
	// gateway address the broker returns with job tokens).
	GatewayURL string
	// GatewayClient forwards passthrough calls (default: 5-minute
	// timeout); give it the same TLS roots as Broker's.
	GatewayClient *http.Client
	// SocketPath is the Unix socket (DefaultSocketPath).
	SocketPath string
	// SocketMode is the socket's mode: 0600. Tests widen it to show that
	// the SO_PEERCRED check, not the file mode, refuses other users.
	SocketMode os.FileMode
	// AWSAddr and PassthroughAddr are the loopback listeners of the AWS
	// container-credentials endpoint and the gateway passthrough
	// (default 127.0.0.1:0 each).
	AWSAddr, PassthroughAddr string
	// Consent gates requests (nil: DefaultRules with no prompt, which
	// denies everything the rules select).
	Consent *Consent
	// ApprovalWait is how long a job-token request the broker holds for
	// an approver is waited for before the client gets the refusal
	// (0: not waited for; the client gets 409 with the approval's id).
	ApprovalWait time.Duration
	Logger       *slog.Logger
}

// Info is what a running daemon tells its owner (GET /v1/status).
type Info struct {
	Socket      string    `json:"socket"`
	AWSEndpoint string    `json:"aws_endpoint"` // base of the container-credentials URIs
	Passthrough string    `json:"passthrough"`  // base URL of the gateway passthrough
	Entity      string    `json:"entity_id,omitempty"`
	ExpiresAt   time.Time `json:"token_expires_at,omitzero"`
	SignedIn    bool      `json:"signed_in"`
	Hardened    bool      `json:"core_dumps_off"`
	Sessions    int       `json:"sessions"`
}

// Daemon is the local broker.
type Daemon struct {
	cfg     Config
	log     *slog.Logger
	consent *Consent
	uid     uint32

	sock, awsLn, ptLn net.Listener
	servers           []*http.Server
	runCtx            context.Context

	// The broker token, in locked memory. loginMu is held across a
	// sign-in (which may wait minutes for a person) so that concurrent
	// requests wait for one sign-in; tokMu only guards the fields, so
	// status answers meanwhile.
	loginMu  sync.Mutex
	tokMu    sync.Mutex
	tok      *Secret
	entity   string
	expires  time.Time
	loggedIn chan struct{} // closed after each successful login (renewal loop wake-up)

	devMu   sync.Mutex
	devices map[string]api.DeviceInfo
	devAt   time.Time
	gwMu    sync.Mutex
	gwURL   string

	sessions *sessions
	forward  *http.Client
	held     consented // consent given to requests the broker then held
}

// New opens the daemon's listeners. Run serves them.
func New(cfg Config) (*Daemon, error) {
	if cfg.Broker == nil || cfg.Login == nil {
		return nil, errors.New("local agent: a broker client and a login method are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SocketMode == 0 {
		cfg.SocketMode = 0o600
	}
	if cfg.AWSAddr == "" {
		cfg.AWSAddr = "127.0.0.1:0"
	}
	if cfg.PassthroughAddr == "" {
		cfg.PassthroughAddr = "127.0.0.1:0"
	}
	if cfg.SocketPath == "" {
		cfg.SocketPath = DefaultSocketPath(os.Getenv)
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger, consent: cfg.Consent, uid: uint32(os.Getuid()), gwURL: cfg.GatewayURL,
		devices: map[string]api.DeviceInfo{}, sessions: newSessions(), loggedIn: make(chan struct{}), forward: cfg.GatewayClient}
	if d.forward == nil {
		d.forward = &http.Client{Timeout: 5 * time.Minute}
	}
	if d.consent == nil {
		d.consent = NewConsent(DefaultRules(), nil, cfg.Logger)
	}
	var err error
	if d.sock, err = ListenSocket(cfg.SocketPath, cfg.SocketMode); err != nil {
		return nil, err
	}
	if d.awsLn, err = listenLoopback(cfg.AWSAddr); err != nil {
		d.closeListeners()
		return nil, fmt.Errorf("AWS container endpoint: %w", err)
	}
	if d.ptLn, err = listenLoopback(cfg.PassthroughAddr); err != nil {
		d.closeListeners()
		return nil, fmt.Errorf("passthrough: %w", err)
	}
	return d, nil
}

func (d *Daemon) closeListeners() {
	for _, l := range []net.Listener{d.sock, d.awsLn, d.ptLn} {
		if l != nil {
			l.Close()
		}
	}
}

// Info describes the daemon now.
func (d *Daemon) Info() Info {
	d.tokMu.Lock()
	signedIn := d.tok != nil && time.Now().Before(d.expires)
	in := Info{Socket: d.cfg.SocketPath, AWSEndpoint: "http://" + d.awsLn.Addr().String(),
		Passthrough: "http://" + d.ptLn.Addr().String(), Entity: d.entity, ExpiresAt: d.expires, SignedIn: signedIn}
	d.tokMu.Unlock()
	in.Hardened, _ = Hardened()
	in.Sessions = d.sessions.count()
	return in
}

// Run signs in and serves until ctx ends; then it revokes the broker
// token and every exec session and zeroes their secrets.
func (d *Daemon) Run(ctx context.Context) error {
	d.runCtx = ctx
	defer d.closeListeners()
	d.loginMu.Lock()
	err := d.signIn(ctx)
	d.loginMu.Unlock()
	if err != nil {
		return fmt.Errorf("local agent: sign-in: %w", err)
	}
	d.servers = []*http.Server{
		{Handler: d.socketHandler(), ConnContext: withPeer, ReadHeaderTimeout: 10 * time.Second},
		{Handler: http.HandlerFunc(d.serveAWS), ReadHeaderTimeout: 10 * time.Second},
		{Handler: http.HandlerFunc(d.servePassthrough), ReadHeaderTimeout: 10 * time.Second},
	}
	errc := make(chan error, 3)
	for i, ln := range []net.Listener{&peerListener{Listener: d.sock, uid: d.uid, log: d.log}, d.awsLn, d.ptLn} {
		go func() {
			if err := d.servers[i].Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	go d.keepToken(ctx)
	d.log.Info("local agent: serving", "socket", d.cfg.SocketPath, "aws_endpoint", d.awsLn.Addr().String(), "passthrough", d.ptLn.Addr().String())
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, s := range d.servers {
		_ = s.Shutdown(sctx)
	}
	d.sessions.closeAll()
	d.signOut(sctx)
	os.Remove(d.cfg.SocketPath)
	return err
}

// signIn runs the login method and keeps the token in locked memory. The
// caller holds loginMu.
func (d *Daemon) signIn(ctx context.Context) error {
	auth, err := d.cfg.Login(ctx, d.cfg.Broker)
	if err != nil {
		return err
	}
	if auth == nil || auth.ClientToken == "" {
		return errors.New("the login returned no token")
	}
	d.tokMu.Lock()
	defer d.tokMu.Unlock()
	d.tok.Destroy()
	d.tok = NewSecret(auth.ClientToken)
	d.entity = auth.EntityID
	d.expires = time.Now().Add(time.Duration(auth.LeaseDuration) * time.Second)
	close(d.loggedIn)
	d.loggedIn = make(chan struct{})
	d.log.Info("local agent: signed in", "entity_id", auth.EntityID, "ttl_s", auth.LeaseDuration, "locked_memory", d.tok.Locked())
	return nil
}

// signOut revokes the token at the broker (best effort) and zeroes it.
func (d *Daemon) signOut(ctx context.Context) {
	d.tokMu.Lock()
	defer d.tokMu.Unlock()
	if d.tok == nil {
		return
	}
	if err := d.cfg.Broker.WithToken(d.tok.Reveal()).RevokeSelf(ctx); err != nil {
		d.log.Warn("local agent: could not revoke the broker token at exit (it expires by itself)", "err", err)
	}
	d.tok.Destroy()
	d.tok = nil
}

// current returns the token if it is still valid.
func (d *Daemon) current() (string, bool) {
	d.tokMu.Lock()
	defer d.tokMu.Unlock()
	if d.tok == nil || !time.Now().Before(d.expires) {
		return "", false
	}
	return d.tok.Reveal(), true
}

// token returns the broker token, signing in again if it has expired.
func (d *Daemon) token() (string, error) {
	if tok, ok := d.current(); ok {
		return tok, nil
	}
	d.loginMu.Lock()
	defer d.loginMu.Unlock()
	if tok, ok := d.current(); ok { // another request signed in meanwhile
		return tok, nil
	}
	// The sign-in belongs to the daemon, not to the request that found
	// the token missing: a client killed mid-request must not abort it.
	if err := d.signIn(d.runCtx); err != nil {
		return "", fmt.Errorf("sign-in: %w", err)
	}
	tok, _ := d.current()
	return tok, nil
}

// invalidate drops tok if it is still the current token.
func (d *Daemon) invalidate(tok string) {
	d.tokMu.Lock()
	defer d.tokMu.Unlock()
	if d.tok != nil && d.tok.Reveal() == tok {
		d.tok.Destroy()
		d.tok = nil
	}
}

// ErrBrokerUnavailable wraps failures to reach the broker.
var ErrBrokerUnavailable = errors.New("the broker is unreachable")

// call runs fn with an authenticated client. If the broker refuses the
// token (revoked, or a broker that lost it), the daemon signs in again
// once and retries.
func (d *Daemon) call(ctx context.Context, fn func(c *client.Client) error) error {
	for attempt := 0; ; attempt++ {
		tok, err := d.token()
		if err != nil {
			var ce *client.Error
			if !errors.As(err, &ce) {
				return fmt.Errorf("%w: %w", ErrBrokerUnavailable, err)
			}
			return err
		}
		err = fn(d.cfg.Broker.WithToken(tok))
		var ce *client.Error
		if errors.As(err, &ce) {
			if attempt == 0 && ce.Status == http.StatusForbidden && d.tokenDead(ctx, tok) {
				d.log.Warn("local agent: the broker no longer accepts the token; signing in again")
				d.invalidate(tok)
				continue
			}
			return err
		}
		var pe *client.PendingError
		if err != nil && !errors.As(err, &pe) && ctx.Err() == nil {
			return fmt.Errorf("%w: %w", ErrBrokerUnavailable, err)
		}
		return err
	}
}

func (d *Daemon) tokenDead(ctx context.Context, tok string) bool {
	_, err := d.cfg.Broker.WithToken(tok).LookupSelf(ctx)
	var ce *client.Error
	return errors.As(err, &ce) && ce.Status == http.StatusForbidden
}

// keepToken renews the token at two thirds of its life and zeroes it when
// it expires (the next request signs in again).
func (d *Daemon) keepToken(ctx context.Context) {
	for {
		d.tokMu.Lock()
		tok, exp, woke := d.tok, d.expires, d.loggedIn
		d.tokMu.Unlock()
		if tok == nil {
			select {
			case <-ctx.Done():
				return
			case <-woke:
				continue
			}
		}
		left := time.Until(exp)
		wait := left * 2 / 3
		if left < 3*time.Second {
			wait = left
		}
		select {
		case <-ctx.Done():
			return
		case <-woke:
			continue
		case <-time.After(max(wait, 0)):
		}
		if !time.Now().Before(exp) {
			d.tokMu.Lock()
			if d.tok == tok {
				d.tok.Destroy()
				d.tok = nil
				d.log.Info("local agent: the broker token expired and was zeroed; the next request signs in again")
			}
			d.tokMu.Unlock()
			continue
		}
		auth, err := d.cfg.Broker.WithToken(tok.Reveal()).RenewSelf(ctx, 0)
		d.tokMu.Lock()
		if err == nil && d.tok == tok && auth.LeaseDuration > 0 {
			if ne := time.Now().Add(time.Duration(auth.LeaseDuration) * time.Second); ne.After(d.expires) {
				d.expires = ne
			}
		}
		d.tokMu.Unlock()
		if err != nil {
			d.log.Warn("local agent: token renewal failed", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(time.Until(exp)/3+time.Second, time.Minute)):
			}
		}
	}
}
