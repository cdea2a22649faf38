package azuresim

import (
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/qbroker/qbroker/internal/sim"
)

// lifecycle moves j Waiting → Executing → Finishing → Succeeded, one
// StepDelay per step. The circuit runs while Executing; its results are
// written to the output blob before the job turns Succeeded. A job whose
// cancellation was requested turns Cancelled at its next step.
func (e *Emulator) lifecycle(j *job) {
	defer e.wg.Done()
	if !e.sleep() || !e.advance(j, StatusExecuting) {
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
	out, failure := e.execute(j)
	<-e.sem
	e.mu.Lock()
	switch {
	case j.status != StatusExecuting:
		e.settleCancel(j)
		e.mu.Unlock()
		return
	case failure != nil:
		j.errData = failure
		j.end = e.now()
		j.setStatus(StatusFailed)
		e.mu.Unlock()
		e.log.Debug("azuresim: job failed", "job", j.id, "code", failure.Code)
		return
	}
	e.writeBlob(j.container, j.outputBlob, "application/json", out)
	j.setStatus(StatusFinishing)
	e.mu.Unlock()
	if !e.sleep() || !e.advance(j, StatusSucceeded) {
		return
	}
	e.log.Debug("azuresim: job succeeded", "job", j.id)
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

// advance moves j to next unless it finished or its cancellation was
// requested (then it turns Cancelled); it reports whether j moved.
func (e *Emulator) advance(j *job, next string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if j.status == StatusCancellationRequested {
		e.settleCancel(j)
		return false
	}
	if IsTerminal(j.status) {
		return false
	}
	now := e.now()
	switch next {
	case StatusExecuting:
		j.begin = now
	case StatusSucceeded:
		j.end = now
	}
	j.setStatus(next)
	e.log.Debug("azuresim: job transition", "job", j.id, "status", next)
	return true
}

// settleCancel completes a requested cancellation; call with e.mu held.
func (e *Emulator) settleCancel(j *job) {
	if j.status != StatusCancellationRequested {
		return
	}
	now := e.now()
	j.cancelled, j.end = now, now
	j.setStatus(StatusCancelled)
	e.log.Debug("azuresim: job cancelled", "job", j.id)
}

// execute simulates j and renders its results in the target's output
// format; it runs without the lock.
func (e *Emulator) execute(j *job) ([]byte, *errorData) {
	p := j.prog
	var counts map[int]int
	if !j.target.SyntaxChecker {
		st, err := sim.Run(p.circ)
		if err != nil {
			return nil, &errorData{Code: "ExecutionFailed", Message: "The emulator could not simulate the circuit."}
		}
		counts = st.Sample(j.shots, rand.New(rand.NewPCG(e.seed, j.seq)))
	} else {
		counts = map[int]int{0: j.shots} // syntax checkers return all zeros
	}
	var out any
	switch j.target.OutputFormat {
	case FormatIonQResults:
		out = ionqHistogram(counts, j.shots)
	default:
		out = honeywellResults(p, counts, rand.New(rand.NewPCG(e.seed, ^j.seq)))
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, &errorData{Code: "ExecutionFailed", Message: "The emulator could not encode the results."}
	}
	return b, nil
}

// ionqHistogram is ionq.quantum-results.v1: {"histogram":{"<index>":p}},
// keyed by the decimal basis-state index (qubit 0 = least significant bit,
// every qubit measured, as IonQ reports), p = count/shots.
func ionqHistogram(counts map[int]int, shots int) map[string]map[string]float64 {
	h := make(map[string]float64, len(counts))
	for idx, n := range counts {
		h[strconv.Itoa(idx)] = float64(n) / float64(shots)
	}
	return map[string]map[string]float64{"histogram": h}
}

// honeywellResults is honeywell.quantum-results.v1: one entry per classical
// register, each a list of per-shot bitstrings with the register's highest
// bit first (the order Qiskit and Quantinuum print; UNCERTAIN for the
// Azure format). Measurements are taken on the final state, so a program
// that acts on a qubit after measuring it is simulated as if every
// measurement came last. Shots come out in random order.
func honeywellResults(p *program, counts map[int]int, rng *rand.Rand) map[string][]string {
	out := make(map[string][]string, len(p.registers))
	for _, reg := range p.registers {
		out[reg.name] = []string{}
	}
	if len(p.registers) == 0 {
		return out
	}
	clbits := 0
	for _, reg := range p.registers {
		clbits += reg.size
	}
	bits := make([]byte, clbits)
	order := make([]int, 0)
	for idx, n := range counts {
		for range n {
			order = append(order, idx)
		}
	}
	rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
	for _, idx := range order {
		for i := range bits {
			bits[i] = '0'
		}
		for _, m := range p.measures {
			if m.Clbit >= 0 && m.Clbit < clbits {
				bits[m.Clbit] = '0' + byte((idx>>m.Qubit)&1)
			}
		}
		off := 0
		for _, reg := range p.registers {
			var sb strings.Builder
			for i := reg.size - 1; i >= 0; i-- {
				sb.WriteByte(bits[off+i])
			}
			out[reg.name] = append(out[reg.name], sb.String())
			off += reg.size
		}
	}
	return out
}
