package config

import (
	"math"
	"testing"

	"github.com/qbroker/qbroker/internal/pricing"
)

// The built-in devices take their prices from the price catalogue, and the
// estimate the broker makes before a job (task + shots × per-shot + minimum
// minutes × per-minute) is the catalogue's own estimate, for every priced
// device and a table of shot counts.
func TestDefaultDevicesArePricedFromTheCatalogue(t *testing.T) {
	cat, err := pricing.Load()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Price{ // what the catalogue says, read by hand
		"ionq/simulator":   {},
		"ionq/qpu.forte-1": {PerTaskUSD: 0.30, PerShotUSD: 0.08}, // Braket's Forte-1 list price
		"aws/sv1":          {PerMinuteUSD: 0.075, MinMinutes: 0.05},
		"aws/forte-1":      {PerTaskUSD: 0.30, PerShotUSD: 0.08},
		"ibm/kingston":     {PerSecondUSD: 1.60},
	}
	priced := 0
	for _, d := range DefaultDevices() {
		key := d.Provider + "/" + d.Name
		if w, ok := want[key]; ok && d.Price != w {
			t.Errorf("%s: price %+v, want %+v", key, d.Price, w)
		}
		e, ok := pricingEntry(cat, d)
		if !ok || (e.Price.Model != pricing.ModelTaskShot && e.Price.Model != pricing.ModelPerMinute) {
			continue
		}
		priced++
		for _, shots := range []int{1, 100, 1000, 10_000} {
			ours := d.Price.PerTaskUSD + float64(shots)*d.Price.PerShotUSD + d.Price.MinMinutes*d.Price.PerMinuteUSD
			theirs, err := e.EstimateUSD(pricing.Job{Shots: shots})
			if err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			if math.Abs(ours-theirs) > 1e-9 {
				t.Errorf("%s, %d shots: the broker estimates $%v, the catalogue $%v", key, shots, ours, theirs)
			}
		}
	}
	if priced < 3 {
		t.Fatalf("only %d built-in devices priced from the catalogue", priced)
	}
}
