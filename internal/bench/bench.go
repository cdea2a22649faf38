// Package bench is qbroker's load generator (`qbroker bench`). It drives one
// step of the agent flow against a running broker and gateway from a fixed
// number of concurrent workers for a fixed time, and reports throughput and
// exact latency percentiles.
//
// Steps (Options.Step):
//
//   - login: one AppRole login per op.
//   - jobtoken: one job-token issuance per op; each worker logs in once,
//     untimed, and reuses its broker token.
//   - submit: one IonQ job submission through the gateway per op. Job
//     tokens are single use, so they are pre-minted into a pool by background
//     minters (one per worker, each with its own broker token) and only the
//     submit call is timed. Minting competes with submission for the
//     broker's CPU, and a worker that finds the pool empty waits, untimed;
//     Result.TokenWait reports that wait so a mint-bound run can be told
//     apart from a submit-bound one.
//   - status: GET of one job's status through the gateway, with the agent's
//     broker token; the job is submitted once during setup.
//   - flow: login → job token → submit, all timed, per op (the whole agent
//     flow).
//   - status-direct, submit-direct: the same HTTP against the IonQ emulator
//     directly with DirectKey, as the baseline the gateway is compared with.
//
// All requests share one keep-alive http.Transport. Latency is measured per
// op with time.Since and the percentiles are exact (every sample is kept,
// per worker, and merged at the end). Only successful ops (2xx) count as
// Ops and enter the percentiles; failures count as Errors and the first
// failure's text (secrets removed) is kept. Ops that start during the warm-up
// are left out of every figure.
package bench

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Steps.
const (
	StepLogin        = "login"
	StepJobToken     = "jobtoken"
	StepSubmit       = "submit"
	StepStatus       = "status"
	StepFlow         = "flow"
	StepStatusDirect = "status-direct"
	StepSubmitDirect = "submit-direct"
	// StepJWTLogin is one auth/jwt login per op with Options.JWT (a JWT the
	// broker's jwt role accepts; it is not single use).
	StepJWTLogin = "jwt-login"
	// StepHealth is GET /v1/sys/health: the broker's HTTP floor (same server,
	// no authentication, store, crypto or audit), the baseline for the
	// broker steps.
	StepHealth = "health"
)

// Steps lists every step in the order a full run reports them.
func Steps() []string {
	return []string{StepLogin, StepJobToken, StepSubmit, StepStatus, StepFlow, StepStatusDirect, StepSubmitDirect, StepHealth, StepJWTLogin}
}

// Defaults.
const (
	DefaultRole        = "demo"
	DefaultProvider    = "ionq"
	DefaultDevice      = "simulator"
	DefaultShots       = 100
	DefaultConcurrency = 8
	DefaultDuration    = 10 * time.Second
	DefaultWarmup      = 1 * time.Second
)

// ErrInvalidOptions is returned (wrapped) by Run for options it cannot use.
var ErrInvalidOptions = errors.New("bench: invalid options")

// ErrSetup is returned (wrapped) by Run when the untimed preparation of a
// step (for the status steps, submitting the job whose status is read)
// fails.
var ErrSetup = errors.New("bench: setup failed")

// Options configures one run.
type Options struct {
	BrokerAddr, GatewayAddr string // http://host:port
	RoleID, SecretID        string // AppRole credentials (login step and setup)
	Role, Provider, Device  string // default "demo", "ionq", "simulator"
	Shots                   int    // default 100
	// Step is one of the Step* constants.
	Step string
	// Concurrency is the number of workers (default 8).
	Concurrency int
	// Duration is the measured time (default 10 s). Warmup runs before it
	// and is not measured (default 1 s; negative means none).
	Duration, Warmup time.Duration
	// DirectAddr and DirectKey are the emulator's base URL and API key, for
	// the *-direct baselines.
	DirectAddr, DirectKey string
	// JWT and JWTRole are for the jwt-login step.
	JWT, JWTRole string
	// Targets are extra base URLs of the service a step measures, used
	// round robin per op together with the primary address: brokers for
	// login, jobtoken and flow (whose submit goes to GatewayAddr), gateways
	// for submit and status, emulators for the *-direct steps. They must
	// share the primary's state (one cluster), since tokens and jobs made
	// at one are used at another.
	Targets []string
}

// Result is the outcome of one run.
type Result struct {
	Step        string
	Concurrency int
	Ops         int64 // successful ops in the measured window
	Errors      int64 // failed ops in the measured window
	Elapsed     time.Duration
	OpsPerSec   float64 // Ops / Elapsed
	// Exact percentiles of successful ops' latency.
	P50, P90, P99, Max time.Duration
	// FirstError is the first failure's text, with secrets removed.
	FirstError string
	// TokenWait (submit only) is the total time workers spent waiting,
	// untimed, for a pre-minted job token during the measured window. A
	// large share of Elapsed×Concurrency means the mint rate, not the
	// gateway, bounded OpsPerSec.
	TokenWait time.Duration
}

// withDefaults fills zero fields and validates the rest.
func (o Options) withDefaults() (Options, error) {
	if o.Role == "" {
		o.Role = DefaultRole
	}
	if o.Provider == "" {
		o.Provider = DefaultProvider
	}
	if o.Device == "" {
		o.Device = DefaultDevice
	}
	if o.Shots == 0 {
		o.Shots = DefaultShots
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	switch {
	case o.Warmup == 0:
		o.Warmup = DefaultWarmup
	case o.Warmup < 0:
		o.Warmup = 0
	}
	var problems []string
	if o.Shots < 0 {
		problems = append(problems, "shots must be positive")
	}
	if o.Concurrency < 0 {
		problems = append(problems, "concurrency must be positive")
	}
	if o.Duration < 0 {
		problems = append(problems, "duration must be positive")
	}
	needBroker, needGateway, needDirect := false, false, false
	switch o.Step {
	case StepLogin, StepJobToken:
		needBroker = true
	case StepHealth:
		if o.BrokerAddr == "" {
			problems = append(problems, "broker address: missing")
		}
	case StepJWTLogin:
		if o.BrokerAddr == "" {
			problems = append(problems, "broker address: missing")
		}
		if o.JWT == "" || o.JWTRole == "" {
			problems = append(problems, "jwt-login needs a JWT and a JWT role")
		}
	case StepSubmit, StepStatus, StepFlow:
		needBroker, needGateway = true, true
	case StepStatusDirect, StepSubmitDirect:
		needDirect = true
	case "":
		problems = append(problems, "step is required (one of "+strings.Join(Steps(), ", ")+")")
	default:
		problems = append(problems, fmt.Sprintf("unknown step %q (want one of %s)", o.Step, strings.Join(Steps(), ", ")))
	}
	check := func(name string, addr *string, need bool) {
		if !need {
			return
		}
		*addr = strings.TrimSuffix(*addr, "/")
		if p := checkURL(*addr); p != "" {
			problems = append(problems, name+": "+p)
		}
	}
	check("broker address", &o.BrokerAddr, needBroker)
	check("gateway address", &o.GatewayAddr, needGateway)
	check("direct address", &o.DirectAddr, needDirect)
	if needBroker && (o.RoleID == "" || o.SecretID == "") {
		problems = append(problems, "role ID and secret ID are required")
	}
	if needDirect && o.DirectKey == "" {
		problems = append(problems, "direct key is required")
	}
	targets := make([]string, len(o.Targets))
	for i, t := range o.Targets {
		targets[i] = strings.TrimSuffix(t, "/")
		if p := checkURL(targets[i]); p != "" {
			problems = append(problems, fmt.Sprintf("target %d: %s", i+1, p))
		}
	}
	o.Targets = targets
	if len(problems) > 0 {
		return o, fmt.Errorf("%w: %s", ErrInvalidOptions, strings.Join(problems, "; "))
	}
	return o, nil
}

// checkURL returns a problem with a base URL, or "".
func checkURL(s string) string {
	if s == "" {
		return "missing"
	}
	u, err := url.Parse(s)
	if err != nil {
		return "not a URL"
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "want an http:// or https:// URL"
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "want a base URL such as http://127.0.0.1:8200"
	}
	return ""
}

// primary returns the address a step measures (Targets extend it).
func (o Options) primary() string {
	switch o.Step {
	case StepSubmit, StepStatus:
		return o.GatewayAddr
	case StepStatusDirect, StepSubmitDirect:
		return o.DirectAddr
	default:
		return o.BrokerAddr
	}
}

// roundRobin hands out base URLs in turn. It is safe for concurrent use.
type roundRobin struct {
	addrs []string
	next  atomic.Uint64
}

func newRoundRobin(primary string, extra []string) *roundRobin {
	return &roundRobin{addrs: append([]string{primary}, extra...)}
}

// pick returns the index of the next address.
func (r *roundRobin) pick() int {
	if len(r.addrs) == 1 {
		return 0
	}
	return int((r.next.Add(1) - 1) % uint64(len(r.addrs)))
}

// op runs one operation and returns the latency of its timed section.
// wait is time spent, untimed, waiting for an input (submit's job tokens).
type op func(ctx context.Context) (lat, wait time.Duration, err error)

// firstError keeps the earliest failure's text.
type firstError struct {
	once sync.Once
	msg  string
}

func (f *firstError) set(err error) {
	f.once.Do(func() { f.msg = err.Error() })
}

// workerStats is one worker's measured figures.
type workerStats struct {
	samples []time.Duration
	errors  int64
	wait    time.Duration
	done    time.Time
}

// drive runs ops from conc workers: warm-up, then the measured window. An
// op that starts inside the window is finished and counted even if it ends
// after it; Elapsed runs until the last such op ends.
func drive(ctx context.Context, conc int, warmup, dur time.Duration, ops []op) (Result, *firstError) {
	fe := &firstError{}
	stats := make([]workerStats, conc)
	start := time.Now()
	from := start.Add(warmup)
	until := from.Add(dur)
	var wg sync.WaitGroup
	for i := range conc {
		wg.Go(func() {
			st := &stats[i]
			for ctx.Err() == nil {
				began := time.Now()
				if !began.Before(until) {
					break
				}
				lat, wait, err := ops[i](ctx)
				if began.Before(from) || ctx.Err() != nil {
					continue
				}
				st.wait += wait
				if err != nil {
					st.errors++
					fe.set(err)
					continue
				}
				st.samples = append(st.samples, lat)
			}
			st.done = time.Now()
		})
	}
	wg.Wait()

	var r Result
	var all []time.Duration
	last := from
	for i := range stats {
		st := &stats[i]
		all = append(all, st.samples...)
		r.Errors += st.errors
		r.TokenWait += st.wait
		if st.done.After(last) {
			last = st.done
		}
	}
	r.Ops = int64(len(all))
	r.Elapsed = last.Sub(from)
	if r.Elapsed > 0 {
		r.OpsPerSec = float64(r.Ops) / r.Elapsed.Seconds()
	}
	r.P50, r.P90, r.P99, r.Max = percentiles(all)
	return r, fe
}

// Run performs one run. It returns an error for invalid options, a failed
// setup or a canceled ctx; failures of individual ops are counted in the
// Result instead.
func Run(ctx context.Context, o Options) (Result, error) {
	o, err := o.withDefaults()
	if err != nil {
		return Result{}, err
	}
	tr := newTransport(o.Concurrency)
	defer tr.CloseIdleConnections()
	e := newEnv(o, tr)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ops, stop, err := e.prepare(runCtx)
	if err != nil {
		return Result{}, err
	}
	r, fe := drive(runCtx, o.Concurrency, o.Warmup, o.Duration, ops)
	cancel()
	stop()
	r.Step, r.Concurrency = o.Step, o.Concurrency
	r.FirstError = e.redact(fe.msg)
	if err := ctx.Err(); err != nil {
		return r, fmt.Errorf("bench: %s: %w", o.Step, err)
	}
	return r, nil
}
