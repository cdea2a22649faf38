package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
)

const (
	// requestTimeout bounds one HTTP request.
	requestTimeout = 30 * time.Second
	// maxErrorBody bounds the response text quoted in an error.
	maxErrorBody = 200
	// maxDrain bounds the response bytes read (and discarded) per request so
	// the connection can be reused.
	maxDrain = 1 << 20
	// poolPerWorker sizes submit's job-token pool.
	poolPerWorker = 16
)

// newTransport returns the keep-alive transport every request shares.
// There is no proxy: a benchmark measures the path it is pointed at.
func newTransport(conc int) *http.Transport {
	idle := max(conc*2, 16)
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        idle * 4,
		MaxIdleConnsPerHost: idle,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
	}
}

// env is what a run's ops share.
type env struct {
	o  Options
	hc *http.Client
	rr *roundRobin
	// body is the IonQ job request every submission sends.
	body []byte
}

func newEnv(o Options, tr *http.Transport) *env {
	return &env{
		o: o,
		hc: &http.Client{
			Transport: tr,
			Timeout:   requestTimeout,
			// A redirect is an answer to measure (and count as an error),
			// not something to follow.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		rr:   newRoundRobin(o.primary(), o.Targets),
		body: jobBody(o.Device, o.Shots),
	}
}

// jobBody is a two-qubit Bell circuit in IonQ's v0.4 job shape.
func jobBody(backend string, shots int) []byte {
	type gate struct {
		Gate    string `json:"gate"`
		Target  int    `json:"target"`
		Control *int   `json:"control,omitempty"`
	}
	zero := 0
	b, _ := json.Marshal(map[string]any{
		"type":    "ionq.circuit.v1",
		"backend": backend,
		"shots":   shots,
		"input": map[string]any{
			"qubits":  2,
			"gateset": "qis",
			"circuit": []gate{{Gate: "h", Target: 0}, {Gate: "cnot", Control: &zero, Target: 1}},
		},
	})
	return b
}

// redact removes the run's static secrets from a message. Per-op tokens
// are removed where the op builds its error.
func (e *env) redact(msg string) string {
	return redact(msg, e.o.SecretID, e.o.DirectKey)
}

func redact(msg string, secrets ...string) string {
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return msg
}

// refused reports whether the broker refused the caller's token.
func refused(err error) bool {
	var ce *client.Error
	return errors.As(err, &ce) && (ce.Status == http.StatusForbidden || ce.Status == http.StatusUnauthorized)
}

// broker returns a client for the broker at addr on the shared transport.
func (e *env) broker(addr string) *client.Client { return client.New(addr, e.hc) }

func (e *env) jobTokenRequest() api.JobTokenRequest {
	return api.JobTokenRequest{Provider: e.o.Provider, Device: e.o.Device, Shots: e.o.Shots}
}

// login logs in with the run's AppRole credentials.
func (e *env) login(ctx context.Context, c *client.Client) (string, error) {
	a, err := c.AppRoleLogin(ctx, e.o.RoleID, e.o.SecretID)
	if err != nil {
		return "", fmt.Errorf("approle login: %w", err)
	}
	return a.ClientToken, nil
}

// mint logs in (if tok is empty) and issues one job token, returning the
// broker token to reuse.
func (e *env) mint(ctx context.Context, c *client.Client, tok string) (brokerTok, jobTok string, err error) {
	if tok == "" {
		if tok, err = e.login(ctx, c); err != nil {
			return "", "", err
		}
	}
	jt, err := c.WithToken(tok).JobToken(ctx, e.o.Role, e.jobTokenRequest())
	if err != nil {
		again := refused(err) // perhaps expired or revoked: log in again next time
		err = fmt.Errorf("job token: %w", redactErr(err, tok))
		if again {
			tok = ""
		}
		return tok, "", err
	}
	return tok, jt.Token, nil
}

// redactErr returns err, or an error with the same text minus secrets if
// any secret occurs in it (the original chain is then dropped).
func redactErr(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if r := redact(msg, secrets...); r != msg {
		return errors.New(r)
	}
	return err
}

// call sends one request with "Authorization: apiKey <key>" and returns the
// response body of a 2xx answer. Any other answer is an error that quotes
// the status and the start of the body, never the key.
func (e *env) call(ctx context.Context, method, url, key string, body []byte, keep bool) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	req.Header.Set("Authorization", "apiKey "+key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		return nil, redactErr(err, key)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		msg := strings.TrimSpace(strings.ToValidUTF8(string(b), "?"))
		return nil, fmt.Errorf("%s %s: %d %s: %s", method, req.URL.Path, resp.StatusCode, http.StatusText(resp.StatusCode), redact(msg, key))
	}
	if keep {
		return io.ReadAll(io.LimitReader(resp.Body, maxDrain))
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	return nil, redactErr(err, key)
}

// submit posts the job through a gateway (prefix "/ionq") or directly to
// the emulator (prefix "") and returns the response body.
func (e *env) submit(ctx context.Context, base, key string, keep bool) ([]byte, error) {
	return e.call(ctx, http.MethodPost, base+"/v0.4/jobs", key, e.body, keep)
}

// submitOne submits one job and returns its id (setup of the status steps).
func (e *env) submitOne(ctx context.Context, base, key string) (string, error) {
	b, err := e.submit(ctx, base, key, true)
	if err != nil {
		return "", err
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.ID == "" || strings.ContainsAny(out.ID, "/?#") {
		return "", errors.New("submission answer has no usable job id")
	}
	return out.ID, nil
}

// timed runs f and returns its duration.
func timed(f func() error) (time.Duration, time.Duration, error) {
	t := time.Now()
	err := f()
	return time.Since(t), 0, err
}

// prepare does the step's untimed setup and returns one op per worker and a
// function that stops any background work (call it after cancelling ctx).
func (e *env) prepare(ctx context.Context) ([]op, func(), error) {
	o := e.o
	ops := make([]op, o.Concurrency)
	stop := func() {}
	addrs := e.rr.addrs
	switch o.Step {
	case StepLogin:
		clients := make([]*client.Client, len(addrs))
		for i, a := range addrs {
			clients[i] = e.broker(a)
		}
		for i := range ops {
			ops[i] = func(ctx context.Context) (time.Duration, time.Duration, error) {
				c := clients[e.rr.pick()]
				return timed(func() error { _, err := e.login(ctx, c); return err })
			}
		}

	case StepJWTLogin:
		for i := range ops {
			ops[i] = func(ctx context.Context) (time.Duration, time.Duration, error) {
				c := e.broker(addrs[e.rr.pick()])
				return timed(func() error {
					if _, err := c.JWTLogin(ctx, "jwt", o.JWTRole, o.JWT); err != nil {
						return fmt.Errorf("jwt login: %w", redactErr(err, o.JWT))
					}
					return nil
				})
			}
		}

	case StepJobToken:
		// Each worker logs in once, untimed, on its first op (and again if
		// its token stops working), then times only the issuance.
		for i := range ops {
			tok := ""
			ops[i] = func(ctx context.Context) (time.Duration, time.Duration, error) {
				if tok == "" {
					var err error
					if tok, err = e.login(ctx, e.broker(o.BrokerAddr)); err != nil {
						return 0, 0, err
					}
				}
				c := e.broker(addrs[e.rr.pick()]).WithToken(tok)
				return timed(func() error {
					_, err := c.JobToken(ctx, o.Role, e.jobTokenRequest())
					if err != nil {
						again := refused(err) // log in again on the next op
						err = fmt.Errorf("job token: %w", redactErr(err, tok))
						if again {
							tok = ""
						}
						return err
					}
					return nil
				})
			}
		}

	case StepSubmit:
		pool := e.startMinters(ctx)
		stop = pool.wait
		for i := range ops {
			ops[i] = func(ctx context.Context) (time.Duration, time.Duration, error) {
				t := time.Now()
				var m minted
				select {
				case m = <-pool.ch:
				case <-ctx.Done():
					return 0, 0, ctx.Err()
				}
				wait := time.Since(t)
				if m.err != nil {
					return 0, wait, m.err
				}
				base := addrs[e.rr.pick()] + "/ionq"
				lat, _, err := timed(func() error { _, err := e.submit(ctx, base, m.token, false); return err })
				return lat, wait, err
			}
		}

	case StepStatus:
		bc := e.broker(o.BrokerAddr)
		brokerTok, jobTok, err := e.mint(ctx, bc, "")
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s", ErrSetup, e.redact(err.Error()))
		}
		id, err := e.submitOne(ctx, o.GatewayAddr+"/ionq", jobTok)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: submit a job through the gateway: %s", ErrSetup, err)
		}
		for i := range ops {
			ops[i] = func(ctx context.Context) (time.Duration, time.Duration, error) {
				url := addrs[e.rr.pick()] + "/ionq/v0.4/jobs/" + id
				return timed(func() error { _, err := e.call(ctx, http.MethodGet, url, brokerTok, nil, false); return err })
			}
		}

	case StepFlow:
		for i := range ops {
			ops[i] = func(ctx context.Context) (time.Duration, time.Duration, error) {
				c := e.broker(addrs[e.rr.pick()])
				return timed(func() error {
					_, jt, err := e.mint(ctx, c, "")
					if err != nil {
						return err
					}
					_, err = e.submit(ctx, o.GatewayAddr+"/ionq", jt, false)
					return err
				})
			}
		}

	case StepHealth:
		for i := range ops {
			ops[i] = func(ctx context.Context) (time.Duration, time.Duration, error) {
				url := addrs[e.rr.pick()] + "/v1/sys/health"
				return timed(func() error { _, err := e.call(ctx, http.MethodGet, url, "", nil, false); return err })
			}
		}

	case StepStatusDirect:
		id, err := e.submitOne(ctx, o.DirectAddr, o.DirectKey)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: submit a job to the emulator: %s", ErrSetup, err)
		}
		for i := range ops {
			ops[i] = func(ctx context.Context) (time.Duration, time.Duration, error) {
				url := addrs[e.rr.pick()] + "/v0.4/jobs/" + id
				return timed(func() error { _, err := e.call(ctx, http.MethodGet, url, o.DirectKey, nil, false); return err })
			}
		}

	case StepSubmitDirect:
		for i := range ops {
			ops[i] = func(ctx context.Context) (time.Duration, time.Duration, error) {
				base := addrs[e.rr.pick()]
				return timed(func() error { _, err := e.submit(ctx, base, o.DirectKey, false); return err })
			}
		}
	}
	return ops, stop, nil
}

// minted is a pre-minted job token, or why one could not be minted.
type minted struct {
	token string
	err   error
}

// tokenPool is submit's supply of single-use job tokens.
type tokenPool struct {
	ch chan minted
	wg sync.WaitGroup
}

// startMinters starts one minter per worker against the primary broker.
// Each logs in once (again only if its token stops working) and mints job
// tokens into the pool until ctx is done. A failure is put in the pool too,
// so the submitter that draws it counts an error instead of waiting forever.
func (e *env) startMinters(ctx context.Context) *tokenPool {
	p := &tokenPool{ch: make(chan minted, e.o.Concurrency*poolPerWorker)}
	c := e.broker(e.o.BrokerAddr)
	for range e.o.Concurrency {
		p.wg.Go(func() {
			tok := ""
			for ctx.Err() == nil {
				var m minted
				tok, m.token, m.err = e.mint(ctx, c, tok)
				if ctx.Err() != nil {
					return
				}
				select {
				case p.ch <- m:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	return p
}

// wait waits for the minters to stop (after their ctx is done).
func (p *tokenPool) wait() { p.wg.Wait() }
