package braketsim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/qbroker/qbroker/internal/sim"
)

type schemaHeader struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// gateModelResult is Braket's braket.task_result.gate_model_task_result v1.
type gateModelResult struct {
	BraketSchemaHeader       schemaHeader       `json:"braketSchemaHeader"`
	Measurements             [][]int            `json:"measurements,omitempty"`
	MeasurementProbabilities map[string]float64 `json:"measurementProbabilities,omitempty"`
	MeasuredQubits           []int              `json:"measuredQubits"`
	TaskMetadata             taskMetadata       `json:"taskMetadata"`
	AdditionalMetadata       additionalMetadata `json:"additionalMetadata"`
}

type taskMetadata struct {
	BraketSchemaHeader schemaHeader    `json:"braketSchemaHeader"`
	ID                 string          `json:"id"`
	Shots              int64           `json:"shots"`
	DeviceID           string          `json:"deviceId"`
	DeviceParameters   json.RawMessage `json:"deviceParameters,omitempty"`
	CreatedAt          string          `json:"createdAt"`
	EndedAt            string          `json:"endedAt"`
	Status             string          `json:"status"`
}

type additionalMetadata struct {
	Action            json.RawMessage    `json:"action"`
	SimulatorMetadata *simulatorMetadata `json:"simulatorMetadata,omitempty"`
}

type simulatorMetadata struct {
	BraketSchemaHeader schemaHeader `json:"braketSchemaHeader"`
	ExecutionDuration  int64        `json:"executionDuration"`
}

// execute simulates t without the lock and returns results.json, or a
// failure reason.
func (e *Emulator) execute(t *task) ([]byte, string) {
	start := time.Now()
	in, err := t.prog.ToIonQ()
	if err != nil {
		return nil, fmt.Sprintf("The program could not be translated for simulation: %s", err)
	}
	if in.Qubits > sim.MaxQubits {
		return nil, fmt.Sprintf("The program uses %d qubits; the emulator simulates at most %d.", in.Qubits, sim.MaxQubits)
	}
	if work := uint64(len(in.Circuit)+1) << uint(in.Qubits); work > MaxWork {
		return nil, fmt.Sprintf("%d gates on %d qubits exceed the emulator's work limit.", len(in.Circuit), in.Qubits)
	}
	st, err := sim.Run(in)
	if err != nil {
		return nil, "Simulation failed."
	}
	measured := t.prog.MeasuredQubits()
	if len(measured) == 0 {
		// Braket measures every qubit of a program without measurements.
		for q := range in.Qubits {
			measured = append(measured, q)
		}
	}
	res := gateModelResult{
		BraketSchemaHeader: schemaHeader{Name: "braket.task_result.gate_model_task_result", Version: "1"},
		MeasuredQubits:     measured,
		TaskMetadata: taskMetadata{
			BraketSchemaHeader: schemaHeader{Name: "braket.task_result.task_metadata", Version: "1"},
			ID:                 t.arn,
			Shots:              t.shots,
			DeviceID:           t.device.ARN,
			CreatedAt:          t.createdAt.Format(timeFormat),
			EndedAt:            e.now().UTC().Format(timeFormat),
			Status:             StatusCompleted,
		},
		AdditionalMetadata: additionalMetadata{Action: t.action},
	}
	if t.deviceParams != "" {
		res.TaskMetadata.DeviceParameters = json.RawMessage(t.deviceParams)
	}
	if t.shots > 0 {
		rng := rand.New(rand.NewPCG(e.seed, t.seq))
		res.Measurements = measurementRows(st.Sample(int(t.shots), rng), measured, rng)
	} else {
		res.MeasurementProbabilities = marginal(st.Probabilities(), measured)
	}
	if t.device.Type == Simulator {
		res.AdditionalMetadata.SimulatorMetadata = &simulatorMetadata{
			BraketSchemaHeader: schemaHeader{Name: "braket.task_result.simulator_metadata", Version: "1"},
			ExecutionDuration:  max(time.Since(start).Milliseconds(), 1),
		}
	}
	b, err := json.Marshal(res)
	if err != nil {
		return nil, "Results could not be encoded."
	}
	return b, ""
}

// bitsOf returns the bits of basis-state index idx for the measured qubits,
// in Braket's order: measured[0] first (leftmost in a bitstring). The
// simulator's index has qubit q at bit q (qubit 0 least significant).
func bitsOf(idx int, measured []int) []int {
	row := make([]int, len(measured))
	for i, q := range measured {
		row[i] = (idx >> q) & 1
	}
	return row
}

// measurementRows expands sampled counts into one row per shot, in a random
// order as a device returns them.
func measurementRows(counts map[int]int, measured []int, rng *rand.Rand) [][]int {
	keys := make([]int, 0, len(counts))
	total := 0
	for k, n := range counts {
		keys = append(keys, k)
		total += n
	}
	slices.Sort(keys)
	rows := make([][]int, 0, total)
	for _, k := range keys {
		row := bitsOf(k, measured)
		for range counts[k] {
			rows = append(rows, row)
		}
	}
	rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	return rows
}

// marginal sums probabilities onto the measured qubits, keyed by Braket's
// big-endian bitstrings; outcomes below 1e-12 are dropped.
func marginal(probs []float64, measured []int) map[string]float64 {
	out := map[string]float64{}
	for idx, p := range probs {
		if p == 0 {
			continue
		}
		var b strings.Builder
		for _, bit := range bitsOf(idx, measured) {
			b.WriteByte(byte('0' + bit))
		}
		out[b.String()] += p
	}
	for k, p := range out {
		if p < 1e-12 {
			delete(out, k)
		}
	}
	return out
}

// Counts tallies measurement rows into bitstring counts, as the Braket SDK's
// measurement_counts does (measuredQubits[0] leftmost).
func Counts(measurements [][]int) map[string]int {
	out := map[string]int{}
	for _, row := range measurements {
		var b strings.Builder
		for _, bit := range row {
			b.WriteByte(byte('0' + bit))
		}
		out[b.String()]++
	}
	return out
}
