package pricing

import (
	"fmt"
	"math"
)

// EstimateUSD is the list-price cost of j on d, in US dollars, as the exact
// result of the model's formula: it is not rounded, and rounding (to the
// cent, up or not) is the caller's choice. Errors:
//   - ErrNoPrice when d has no price, or is priced in HQC whose USD price
//     is unknown (a job of 0 HQC still costs $0);
//   - ErrNoRuntime for per-second devices when j.EstimatedSeconds is 0;
//   - ErrInvalidJob for negative or non-finite fields;
//   - ErrInvalidCatalogue for a price Parse would refuse.
//
// For per-minute devices a runtime of 0 (unknown) gives the minimum charge,
// a lower bound. Errors wrap the sentinels; test them with errors.Is.
func (d Device) EstimateUSD(j Job) (float64, error) {
	if err := d.check(j); err != nil {
		return 0, err
	}
	p := d.Price
	switch p.Model {
	case ModelTaskShot:
		return p.PerTaskUSD + float64(j.Shots)*p.PerShotUSD, nil
	case ModelPerMinute:
		return p.PerMinuteUSD * max(j.EstimatedSeconds/60, p.MinMinutes), nil
	case ModelPerSecond:
		if j.EstimatedSeconds == 0 {
			return 0, d.wrap(ErrNoRuntime)
		}
		return p.PerSecondUSD * j.EstimatedSeconds, nil
	case ModelHQC:
		hqc := p.HQC.credits(j)
		switch {
		case hqc == 0:
			return 0, nil
		case p.HQC.Unit != UnitHQC || p.PerHQCUSD == 0:
			return 0, d.wrap(ErrNoPrice)
		}
		return hqc * p.PerHQCUSD, nil
	default:
		return 0, d.wrap(ErrNoPrice)
	}
}

// EstimateHQC is the number of Quantinuum credits j uses on d, in the unit
// d.Price.HQC.Unit (HQC, or EHQC on emulators). It reports ErrNoPrice when
// d is not priced in credits.
func (d Device) EstimateHQC(j Job) (float64, error) {
	if err := d.check(j); err != nil {
		return 0, err
	}
	if d.Price.Model != ModelHQC {
		return 0, d.wrap(ErrNoPrice)
	}
	return d.Price.HQC.credits(j), nil
}

func (f HQCFormula) credits(j Job) float64 {
	ops := f.OneQubit*float64(j.OneQubitGates) + f.TwoQubit*float64(j.TwoQubitGates) + f.Measurement*float64(j.Measurements)
	return f.Base + float64(j.Shots)*ops/f.Divisor
}

func (j Job) validate() error {
	switch {
	case j.Shots < 0, j.OneQubitGates < 0, j.TwoQubitGates < 0, j.Measurements < 0:
		return fmt.Errorf("%w: negative count", ErrInvalidJob)
	case math.IsNaN(j.EstimatedSeconds) || math.IsInf(j.EstimatedSeconds, 0) || j.EstimatedSeconds < 0:
		return fmt.Errorf("%w: estimated seconds must be a finite, non-negative number", ErrInvalidJob)
	}
	return nil
}

// check refuses a bad job, and a price that Parse would have refused (a
// Device built by hand), so that no estimate divides by zero or goes negative.
func (d Device) check(j Job) error {
	if err := j.validate(); err != nil {
		return d.wrap(err)
	}
	if errs := d.Price.validate(); len(errs) > 0 {
		return d.wrap(fmt.Errorf("%w: %w", ErrInvalidCatalogue, errs[0]))
	}
	return nil
}

func (d Device) wrap(err error) error {
	return fmt.Errorf("pricing: %s/%s: %w", d.Provider, d.Name, err)
}
