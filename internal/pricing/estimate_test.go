package pricing

import (
	"errors"
	"math"
	"testing"
)

func load(t *testing.T) *Catalogue {
	t.Helper()
	c, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func lookup(t *testing.T, c *Catalogue, provider, name string) Device {
	t.Helper()
	d, ok := c.Lookup(provider, name)
	if !ok {
		t.Fatalf("Lookup(%q, %q): not found", provider, name)
	}
	return d
}

func near(got, want float64) bool {
	return math.Abs(got-want) <= 1e-9*math.Max(1, math.Abs(want))
}

// The expected costs are worked out by hand from the reference's numbers
// (quantum-apis.md section 1.8 and 3.2): $0.30 per Braket QPU task [B9],
// per-shot fees [B9]/[B11], simulator rates with a 3 s minimum [B5], and
// IBM's $96/min.
func TestEstimateUSDFromReferencePrices(t *testing.T) {
	c := load(t)
	cases := []struct {
		provider, name string
		job            Job
		want           float64
	}{
		// Braket QPUs: $0.30 + shots × per-shot fee.
		{"aws-braket", "Forte-1", Job{Shots: 100}, 8.30},          // 0.30 + 100 × 0.08
		{"aws-braket", "Forte-1", Job{Shots: 2500}, 200.30},       // 0.30 + 2500 × 0.08
		{"aws-braket", "Forte-1", Job{Shots: 0}, 0.30},            // the task fee alone
		{"aws-braket", "Garnet", Job{Shots: 1000}, 1.75},          // 0.30 + 1000 × 0.00145
		{"aws-braket", "Ankaa-3", Job{Shots: 100}, 0.39},          // 0.30 + 100 × 0.0009
		{"aws-braket", "Ankaa-3", Job{Shots: 1000}, 1.20},         // 0.30 + 1000 × 0.0009
		{"aws-braket", "Aquila", Job{Shots: 100}, 1.30},           // 0.30 + 100 × 0.01
		{"aws-braket", "Emerald", Job{Shots: 1000}, 1.90},         // 0.30 + 1000 × 0.0016
		{"aws-braket", "Cepheus-1-108Q", Job{Shots: 1000}, 0.725}, // 0.30 + 1000 × 0.000425
		{"aws-braket", "Ibex-Q1", Job{Shots: 1000}, 23.80},        // 0.30 + 1000 × 0.0235
		// Gates do not change a Braket QPU price.
		{"aws-braket", "Forte-1", Job{Shots: 100, OneQubitGates: 50, TwoQubitGates: 20, Measurements: 5}, 8.30},

		// Braket simulators: $/min × max(runtime, 3 s); shots do not matter.
		{"aws-braket", "sv1", Job{}, 0.00375},                                 // 0.075 × 3/60
		{"aws-braket", "sv1", Job{Shots: 1000, EstimatedSeconds: 1}, 0.00375}, // under the minimum
		{"aws-braket", "sv1", Job{EstimatedSeconds: 3}, 0.00375},              // exactly the minimum
		{"aws-braket", "sv1", Job{EstimatedSeconds: 60}, 0.075},               // one minute
		{"aws-braket", "sv1", Job{EstimatedSeconds: 90}, 0.1125},              // prorated, not rounded up to 2 min
		{"aws-braket", "dm1", Job{EstimatedSeconds: 120}, 0.15},               // 0.075 × 2
		{"aws-braket", "tn1", Job{}, 0.01375},                                 // 0.275 × 3/60
		{"aws-braket", "tn1", Job{EstimatedSeconds: 600}, 2.75},               // 0.275 × 10

		// IBM: $96/min = $1.60 per second of QPU time, runtime from the caller.
		{"ibm", "ibm_kingston", Job{Shots: 1024, EstimatedSeconds: 10}, 16.00},
		{"ibm", "ibm_aachen", Job{EstimatedSeconds: 0.5}, 0.80},

		// Azure Quantinuum syntax checkers: 0 HQC, so $0 whatever an HQC costs.
		{"azure", "quantinuum.sim.h1-1sc", Job{Shots: 100, OneQubitGates: 10, TwoQubitGates: 4, Measurements: 2}, 0},
	}
	for _, tc := range cases {
		d := lookup(t, c, tc.provider, tc.name)
		got, err := d.EstimateUSD(tc.job)
		if err != nil {
			t.Errorf("%s/%s %+v: %v", tc.provider, tc.name, tc.job, err)
			continue
		}
		if !near(got, tc.want) {
			t.Errorf("%s/%s %+v: got $%.10g, want $%.10g", tc.provider, tc.name, tc.job, got, tc.want)
		}
	}
}

func TestUncertainPricesAreMarked(t *testing.T) {
	c := load(t)
	want := map[string]bool{
		"aws-braket/Forte-1": false, "aws-braket/Garnet": false, "aws-braket/Ankaa-3": false, "aws-braket/Aquila": false,
		"aws-braket/Emerald": true, "aws-braket/Cepheus-1-108Q": true, "aws-braket/Ibex-Q1": true,
		"aws-braket/sv1": true, "aws-braket/dm1": true, "aws-braket/tn1": true,
		"ibm/ibm_kingston": true, "ibm/ibm_aachen": true,
	}
	for k, u := range want {
		found := false
		for _, d := range c.Devices {
			if d.Provider+"/"+d.Name == k {
				found = true
				if d.Price.Uncertain != u {
					t.Errorf("%s: Uncertain = %v, want %v", k, d.Price.Uncertain, u)
				}
			}
		}
		if !found {
			t.Errorf("%s: not in the catalogue", k)
		}
	}
}

func TestEstimateUSDNoPrice(t *testing.T) {
	c := load(t)
	job := Job{Shots: 100, OneQubitGates: 10, TwoQubitGates: 4, Measurements: 2, EstimatedSeconds: 5}
	for _, k := range [][2]string{
		{"aws-braket", "Forte-Enterprise-1"},
		{"ionq", "simulator"},
		{"ionq", "qpu.forte-1"},
		{"ionq", "qpu.forte-enterprise-1"},
		{"azure", "ionq.simulator"},
		{"azure", "quantinuum.qpu.h1-1"},  // HQCs known, their USD price not
		{"azure", "quantinuum.sim.h2-1e"}, // emulator credits have no USD price
		{"quantinuum", "H1-1E"},
	} {
		d := lookup(t, c, k[0], k[1])
		got, err := d.EstimateUSD(job)
		if !errors.Is(err, ErrNoPrice) {
			t.Errorf("%s/%s: got (%v, %v), want ErrNoPrice", k[0], k[1], got, err)
		}
	}
	// Every entry without a model refuses to guess.
	for _, d := range c.Devices {
		if d.Price.Model != "" {
			continue
		}
		if _, err := d.EstimateUSD(job); !errors.Is(err, ErrNoPrice) {
			t.Errorf("%s/%s: unpriced entry gave %v, want ErrNoPrice", d.Provider, d.Name, err)
		}
		if d.Note == "" {
			t.Errorf("%s/%s: unpriced entry has no note saying why", d.Provider, d.Name)
		}
	}
}

func TestEstimateUSDPerSecondNeedsRuntime(t *testing.T) {
	d := lookup(t, load(t), "ibm", "ibm_kingston")
	if got, err := d.EstimateUSD(Job{Shots: 1024}); !errors.Is(err, ErrNoRuntime) {
		t.Fatalf("got (%v, %v), want ErrNoRuntime", got, err)
	}
}

func TestEstimateUSDInvalidJob(t *testing.T) {
	c := load(t)
	for _, name := range []string{"Forte-1", "sv1"} {
		d := lookup(t, c, "aws-braket", name)
		for _, j := range []Job{
			{Shots: -1},
			{Shots: 1, TwoQubitGates: -1},
			{EstimatedSeconds: -1},
			{EstimatedSeconds: math.NaN()},
			{EstimatedSeconds: math.Inf(1)},
		} {
			if got, err := d.EstimateUSD(j); !errors.Is(err, ErrInvalidJob) {
				t.Errorf("%s %+v: got (%v, %v), want ErrInvalidJob", name, j, got, err)
			}
		}
	}
}

func TestEstimateHQC(t *testing.T) {
	c := load(t)
	j := Job{Shots: 100, OneQubitGates: 10, TwoQubitGates: 4, Measurements: 2}
	// By hand: 5 + 100 × (10 + 10×4 + 5×2) / 5000 = 5 + 6000/5000 = 6.2.
	for _, tc := range []struct {
		name, unit string
		want       float64
	}{
		{"quantinuum.qpu.h1-1", UnitHQC, 6.2},
		{"quantinuum.qpu.h2-1", UnitHQC, 6.2},
		{"quantinuum.sim.h1-1e", UnitEHQC, 6.2},
		{"quantinuum.sim.h2-1sc", UnitHQC, 0},
	} {
		d := lookup(t, c, "azure", tc.name)
		got, err := d.EstimateHQC(j)
		if err != nil || !near(got, tc.want) || d.Price.HQC.Unit != tc.unit {
			t.Errorf("%s: got (%v %s, %v), want %v %s", tc.name, got, d.Price.HQC.Unit, err, tc.want, tc.unit)
		}
	}
	// A job of no shots costs the base 5 HQC.
	d := lookup(t, c, "azure", "quantinuum.qpu.h1-1")
	if got, err := d.EstimateHQC(Job{OneQubitGates: 1000}); err != nil || !near(got, 5) {
		t.Errorf("0 shots: got (%v, %v), want 5", got, err)
	}
	if _, err := d.EstimateHQC(Job{Shots: -1}); !errors.Is(err, ErrInvalidJob) {
		t.Errorf("negative shots: %v, want ErrInvalidJob", err)
	}
	// Devices not priced in credits have no HQC count.
	for _, k := range [][2]string{{"aws-braket", "Forte-1"}, {"ionq", "simulator"}} {
		if _, err := lookup(t, c, k[0], k[1]).EstimateHQC(j); !errors.Is(err, ErrNoPrice) {
			t.Errorf("%s/%s: EstimateHQC gave %v, want ErrNoPrice", k[0], k[1], err)
		}
	}
}

// A catalogue that does give a USD price per HQC (a test fixture: the
// reference gives none) multiplies it out.
func TestEstimateUSDWithHQCPrice(t *testing.T) {
	c, err := Parse([]byte(doc(`
  - provider: azure
    name: quantinuum.qpu.h1-1
    kind: qpu
    vendor: quantinuum
    price: {model: hqc, per_hqc_usd: 2.5, hqc: {base: 5, one_qubit: 1, two_qubit: 10, measurement: 5, divisor: 5000, unit: HQC}}
    source: "[T1]"`)))
	if err != nil {
		t.Fatal(err)
	}
	d := lookup(t, c, "azure", "quantinuum.qpu.h1-1")
	got, err := d.EstimateUSD(Job{Shots: 100, OneQubitGates: 10, TwoQubitGates: 4, Measurements: 2})
	if err != nil || !near(got, 15.5) { // 6.2 HQC × $2.5
		t.Fatalf("got (%v, %v), want 15.5", got, err)
	}
}

// A Device built by hand with a price Parse would refuse gives an error,
// never Inf, NaN or a negative cost.
func TestEstimateRefusesHandBuiltBadPrice(t *testing.T) {
	for _, d := range []Device{
		{Provider: "azure", Name: "x", Price: Price{Model: ModelHQC, HQC: HQCFormula{Base: 5, OneQubit: 1, Unit: UnitHQC}}}, // divisor 0
		{Provider: "aws-braket", Name: "x", Price: Price{Model: ModelTaskShot, PerTaskUSD: 0.3, PerShotUSD: -1}},
		{Provider: "aws-braket", Name: "x", Price: Price{Model: "per-shot"}},
	} {
		got, err := d.EstimateUSD(Job{Shots: 10, OneQubitGates: 1, EstimatedSeconds: 1})
		if !errors.Is(err, ErrInvalidCatalogue) {
			t.Errorf("%+v: got (%v, %v), want ErrInvalidCatalogue", d.Price, got, err)
		}
		if _, err := d.EstimateHQC(Job{Shots: 10, OneQubitGates: 1}); !errors.Is(err, ErrInvalidCatalogue) {
			t.Errorf("%+v: EstimateHQC gave %v, want ErrInvalidCatalogue", d.Price, err)
		}
	}
}

// Every priced device gives a finite, non-negative estimate for an
// ordinary job.
func TestEveryPricedDeviceEstimates(t *testing.T) {
	j := Job{Shots: 1000, OneQubitGates: 20, TwoQubitGates: 10, Measurements: 4, EstimatedSeconds: 30}
	for _, d := range load(t).Devices {
		got, err := d.EstimateUSD(j)
		if errors.Is(err, ErrNoPrice) {
			continue
		}
		if err != nil || math.IsNaN(got) || math.IsInf(got, 0) || got < 0 {
			t.Errorf("%s/%s: got (%v, %v)", d.Provider, d.Name, got, err)
		}
	}
}
