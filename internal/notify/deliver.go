package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// maxDrain bounds how much of a response body is read before closing it,
// so the connection can be reused without trusting the receiver.
const maxDrain = 64 << 10

// run is the single worker: strictly one event at a time, in queue order.
func (n *Notifier) run() {
	defer close(n.done)
	if n.ownConns {
		defer n.client.CloseIdleConnections()
	}
	for d := range n.queue {
		n.deliver(d)
		n.pending.Add(-1)
	}
}

// outcome is the result of one attempt.
type outcome struct {
	status     int           // HTTP status, 0 when no response
	err        error         // transport error, already free of the URL
	retry      bool          // worth another attempt
	retryAfter time.Duration // the receiver's Retry-After, if any
}

// deliver sends d until it is accepted, refused for good, out of
// attempts, or the Notifier gives up at Close.
func (n *Notifier) deliver(d delivery) {
	log := n.log.With("type", d.typ, "id", d.id)
	for attempt := 1; ; attempt++ {
		if n.ctx.Err() != nil {
			n.failed.Add(1)
			log.Warn("webhook event abandoned at close", "attempts", attempt-1)
			return
		}
		o := n.attempt(d)
		if o.status/100 == 2 {
			n.sent.Add(1)
			log.Debug("webhook event delivered", "attempts", attempt)
			return
		}
		args := []any{"attempt", attempt}
		if o.status != 0 {
			args = append(args, "status", o.status)
		}
		if o.err != nil {
			args = append(args, "err", o.err)
		}
		if n.ctx.Err() != nil {
			n.failed.Add(1)
			log.Warn("webhook event abandoned at close", args...)
			return
		}
		if !o.retry || attempt >= n.cfg.MaxAttempts {
			n.failed.Add(1)
			log.Warn("webhook event not delivered; giving up", args...)
			return
		}
		wait := n.backoff(attempt, o.retryAfter)
		log.Info("webhook attempt failed; retrying", append(args, "wait", wait.String())...)
		n.retries.Add(1)
		if !sleep(n.ctx, wait) {
			n.failed.Add(1)
			log.Warn("webhook event abandoned at close", "attempts", attempt)
			return
		}
	}
}

// attempt makes one signed POST with a fresh timestamp.
func (n *Notifier) attempt(d delivery) outcome {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(d.body))
	if err != nil {
		return outcome{err: errors.New("cannot build the request")}
	}
	ts := strconv.FormatInt(n.cfg.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set(HeaderEvent, d.typ)
	req.Header.Set(HeaderDelivery, d.id)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(n.cfg.Secret, ts, d.body))
	resp, err := n.client.Do(req)
	if err != nil {
		return outcome{err: stripURL(err), retry: true}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	resp.Body.Close()
	o := outcome{status: resp.StatusCode}
	switch c := resp.StatusCode; {
	case c/100 == 2:
	case c/100 == 3:
		o.err = errors.New("redirect refused: redirects are never followed")
	case c == http.StatusRequestTimeout, c == http.StatusTooManyRequests, c/100 == 5:
		o.retry = true
		o.retryAfter = retryAfter(resp.Header.Get("Retry-After"), n.cfg.Now())
	default:
		o.err = fmt.Errorf("receiver refused the event (%s)", http.StatusText(c))
	}
	return o
}

// stripURL drops the *url.Error wrapper, which quotes the whole URL
// (path and query included), keeping the cause: dial errors name only
// the host and port.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// backoff is the wait before attempt+1: exponential from InitialBackoff,
// capped at MaxBackoff, with "equal jitter" (half fixed, half random) so
// many brokers do not retry in lockstep; at least what Retry-After asked,
// up to MaxBackoff.
func (n *Notifier) backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := n.cfg.InitialBackoff
	for i := 1; i < attempt && d < n.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, n.cfg.MaxBackoff)
	wait := d/2 + rand.N(d/2+1)
	return max(wait, min(retryAfter, n.cfg.MaxBackoff))
}

// retryAfter parses a Retry-After value: delay-seconds or an HTTP date.
// Anything else, or a time in the past, is no request at all.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		// Cap before multiplying so a huge value cannot overflow.
		return time.Duration(min(s, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// sleep waits d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
