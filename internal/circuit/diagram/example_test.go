package diagram_test

import (
	"fmt"

	"github.com/qbroker/qbroker/internal/circuit"
	"github.com/qbroker/qbroker/internal/circuit/diagram"
)

func ExampleAnalyze() {
	in, err := circuit.ParseInput([]byte(`{"qubits":2,"circuit":[
		{"gate":"h","target":0},
		{"gate":"cnot","control":0,"target":1}]}`))
	if err != nil {
		panic(err)
	}
	fmt.Printf("%+v\n", diagram.Analyze(diagram.FromIonQ(in)))
	// Output: {Qubits:2 Gates:2 OneQubit:1 TwoQubit:1 MultiQubit:0 Measurements:2 Depth:3}
}
