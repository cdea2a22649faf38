package ionqsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"slices"
	"time"

	"github.com/qbroker/qbroker/internal/circuit"
	"github.com/qbroker/qbroker/internal/provider/ionq"
	"github.com/qbroker/qbroker/internal/sim"
)

// job is the emulator's record of one job. Fields after mu-guarded comment
// are read and written only with Emulator.mu held.
type job struct {
	id        string
	req       *ionq.JobRequest
	circ      *circuit.Input
	backend   ionq.Backend
	seq       uint64
	submitted time.Time

	// guarded by Emulator.mu
	status    string
	started   time.Time
	completed time.Time
	failure   *ionq.Failure
	probs     ionq.Probabilities
	history   []string // every status held, in order
}

// setStatus records a transition; call with Emulator.mu held.
func (j *job) setStatus(s string) {
	j.status = s
	j.history = append(j.history, s)
}

func (e *Emulator) handleCreate(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		ionq.WriteError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			ionq.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", MaxBodyBytes))
			return
		}
		ionq.WriteError(w, http.StatusBadRequest, "could not read request body")
		return
	}
	req, err := ionq.DecodeJobRequest(body)
	if err == nil {
		err = req.Validate()
	}
	if err != nil {
		ionq.ErrorFromValidation(err).Write(w)
		return
	}
	b, ok := e.backend(req.Backend)
	if !ok {
		apiErr := ionq.NewError(http.StatusBadRequest, fmt.Sprintf("backend: unknown backend %q", req.Backend))
		apiErr.Validation = &ionq.Validation{Keys: []string{"backend"}, Source: "payload"}
		apiErr.Write(w)
		return
	}
	if req.SessionID != nil {
		apiErr := ionq.NewError(http.StatusBadRequest, "session_id: session not found (the emulator has no sessions)")
		apiErr.Validation = &ionq.Validation{Keys: []string{"session_id"}, Source: "payload"}
		apiErr.Write(w)
		return
	}
	j := &job{
		id:        newUUID(),
		req:       req,
		circ:      req.Circuit(),
		backend:   b,
		submitted: time.Now(),
	}
	j.setStatus(ionq.StatusSubmitted)
	if err := e.admit(j); err != nil {
		status := http.StatusTooManyRequests
		if errors.Is(err, errShuttingDown) {
			status = http.StatusServiceUnavailable
		}
		ionq.WriteError(w, status, err.Error())
		return
	}
	e.log.Debug("ionqsim: job submitted", "job", j.id, "backend", b.Backend, "shots", req.EffectiveShots(), "qubits", j.circ.Qubits)
	ionq.WriteJSON(w, http.StatusCreated, ionq.SubmitResponse{ID: j.id, Status: ionq.StatusSubmitted})
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
		victim := slices.IndexFunc(e.order, func(id string) bool { return ionq.IsTerminal(e.jobs[id].status) })
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

// lifecycle advances j one StepDelay at a time and runs it.
func (e *Emulator) lifecycle(j *job) {
	defer e.wg.Done()
	for _, next := range []string{ionq.StatusReady, ionq.StatusStarted} {
		if !e.sleep() || !e.transition(j, next) {
			return
		}
	}
	if !e.sleep() {
		return
	}
	select {
	case e.sem <- struct{}{}:
	case <-e.ctx.Done():
		return
	}
	probs, failure := e.execute(j)
	<-e.sem
	e.mu.Lock()
	defer e.mu.Unlock()
	if j.status != ionq.StatusStarted {
		return // canceled meanwhile
	}
	j.completed = time.Now()
	if failure != nil {
		j.failure = failure
		j.setStatus(ionq.StatusFailed)
	} else {
		j.probs = probs
		j.setStatus(ionq.StatusCompleted)
	}
	e.log.Debug("ionqsim: job finished", "job", j.id, "status", j.status)
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

// transition moves j to next unless it was canceled.
func (e *Emulator) transition(j *job, next string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ionq.IsTerminal(j.status) {
		return false
	}
	j.setStatus(next)
	if next == ionq.StatusStarted {
		j.started = time.Now()
	}
	e.log.Debug("ionqsim: job transition", "job", j.id, "status", next)
	return true
}

// execute simulates j; it runs without the lock.
func (e *Emulator) execute(j *job) (ionq.Probabilities, *ionq.Failure) {
	c := j.circ
	limit := min(j.backend.Qubits, sim.MaxQubits)
	if c.Qubits > limit {
		msg := fmt.Sprintf("circuit needs %d qubits; backend %s has %d", c.Qubits, j.backend.Backend, j.backend.Qubits)
		if c.Qubits <= j.backend.Qubits {
			msg = fmt.Sprintf("circuit needs %d qubits; the emulator simulates at most %d", c.Qubits, sim.MaxQubits)
		}
		return nil, &ionq.Failure{Code: ionq.FailureNotEnoughQubits, Message: msg}
	}
	if work := uint64(len(c.Circuit)) << uint(c.Qubits); work > MaxWork {
		return nil, &ionq.Failure{Code: ionq.FailureTooManyGates, Message: fmt.Sprintf("%d gates on %d qubits exceed the emulator's work limit", len(c.Circuit), c.Qubits)}
	}
	if j.req.DryRun != nil && *j.req.DryRun {
		return nil, nil
	}
	st, err := sim.Run(c)
	if err != nil {
		return nil, &ionq.Failure{Code: ionq.FailureSimulationError, Message: "simulation failed"}
	}
	shots := j.req.EffectiveShots()
	rng := rand.New(rand.NewPCG(e.seed, j.seq))
	return ionq.ProbabilitiesFromCounts(st.Sample(shots, rng), shots), nil
}

func (e *Emulator) lookup(w http.ResponseWriter, r *http.Request) (*job, bool) {
	id := r.PathValue("id")
	e.mu.Lock()
	j, ok := e.jobs[id]
	e.mu.Unlock()
	if !ok {
		ionq.WriteError(w, http.StatusNotFound, "job not found")
	}
	return j, ok
}

func (e *Emulator) handleGet(w http.ResponseWriter, r *http.Request) {
	j, ok := e.lookup(w, r)
	if !ok {
		return
	}
	e.mu.Lock()
	view := e.view(j)
	e.mu.Unlock()
	ionq.WriteJSON(w, http.StatusOK, view)
}

// view renders j as IonQ's job object; call with e.mu held.
func (e *Emulator) view(j *job) *ionq.Job {
	req := j.req
	one, two := j.circ.GateCounts()
	v := &ionq.Job{
		ID:          j.id,
		Status:      j.status,
		Type:        req.Type,
		Backend:     req.Backend,
		DryRun:      req.DryRun != nil && *req.DryRun,
		SubmitterID: "qbroker-emulator",
		ProjectID:   &e.projectID,
		Metadata:    req.Metadata,
		SubmittedAt: ionq.FormatTime(j.submitted),
		Shots:       req.EffectiveShots(),
		Failure:     j.failure,
		Output:      json.RawMessage(`{}`),
		Settings:    json.RawMessage(`{}`),
		Stats: &ionq.Stats{
			Qubits:     j.circ.Qubits,
			Circuits:   1,
			GateCounts: ionq.GateCounts{OneQ: one, TwoQ: two},
		},
	}
	if req.Name != "" {
		v.Name = &req.Name
	}
	if len(req.Settings) > 0 {
		v.Settings = req.Settings
	}
	if req.Backend == ionq.BackendSimulator {
		v.Noise = req.ParsedNoise()
		if v.Noise == nil {
			v.Noise = &ionq.Noise{Model: "ideal"}
		}
	}
	if !j.started.IsZero() {
		s := ionq.FormatTime(j.started)
		v.StartedAt = &s
	}
	if !j.completed.IsZero() {
		c := ionq.FormatTime(j.completed)
		v.CompletedAt = &c
		if !j.started.IsZero() {
			d := j.completed.Sub(j.started).Milliseconds()
			v.ExecutionDurationMS = &d
		}
	}
	if j.status == ionq.StatusCompleted && j.probs != nil {
		v.Results = &ionq.Results{Probabilities: &ionq.URL{URL: ionq.ProbabilitiesPath(j.id)}}
	}
	return v
}

func (e *Emulator) handleProbabilities(w http.ResponseWriter, r *http.Request) {
	j, ok := e.lookup(w, r)
	if !ok {
		return
	}
	e.mu.Lock()
	status, probs := j.status, j.probs
	e.mu.Unlock()
	if status != ionq.StatusCompleted || probs == nil {
		ionq.WriteError(w, http.StatusNotFound, fmt.Sprintf("job has no results (status %s)", status))
		return
	}
	ionq.WriteJSON(w, http.StatusOK, probs)
}

func (e *Emulator) handleCancel(w http.ResponseWriter, r *http.Request) {
	j, ok := e.lookup(w, r)
	if !ok {
		return
	}
	e.mu.Lock()
	status := j.status
	if !ionq.IsTerminal(status) {
		j.setStatus(ionq.StatusCanceled)
		status = ionq.StatusCanceled
		j.completed = time.Now()
	}
	e.mu.Unlock()
	if status != ionq.StatusCanceled {
		ionq.WriteError(w, http.StatusBadRequest, fmt.Sprintf("job is already %s", status))
		return
	}
	e.log.Debug("ionqsim: job canceled", "job", j.id)
	ionq.WriteJSON(w, http.StatusOK, ionq.CancelResponse{ID: j.id, Status: ionq.StatusCanceled})
}
