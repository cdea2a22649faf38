// Package notify delivers broker events — approval requests and decisions,
// anomaly findings, budget alerts — to one webhook, off the request path.
//
// Each event is POSTed as JSON that Slack's incoming webhooks accept as-is
// ("text" and a mrkdwn "blocks" section; Slack ignores the extra
// "qbroker" object, which carries the id, type, time and structured data
// for other receivers). Every attempt is signed with HMAC-SHA256 over a
// fresh timestamp and the body (see Sign and Verify), so a receiver can
// reject forged and replayed requests and dedupe retries by delivery id.
//
// Delivery is best effort and never in the caller's way: Notify only
// enqueues (or drops, when the queue is full) and one worker delivers the
// queue strictly in order, retrying transient failures with exponential
// backoff and jitter. A dead or hanging receiver delays later events but
// never a caller. Logs and errors name the receiver by scheme and host
// only: the secret, bodies, and the URL's path and query (a Slack webhook
// URL's path is itself a credential) never appear in them.
package notify

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Event is one notification.
type Event struct {
	// ID is the unique delivery id, sent in X-Qbroker-Delivery and kept
	// across retries. Notify fills a random one when empty. Letters,
	// digits and ._:- only, at most 128.
	ID string
	// Type names the event, e.g. "approval.requested",
	// "approval.approved", "approval.denied", "approval.expired",
	// "anomaly.finding", "budget.threshold". Same alphabet as ID.
	Type string
	// At is when it happened; Notify fills Config.Now() when zero.
	At time.Time
	// Text is one human line in Slack mrkdwn. Values that a requester
	// controls (agent names, reasons) should go through Escape so they
	// cannot forge links or mentions.
	Text string
	// Data is the structured payload, sent as "qbroker.data". It is
	// encoded when Notify is called, so later changes do not leak in.
	Data any
}

// Config configures a Notifier. Zero values take the documented defaults.
type Config struct {
	// URL is the webhook: http or https, with a host and no userinfo.
	URL string
	// Secret is the HMAC key, at least 16 bytes. Required.
	Secret []byte
	// QueueSize bounds the events waiting for delivery (default 1024).
	QueueSize int
	// MaxAttempts bounds the attempts per event (default 8).
	MaxAttempts int
	// InitialBackoff and MaxBackoff bound the exponential, jittered wait
	// between attempts (defaults 500ms and 30s). MaxBackoff also caps
	// what a Retry-After header can ask for.
	InitialBackoff, MaxBackoff time.Duration
	// Timeout bounds each attempt, response included (default 5s).
	Timeout time.Duration
	// Client sends the requests (default: a client with its own copy of
	// http.DefaultTransport). It is copied, and the copy never follows
	// redirects.
	Client *http.Client
	// Logger receives delivery warnings (default: discarded).
	Logger *slog.Logger
	// Now is the clock for signature timestamps and default event times
	// (default time.Now).
	Now func() time.Time
}

// Defaults for the zero values of Config.
const (
	DefaultQueueSize      = 1024
	DefaultMaxAttempts    = 8
	DefaultInitialBackoff = 500 * time.Millisecond
	DefaultMaxBackoff     = 30 * time.Second
	DefaultTimeout        = 5 * time.Second
	// MinSecretLen is the shortest accepted HMAC key.
	MinSecretLen = 16
)

// ErrInvalidConfig is wrapped by every error New returns.
var ErrInvalidConfig = errors.New("notify: invalid config")

// Stats are a Notifier's counters since New.
type Stats struct {
	Sent    uint64 // delivered (2xx)
	Failed  uint64 // given up: out of attempts, refused, unencodable, or abandoned at Close
	Dropped uint64 // not accepted: queue full or notifier closed
	Retries uint64 // attempts after the first
	Queued  int    // accepted and not yet delivered or given up (the one in flight included)
}

// Notifier delivers events to one webhook. Its methods are safe for
// concurrent use.
type Notifier struct {
	cfg      Config
	url      string // the full URL: never logged, only its scheme and host
	client   *http.Client
	ownConns bool // the client's transport is ours to close
	log      *slog.Logger

	mu     sync.RWMutex // guards closed and the closing of queue
	closed bool
	queue  chan delivery

	ctx    context.Context // cancelled when Close gives up waiting
	cancel context.CancelFunc
	done   chan struct{} // closed when the worker exits

	sent, failed, dropped, retries atomic.Uint64
	pending                        atomic.Int64

	lastDropLog   atomic.Int64  // unix nanoseconds of the last drop warning
	dropsUnlogged atomic.Uint64 // drops since then without a line of their own
}

// dropLogEvery rate-limits drop warnings: a dead receiver under a flood
// of events must not turn into a flood of log lines, nor make Notify pay
// for them.
const dropLogEvery = time.Second

// New validates cfg and starts the delivery worker. Call Close to stop it.
func New(cfg Config) (*Notifier, error) {
	u, err := checkConfig(&cfg)
	if err != nil {
		return nil, err
	}
	cfg.Secret = append([]byte(nil), cfg.Secret...)
	client, own := &http.Client{}, false
	if cfg.Client != nil {
		c := *cfg.Client
		client = &c
	} else if t, ok := http.DefaultTransport.(*http.Transport); ok {
		client.Transport, own = t.Clone(), true
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	ctx, cancel := context.WithCancel(context.Background())
	n := &Notifier{
		cfg:      cfg,
		url:      u.String(),
		client:   client,
		ownConns: own,
		log:      cfg.Logger.With("webhook", u.Scheme+"://"+u.Host),
		queue:    make(chan delivery, cfg.QueueSize),
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	go n.run()
	return n, nil
}

// checkConfig fills defaults and reports every problem at once. Its
// errors never quote the URL, whose path or query may be a credential.
func checkConfig(cfg *Config) (*url.URL, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	u, err := url.Parse(cfg.URL)
	switch {
	case cfg.URL == "":
		bad("url is required")
	case err != nil:
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		bad("url does not parse: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		bad("url scheme must be http or https")
	case u.Host == "" || u.Hostname() == "":
		bad("url has no host")
	case u.User != nil:
		bad("url must not carry userinfo; the HMAC secret authenticates deliveries")
	}
	if len(cfg.Secret) < MinSecretLen {
		bad("secret must be at least %d bytes", MinSecretLen)
	}
	intDefault(&cfg.QueueSize, DefaultQueueSize, "queue size", bad)
	intDefault(&cfg.MaxAttempts, DefaultMaxAttempts, "max attempts", bad)
	durDefault(&cfg.InitialBackoff, DefaultInitialBackoff, "initial backoff", bad)
	durDefault(&cfg.MaxBackoff, DefaultMaxBackoff, "max backoff", bad)
	durDefault(&cfg.Timeout, DefaultTimeout, "timeout", bad)
	if cfg.InitialBackoff > cfg.MaxBackoff {
		bad("initial backoff %s exceeds max backoff %s", cfg.InitialBackoff, cfg.MaxBackoff)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return u, nil
}

func intDefault(v *int, def int, name string, bad func(string, ...any)) {
	switch {
	case *v == 0:
		*v = def
	case *v < 0:
		bad("%s must not be negative", name)
	}
}

func durDefault(v *time.Duration, def time.Duration, name string, bad func(string, ...any)) {
	switch {
	case *v == 0:
		*v = def
	case *v < 0:
		bad("%s must not be negative", name)
	}
}

// Notify enqueues e for delivery and returns at once. When the queue is
// full or the Notifier is closed, e is dropped: counted in Stats.Dropped
// and logged at warn with its type and id only — at most once a second,
// the line counting the drops it stands for. An event with a bad id
// or type, or Data that does not encode as JSON, is counted as failed.
func (n *Notifier) Notify(e Event) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed {
		n.drop(e, "notifier closed")
		return
	}
	// Fast path for a backed-up queue: no encoding for an event that
	// cannot be accepted.
	if len(n.queue) == cap(n.queue) {
		n.drop(e, "queue full")
		return
	}
	if e.ID == "" {
		e.ID = "evt_" + rand.Text()
	}
	if e.At.IsZero() {
		e.At = n.cfg.Now()
	}
	d, err := encode(e)
	if err != nil {
		n.failed.Add(1)
		n.log.Warn("webhook event refused", "type", safeToken(e.Type), "id", safeToken(e.ID), "err", err)
		return
	}
	n.pending.Add(1)
	select {
	case n.queue <- d:
	default:
		n.pending.Add(-1)
		n.drop(e, "queue full")
	}
}

func (n *Notifier) drop(e Event, why string) {
	n.dropped.Add(1)
	now, last := time.Now().UnixNano(), n.lastDropLog.Load()
	if last != 0 && now-last < int64(dropLogEvery) || !n.lastDropLog.CompareAndSwap(last, now) {
		n.dropsUnlogged.Add(1)
		return
	}
	n.log.Warn("webhook event dropped: "+why, "type", safeToken(e.Type), "id", safeToken(e.ID),
		"also_dropped_since_last_warning", n.dropsUnlogged.Swap(0))
}

// Close stops accepting events and delivers what is queued, retries
// included, until ctx is done. Then it abandons the rest (counted as
// failed), cancels the attempt in flight and returns ctx's error. The
// worker has exited when Close returns. Close may be called more than once.
func (n *Notifier) Close(ctx context.Context) error {
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		close(n.queue)
	}
	n.mu.Unlock()
	select {
	case <-n.done:
		n.cancel()
		n.logUnloggedDrops()
		return nil
	case <-ctx.Done():
	}
	left := n.pending.Load()
	n.cancel()
	<-n.done
	n.logUnloggedDrops()
	if left == 0 {
		return nil
	}
	return fmt.Errorf("notify: close: %d webhook events undelivered: %w", left, ctx.Err())
}

// logUnloggedDrops accounts at Close for drops the rate limit silenced.
func (n *Notifier) logUnloggedDrops() {
	if k := n.dropsUnlogged.Swap(0); k > 0 {
		n.log.Warn("webhook events dropped without a warning of their own", "count", k)
	}
}

// Stats returns the current counters.
func (n *Notifier) Stats() Stats {
	return Stats{
		Sent:    n.sent.Load(),
		Failed:  n.failed.Load(),
		Dropped: n.dropped.Load(),
		Retries: n.retries.Load(),
		Queued:  int(n.pending.Load()),
	}
}
