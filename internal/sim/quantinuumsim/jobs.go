package quantinuumsim

import (
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/qbroker/qbroker/internal/sim"
)

// Job statuses, as pytket maps them.
const (
	StatusQueued    = "queued"
	StatusRunning   = "running"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	StatusCanceling = "canceling"
	StatusCanceled  = "canceled"
)

// Language values of a job body, per the reference.
const (
	LanguageQASM = "OPENQASM 2.0"
	LanguageQIR  = "QIR 1.0"
)

// Priorities accepted in a job body (UNCERTAIN: pytket sends "normal"; the
// other values are the emulator's guess).
var priorities = []string{"normal", "high", "low"}

func isTerminal(status string) bool {
	return status == StatusCompleted || status == StatusFailed || status == StatusCanceled
}

// job is the emulator's record of one job. Fields after the guarded
// comment are read and written only with Emulator.mu held.
type job struct {
	id       string
	name     string
	machine  Machine
	language string
	priority string
	group    *string
	maxCost  *float64
	shots    int
	prog     *program
	cost     float64
	seq      uint64
	submit   time.Time

	// guarded by Emulator.mu
	status  string
	started time.Time
	ended   time.Time
	failure *errorDetail
	results map[string][]string
	history []string // every status held, in order
}

func (j *job) setStatus(s string) {
	j.status = s
	j.history = append(j.history, s)
}

// refusal is a 4xx answer to a job submission.
type refusal struct {
	status int
	msg    string
}

func refuse(status int, format string, args ...any) *refusal {
	return &refusal{status: status, msg: fmt.Sprintf(format, args...)}
}

func (e *Emulator) handleSubmit(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req jobRequest
	if err := decodeStrict(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, 0, "invalid job body: "+jsonProblem(err))
		return
	}
	j, rf := e.validate(&req)
	if rf != nil {
		e.log.Debug("quantinuumsim: job refused", "status", rf.status, "reason", rf.msg)
		writeError(w, rf.status, 0, rf.msg)
		return
	}
	if err := e.admit(j); err != nil {
		status := http.StatusTooManyRequests
		if errors.Is(err, errShuttingDown) {
			status = http.StatusServiceUnavailable
		}
		writeError(w, status, 0, err.Error())
		return
	}
	e.log.Debug("quantinuumsim: job submitted", "job", j.id, "machine", j.machine.Name, "count", j.shots, "cost", j.cost)
	writeJSON(w, http.StatusOK, submitResponse{Job: j.id, Status: StatusQueued})
}

// validate checks a job body in the order a gateway would: fields,
// machine, language, program, shots, cost.
func (e *Emulator) validate(req *jobRequest) (*job, *refusal) {
	switch {
	case req.CFL != nil:
		return nil, refuse(http.StatusBadRequest, "cfl (WASM) is not supported by the emulator")
	case req.BatchExec != nil || req.BatchEnd != nil:
		return nil, refuse(http.StatusBadRequest, "batch-exec and batch-end (batching) are not supported by the emulator")
	case req.Machine == nil || *req.Machine == "":
		return nil, refuse(http.StatusBadRequest, "machine is required")
	case req.Count == nil:
		return nil, refuse(http.StatusBadRequest, "count is required")
	case req.Language == nil:
		return nil, refuse(http.StatusBadRequest, "language is required")
	case req.Program == nil || *req.Program == "":
		return nil, refuse(http.StatusBadRequest, "program is required")
	case req.Priority != nil && !slices.Contains(priorities, *req.Priority):
		return nil, refuse(http.StatusBadRequest, "priority must be one of %q", priorities)
	case req.MaxCost != nil && *req.MaxCost < 0:
		return nil, refuse(http.StatusBadRequest, "max-cost must not be negative")
	case req.Options != nil && (len(*req.Options) == 0 || (*req.Options)[0] != '{'):
		return nil, refuse(http.StatusBadRequest, "options must be an object")
	}
	e.mu.Lock()
	m, ok := e.machine(*req.Machine)
	e.mu.Unlock()
	if !ok {
		return nil, refuse(http.StatusNotFound, "unknown machine %q", clip(*req.Machine))
	}
	switch *req.Language {
	case LanguageQASM:
	case LanguageQIR:
		return nil, refuse(http.StatusBadRequest, "language %q is not supported by the emulator", LanguageQIR)
	default:
		return nil, refuse(http.StatusBadRequest, "unknown language %q (expected %q or %q)", clip(*req.Language), LanguageQASM, LanguageQIR)
	}
	p, err := analyse(*req.Program)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "%v", err)
	}
	q := p.circ.Qubits
	switch shots := *req.Count; {
	case q > m.Qubits:
		return nil, refuse(http.StatusBadRequest, "program uses %d qubits; machine %s has %d", q, m.Name, m.Qubits)
	case q > sim.MaxQubits:
		return nil, refuse(http.StatusBadRequest, "program uses %d qubits; the emulator simulates at most %d (%v)", q, sim.MaxQubits, sim.ErrTooManyQubits)
	case p.work() > MaxWork:
		return nil, refuse(http.StatusBadRequest, "%d gates on %d qubits exceed the emulator's work limit", len(p.circ.Circuit), q)
	case shots < 1 || shots > m.MaxShots:
		return nil, refuse(http.StatusBadRequest, "count must be between 1 and %d (n_shots of %s), got %d", m.MaxShots, m.Name, shots)
	}
	j := &job{
		id:       newJobID(),
		machine:  m,
		language: *req.Language,
		priority: "normal",
		group:    req.Group,
		maxCost:  req.MaxCost,
		shots:    *req.Count,
		prog:     p,
		cost:     p.cost(*req.Count),
		submit:   e.now(),
	}
	if req.Name != nil {
		j.name = *req.Name
	}
	if req.Priority != nil {
		j.priority = *req.Priority
	}
	// A syntax checker charges nothing, so max-cost does not bind there;
	// it reports the cost the real machine would charge.
	if j.maxCost != nil && m.SystemType != SystemSyntaxChecker && j.cost > *j.maxCost {
		return nil, refuse(http.StatusBadRequest, "job cost %.4g HQC exceeds max-cost %.4g", j.cost, *j.maxCost)
	}
	j.setStatus(StatusQueued)
	return j, nil
}

// admit stores j, evicting the oldest terminal job if full, and starts its
// lifecycle goroutine.
func (e *Emulator) admit(j *job) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errShuttingDown
	}
	if len(e.jobs) >= e.cfg.MaxJobs {
		victim := slices.IndexFunc(e.order, func(id string) bool { return isTerminal(e.jobs[id].status) })
		if victim < 0 {
			return fmt.Errorf("too many unfinished jobs (limit %d)", e.cfg.MaxJobs)
		}
		delete(e.jobs, e.order[victim])
		e.order = slices.Delete(e.order, victim, victim+1)
	}
	e.seq++
	j.seq = e.seq
	e.jobs[j.id] = j
	e.order = append(e.order, j.id)
	e.wg.Add(1)
	go e.lifecycle(j)
	return nil
}

// lifecycle moves j queued → running → completed, one StepDelay per step.
// It stays queued while its machine is not online, and a canceling job
// becomes canceled at its next step.
func (e *Emulator) lifecycle(j *job) {
	defer e.wg.Done()
	for {
		if !e.sleep() {
			return
		}
		e.mu.Lock()
		m, _ := e.machine(j.machine.Name)
		switch {
		case j.status == StatusCanceling:
			e.finish(j, StatusCanceled)
			e.mu.Unlock()
			return
		case m.State != StateOnline:
			e.mu.Unlock()
			continue
		}
		j.started = e.now()
		j.setStatus(StatusRunning)
		e.mu.Unlock()
		break
	}
	if !e.sleep() {
		return
	}
	select {
	case e.sem <- struct{}{}:
	case <-e.ctx.Done():
		return
	}
	results, failure := e.execute(j)
	<-e.sem
	e.mu.Lock()
	defer e.mu.Unlock()
	if j.status == StatusCanceling {
		e.finish(j, StatusCanceled)
		return
	}
	if failure != nil {
		j.failure = failure
		e.finish(j, StatusFailed)
		return
	}
	j.results = results
	e.finish(j, StatusCompleted)
}

// finish moves j to a terminal status; call with e.mu held.
func (e *Emulator) finish(j *job, status string) {
	j.ended = e.now()
	j.setStatus(status)
	e.log.Debug("quantinuumsim: job finished", "job", j.id, "status", status)
}

func (e *Emulator) sleep() bool {
	t := time.NewTimer(e.cfg.StepDelay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-e.ctx.Done():
		return false
	}
}

// execute runs j without the lock.
func (e *Emulator) execute(j *job) (map[string][]string, *errorDetail) {
	if j.machine.SystemType == SystemSyntaxChecker {
		return zeroResults(j.prog, j.shots), nil
	}
	rng := mrand.New(mrand.NewPCG(e.seed, j.seq))
	res, err := simulate(j.prog, j.shots, rng)
	if err != nil {
		return nil, &errorDetail{Code: http.StatusInternalServerError, Text: "simulation failed"}
	}
	return res, nil
}

func (e *Emulator) lookup(w http.ResponseWriter, r *http.Request) (*job, bool) {
	e.mu.Lock()
	j, ok := e.jobs[r.PathValue("id")]
	e.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, 0, "job not found")
	}
	return j, ok
}

// handleGet answers GET /v1/job/{id}. With ?websocket=true the service
// adds a "websocket" object for an unfinished job; the emulator has no
// websocket, so it never does, and pytket falls back to polling.
func (e *Emulator) handleGet(w http.ResponseWriter, r *http.Request) {
	j, ok := e.lookup(w, r)
	if !ok {
		return
	}
	e.mu.Lock()
	v := e.view(j)
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, v)
}

// handleCancel answers POST /v1/job/{id}/cancel: an unfinished job turns
// canceling, then canceled at its next step; canceling twice is
// idempotent; a finished job cannot be canceled (400; UNCERTAIN: the
// service's answer there is not in the reference).
func (e *Emulator) handleCancel(w http.ResponseWriter, r *http.Request) {
	j, ok := e.lookup(w, r)
	if !ok {
		return
	}
	e.mu.Lock()
	status := j.status
	if !isTerminal(status) && status != StatusCanceling {
		j.setStatus(StatusCanceling)
	}
	v := e.view(j)
	e.mu.Unlock()
	if isTerminal(status) {
		writeError(w, http.StatusBadRequest, 0, fmt.Sprintf("job is already %s", status))
		return
	}
	e.log.Debug("quantinuumsim: job cancel requested", "job", j.id)
	writeJSON(w, http.StatusOK, v)
}

// view renders j; call with e.mu held.
func (e *Emulator) view(j *job) *jobView {
	v := &jobView{
		Job:        j.id,
		Name:       j.name,
		Status:     j.status,
		Machine:    j.machine.Name,
		Count:      j.shots,
		Language:   j.language,
		Priority:   j.priority,
		Group:      j.group,
		MaxCost:    j.maxCost,
		SubmitDate: j.submit.UTC().Format(timeFormat),
		Cost:       j.cost,
		Error:      j.failure,
		Results:    j.results,
	}
	if !j.started.IsZero() {
		s := j.started.UTC().Format(timeFormat)
		v.StartDate = &s
	}
	if !j.ended.IsZero() {
		s := j.ended.UTC().Format(timeFormat)
		v.ResultDate = &s
	}
	if j.status == StatusQueued {
		pos := 1
		for _, id := range e.order {
			o := e.jobs[id]
			if o.seq < j.seq && o.status == StatusQueued && o.machine.Name == j.machine.Name {
				pos++
			}
		}
		v.QueuePosition = &pos
	}
	return v
}

// newJobID returns a random 32-digit hexadecimal job id (UNCERTAIN: the
// service's id format is not in the reference).
func newJobID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return fmt.Sprintf("%x", b)
}
