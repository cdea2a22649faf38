package sim

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/qbroker/qbroker/internal/circuit"
)

// The Hadamard test reads a phase: with the target in an eigenstate |1⟩ of
// a phase gate P(φ) (here Z, S, T and rz-derived phases), H on the
// ancilla, controlled-P, H again gives P(ancilla = 0) = (1 + cos φ)/2.
// Sampled counts must land within 5σ of that, for several φ.
func TestHadamardTestPhase(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const shots = 20000
	for _, c := range []struct {
		name string
		gate circuit.Gate // acting on qubit 1, controlled by qubit 0
		phi  float64
	}{
		{"Z", circuit.Gate{Gate: "z", Control: ip(0), Target: ip(1)}, math.Pi},
		{"S", circuit.Gate{Gate: "s", Control: ip(0), Target: ip(1)}, math.Pi / 2},
		{"T", circuit.Gate{Gate: "t", Control: ip(0), Target: ip(1)}, math.Pi / 4},
		{"T†", circuit.Gate{Gate: "ti", Control: ip(0), Target: ip(1)}, -math.Pi / 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := mustRun(t, 2,
				g1("x", 1), // target in |1⟩, the eigenstate with eigenvalue e^{iφ}
				g1("h", 0),
				c.gate,
				g1("h", 0),
			)
			counts := s.Sample(shots, rng)
			zero := 0
			for k, n := range counts {
				if k&1 == 0 { // qubit 0 (the ancilla) is the least significant bit
					zero += n
				}
			}
			p := (1 + math.Cos(c.phi)) / 2
			sigma := math.Sqrt(shots * p * (1 - p))
			if math.Abs(float64(zero)-shots*p) > 5*sigma+1 {
				t.Fatalf("P(ancilla=0) = %d/%d, want %.4f (φ = %.4f) within 5σ = %.1f", zero, shots, p, c.phi, 5*sigma)
			}
			// The exact probability too, from the state itself.
			probs := s.Probabilities()
			exact := probs[0] + probs[2]
			if math.Abs(exact-p) > 1e-9 {
				t.Fatalf("exact P(ancilla=0) = %.12f, want %.12f", exact, p)
			}
		})
	}
}
