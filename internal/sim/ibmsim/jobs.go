package ibmsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"time"

	"github.com/qbroker/qbroker/internal/circuit"
	"github.com/qbroker/qbroker/internal/circuit/qasm"
	"github.com/qbroker/qbroker/internal/sim"
)

// Job statuses, as the API spells them.
const (
	StatusQueued    = "Queued"
	StatusRunning   = "Running"
	StatusCompleted = "Completed"
	StatusCancelled = "Cancelled"
	StatusFailed    = "Failed"
)

func isTerminal(s string) bool {
	return s == StatusCompleted || s == StatusCancelled || s == StatusFailed
}

const timeFormat = "2006-01-02T15:04:05.000Z"

// pub is a compiled PUB.
type pub struct {
	pubSpec
	prog *qasm.Program
	in   *circuit.Input
	regs []creg
}

// job is the emulator's record of one job. Fields below the "guarded"
// comment are read and written only with Emulator.mu held.
type job struct {
	id       string
	instance string // Service-CRN it was created under
	backend  Backend
	req      *jobRequest
	pubs     []pub
	created  time.Time
	seq      uint64

	// guarded by Emulator.mu
	status     string
	reason     string
	reasonCode int
	result     []byte // results JSON of a Completed job; nil once a private job's results are read
	usage      float64
	history    []string
}

func (j *job) setStatus(s string) {
	j.status = s
	j.history = append(j.history, s)
}

// createJob is POST /api/v1/jobs.
func (e *Emulator) createJob(c *call) {
	if mt, _, err := mime.ParseMediaType(c.r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		c.fail(&apiError{status: http.StatusUnsupportedMediaType, code: codeValidation,
			msg: "Request validation of body failed, because: Content-Type must be application/json."})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			c.fail(&apiError{status: http.StatusRequestEntityTooLarge, code: codeValidation,
				msg: fmt.Sprintf("Request validation of body failed, because: the body is larger than %d bytes.", MaxBodyBytes)})
			return
		}
		c.fail(validationError("the body could not be read"))
		return
	}
	req, aerr := parseJobRequest(body)
	if aerr != nil {
		c.fail(aerr)
		return
	}
	b, ok := e.backend(req.backend)
	if !ok {
		c.fail(backendNotFound(req.backend))
		return
	}
	pubs, aerr := compilePubs(req.pubs, b)
	if aerr != nil {
		c.fail(aerr)
		return
	}
	j := &job{id: newJobID(), instance: c.crn, backend: b, req: req, pubs: pubs, created: c.now.UTC()}
	j.setStatus(StatusQueued)
	if aerr := e.admit(j, c.now); aerr != nil {
		c.fail(aerr)
		return
	}
	e.log.Debug("ibmsim: job created", "job", j.id, "backend", b.Name, "pubs", len(pubs))
	resp := map[string]any{"id": j.id, "backend": b.Name}
	if req.private {
		resp["private"] = true
	}
	writeJSON(c.w, http.StatusOK, resp)
}

// compilePubs parses each PUB's circuit and checks it against the backend
// and the emulator: qubits, shots, PUB count and simulation cost. What the
// service checks only once a job runs (the instruction set and the
// topology) is checked in execute, where it fails the job.
func compilePubs(specs []pubSpec, b Backend) ([]pub, *apiError) {
	if len(specs) > b.MaxExperiments {
		return nil, validationError("params.pubs holds %d PUBs; backend %s accepts at most %d", len(specs), b.Name, b.MaxExperiments)
	}
	total := 0
	out := make([]pub, len(specs))
	for i, s := range specs {
		if s.shots < 1 || s.shots > b.MaxShots {
			return nil, validationError("params.pubs[%d]: %d shots; backend %s accepts 1 to %d", i, s.shots, b.Name, b.MaxShots)
		}
		total += s.shots
		prog, err := qasm.Parse([]byte(s.source))
		if err == nil && prog.Version == "2.0" {
			err = errors.New("OpenQASM 2.0: Qiskit Runtime takes OpenQASM 3 circuits")
		}
		if err != nil {
			return nil, validationError("params.pubs[%d]: the circuit is not valid OpenQASM 3 for the emulator: %s", i, err)
		}
		if prog.Qubits < 1 {
			return nil, validationError("params.pubs[%d]: the circuit uses no qubits", i)
		}
		if prog.Qubits > b.Qubits {
			return nil, validationError("params.pubs[%d]: the circuit uses %d qubits; backend %s has %d", i, prog.Qubits, b.Name, b.Qubits)
		}
		if prog.Qubits > sim.MaxQubits {
			return nil, validationError("params.pubs[%d]: the circuit uses %d qubits; the emulator simulates at most %d", i, prog.Qubits, sim.MaxQubits)
		}
		in, err := prog.ToIonQ()
		if err != nil {
			return nil, validationError("params.pubs[%d]: the circuit cannot be simulated: %s", i, err)
		}
		if work := uint64(len(in.Circuit)+1) << uint(in.Qubits); work > MaxWork {
			return nil, validationError("params.pubs[%d]: %d gates on %d qubits exceed the emulator's work limit", i, len(in.Circuit), in.Qubits)
		}
		regs, err := classicalRegisters([]byte(s.source), prog)
		if err != nil {
			return nil, validationError("params.pubs[%d]: %s", i, err)
		}
		out[i] = pub{pubSpec: s, prog: prog, in: in, regs: regs}
	}
	if total > MaxTotalShots {
		return nil, validationError("the job asks for %d shots in all; the emulator runs at most %d per job", total, MaxTotalShots)
	}
	return out, nil
}

// admit applies the rate limit, stores j (evicting the oldest finished job
// if full) and starts its lifecycle.
func (e *Emulator) admit(j *job, now time.Time) *apiError {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable, msg: errShuttingDown.Error()}
	}
	if limit := e.cfg.JobsPerMinute; limit > 0 {
		recent := e.submissions[:0]
		for _, t := range e.submissions {
			if now.Sub(t) < time.Minute {
				recent = append(recent, t)
			}
		}
		e.submissions = recent
		if len(recent) >= limit {
			return &apiError{status: http.StatusTooManyRequests, code: codeRateLimited,
				msg:      fmt.Sprintf("Job submissions are rate limited to %d jobs per minute per user.", limit),
				solution: "Wait and submit again."}
		}
	}
	if len(e.jobs) >= e.cfg.MaxJobs {
		victim := slices.IndexFunc(e.order, func(id string) bool { return isTerminal(e.jobs[id].status) })
		if victim < 0 {
			return &apiError{status: http.StatusTooManyRequests, code: codeRateLimited,
				msg: fmt.Sprintf("Too many unfinished jobs (emulator limit %d).", e.cfg.MaxJobs)}
		}
		delete(e.jobs, e.order[victim])
		e.order = slices.Delete(e.order, victim, victim+1)
	}
	e.submissions = append(e.submissions, now)
	e.seq++
	j.seq = e.seq
	e.jobs[j.id] = j
	e.order = append(e.order, j.id)
	e.wg.Add(1)
	go e.lifecycle(j)
	return nil
}

// lifecycle moves j Queued → Running → Completed (or Failed), one StepDelay
// per step, unless it is cancelled meanwhile.
func (e *Emulator) lifecycle(j *job) {
	defer e.wg.Done()
	if !e.sleep() || !e.transition(j, StatusRunning) {
		return
	}
	if !e.sleep() {
		return
	}
	select {
	case e.sem <- struct{}{}:
	case <-e.ctx.Done():
		return
	}
	result, usage, reason := e.execute(j)
	<-e.sem
	e.mu.Lock()
	defer e.mu.Unlock()
	if j.status != StatusRunning {
		return // cancelled meanwhile
	}
	if reason != "" {
		j.reason, j.reasonCode = reason, reasonJobNotValid
		j.setStatus(StatusFailed)
	} else {
		j.result, j.usage = result, usage
		j.setStatus(StatusCompleted)
	}
	e.log.Debug("ibmsim: job finished", "job", j.id, "status", j.status)
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

// transition moves j to next unless it was cancelled.
func (e *Emulator) transition(j *job, next string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if isTerminal(j.status) {
		return false
	}
	j.setStatus(next)
	e.log.Debug("ibmsim: job transition", "job", j.id, "status", next)
	return true
}

// queued counts the jobs waiting on a backend, across instances.
func (e *Emulator) queued(backend string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, j := range e.jobs {
		if j.backend.Name == backend && j.status == StatusQueued {
			n++
		}
	}
	return n
}

// lookup finds a job of the caller's instance. A job of another instance is
// reported as not found, as IBM does not reveal it.
func (e *Emulator) lookup(c *call) (*job, bool) {
	id := c.r.PathValue("id")
	e.mu.Lock()
	j, ok := e.jobs[id]
	e.mu.Unlock()
	if !ok || j.instance != c.crn {
		c.fail(jobNotFound(id))
		return nil, false
	}
	return j, true
}

// jobState is JobState.
type jobState struct {
	Status     string `json:"status"`
	Reason     string `json:"reason,omitempty"`
	ReasonCode int    `json:"reason_code,omitempty"`
}

type usageView struct {
	QPUChargeTimeSeconds float64 `json:"qpu_charge_time_seconds"`
	Status               string  `json:"status"`
}

// jobView is JobResponseV3.
type jobView struct {
	ID      string            `json:"id"`
	Backend string            `json:"backend"`
	State   jobState          `json:"state"`
	Status  string            `json:"status"`
	Params  json.RawMessage   `json:"params,omitempty"`
	Program map[string]string `json:"program"`
	Created string            `json:"created"`
	Runtime string            `json:"runtime,omitempty"`
	Cost    int               `json:"cost"`
	Tags    []string          `json:"tags"`
	UserID  string            `json:"user_id"`
	Usage   *usageView        `json:"usage,omitempty"`
	Private bool              `json:"private,omitempty"`
}

// view renders j; call with e.mu held.
func (e *Emulator) view(j *job, withParams bool) jobView {
	v := jobView{
		ID:      j.id,
		Backend: j.backend.Name,
		State:   jobState{Status: j.status, Reason: j.reason, ReasonCode: j.reasonCode},
		Status:  j.status,
		Program: map[string]string{"id": j.req.programID},
		Created: j.created.Format(timeFormat),
		Runtime: j.req.runtime,
		Cost:    j.req.cost,
		Tags:    slices.Clone(j.req.tags),
		UserID:  e.iamID,
		Private: j.req.private,
	}
	if v.Tags == nil {
		v.Tags = []string{}
	}
	// A private job's parameters are never returned.
	if withParams && !j.req.private {
		v.Params = j.req.params
	}
	if j.status == StatusCompleted {
		v.Usage = &usageView{QPUChargeTimeSeconds: j.usage, Status: "complete"}
	}
	return v
}

// getJob is GET /api/v1/jobs/{id}.
func (e *Emulator) getJob(c *call) {
	j, ok := e.lookup(c)
	if !ok {
		return
	}
	withParams := c.r.URL.Query().Get("exclude_params") != "true"
	e.mu.Lock()
	v := e.view(j, withParams)
	e.mu.Unlock()
	writeJSON(c.w, http.StatusOK, v)
}

// listJobs is GET /api/v1/jobs: the instance's jobs, newest first unless
// sort=ASC, filtered by pending, backend and program. Out-of-range limit and
// offset fall back to their defaults, as documented.
func (e *Emulator) listJobs(c *call) {
	q := c.r.URL.Query()
	limit, offset := 200, 0
	if n, ok := jsonInt(json.RawMessage(q.Get("limit"))); ok && n >= 1 && n <= 200 {
		limit = int(n)
	}
	if n, ok := jsonInt(json.RawMessage(q.Get("offset"))); ok && n >= 0 {
		offset = int(n)
	}
	withParams := q.Get("exclude_params") == "false"
	e.mu.Lock()
	var matched []jobView
	for _, id := range e.order {
		j := e.jobs[id]
		if j.instance != c.crn ||
			(q.Has("backend") && j.backend.Name != q.Get("backend")) ||
			(q.Has("program") && j.req.programID != q.Get("program")) ||
			(q.Get("pending") == "true" && isTerminal(j.status)) ||
			(q.Get("pending") == "false" && !isTerminal(j.status)) {
			continue
		}
		matched = append(matched, e.view(j, withParams))
	}
	e.mu.Unlock()
	if q.Get("sort") != "ASC" {
		slices.Reverse(matched)
	}
	count := len(matched)
	page := []jobView{}
	if offset < count {
		page = matched[offset:min(offset+limit, count)]
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"jobs": page, "count": count, "offset": offset, "limit": limit})
}

// jobResults is GET /api/v1/jobs/{id}/results: the result of a Completed
// job, or 204 when there is none (not finished, failed, cancelled, or a
// private job's results already read).
func (e *Emulator) jobResults(c *call) {
	j, ok := e.lookup(c)
	if !ok {
		return
	}
	e.mu.Lock()
	result := j.result
	if j.req.private {
		j.result = nil // a private job's results can be read once
	}
	e.mu.Unlock()
	if result == nil {
		c.w.WriteHeader(http.StatusNoContent)
		return
	}
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write(result)
}

// cancelJob is POST /api/v1/jobs/{id}/cancel: 204 for a Queued or Running
// job, 409 for a finished one.
func (e *Emulator) cancelJob(c *call) {
	j, ok := e.lookup(c)
	if !ok {
		return
	}
	e.mu.Lock()
	status := j.status
	if !isTerminal(status) {
		j.setStatus(StatusCancelled)
	}
	e.mu.Unlock()
	if isTerminal(status) {
		c.fail(&apiError{status: http.StatusConflict, code: codeNotCancellable,
			msg: fmt.Sprintf("Job is not cancellable. Job ID: %s.", j.id), solution: "Try again or contact support."})
		return
	}
	e.log.Debug("ibmsim: job cancelled", "job", j.id)
	c.w.WriteHeader(http.StatusNoContent)
}

// deleteJob is DELETE /api/v1/jobs/{id}; the job must be finished.
func (e *Emulator) deleteJob(c *call) {
	j, ok := e.lookup(c)
	if !ok {
		return
	}
	e.mu.Lock()
	terminal := isTerminal(j.status)
	if terminal {
		delete(e.jobs, j.id)
		if i := slices.Index(e.order, j.id); i >= 0 {
			e.order = slices.Delete(e.order, i, i+1)
		}
	}
	e.mu.Unlock()
	if !terminal {
		c.fail(&apiError{status: http.StatusBadRequest, code: codeNotTerminal,
			msg:      fmt.Sprintf("Deleting a job in a non-terminal state is not possible. Job ID: %s.", j.id),
			solution: "Postpone job deletion until job is in a terminal state."})
		return
	}
	c.w.WriteHeader(http.StatusNoContent)
}
