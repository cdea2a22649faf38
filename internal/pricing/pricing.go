// Package pricing is qbroker's device price catalogue: list prices for the
// quantum devices the broker knows, and the cost estimate of a job on each,
// computed before the job runs for policy, approval display and budgets.
//
// The catalogue is data (catalogue.yaml, embedded): every price in it is
// taken from a cited source, and a device whose price is not known has none,
// so EstimateUSD reports ErrNoPrice rather than a guess. Prices the sources
// themselves mark as uncertain carry Price.Uncertain. Estimates are list
// prices without discounts, credits, reservations or taxes.
//
// The package does no I/O.
package pricing

import (
	_ "embed"
	"errors"
)

// catalogueYAML is the built-in catalogue. A string, so nothing can change it.
//
//go:embed catalogue.yaml
var catalogueYAML string

// Providers, as the catalogue names them.
const (
	ProviderBraket     = "aws-braket"
	ProviderIonQ       = "ionq"
	ProviderIBM        = "ibm"
	ProviderAzure      = "azure"
	ProviderQuantinuum = "quantinuum"
	ProviderRigetti    = "rigetti"
)

// Device kinds.
const (
	KindQPU       = "qpu"
	KindSimulator = "simulator"
)

// Pricing models (Price.Model). The empty model means the price is unknown.
const (
	// ModelTaskShot is PerTaskUSD + shots × PerShotUSD (Braket QPUs).
	ModelTaskShot = "task+shot"
	// ModelPerMinute is PerMinuteUSD × max(runtime in minutes, MinMinutes),
	// prorated without rounding (Braket on-demand simulators).
	ModelPerMinute = "per-minute"
	// ModelPerSecond is PerSecondUSD × runtime in seconds, where the caller
	// supplies the runtime (IBM QPU time).
	ModelPerSecond = "per-second"
	// ModelHQC is a count of Quantinuum credits (HQC) from the job's shots,
	// gates and measurements, times PerHQCUSD when that is known.
	ModelHQC = "hqc"
)

// HQC units (HQCFormula.Unit).
const (
	// UnitHQC is a Quantinuum hardware credit.
	UnitHQC = "HQC"
	// UnitEHQC is an emulator credit: a quota, without a USD price.
	UnitEHQC = "EHQC"
)

var (
	// ErrNoPrice means the catalogue has no (USD) price for the device. The
	// caller decides what an unknown cost means; it is never zero by default.
	ErrNoPrice = errors.New("no price known for this device")
	// ErrNoRuntime means the device is billed by time with no minimum, and
	// the job gives no estimated runtime (Job.EstimatedSeconds).
	ErrNoRuntime = errors.New("device is billed by runtime and the job has no estimated runtime")
	// ErrInvalidJob means the job has a negative or non-finite count.
	ErrInvalidJob = errors.New("invalid job")
	// ErrInvalidCatalogue means Parse refused the catalogue.
	ErrInvalidCatalogue = errors.New("invalid price catalogue")
)

// Catalogue is a validated list of devices and their prices.
type Catalogue struct {
	// AsOf is the date (YYYY-MM-DD) the prices were compiled.
	AsOf string `yaml:"as_of"`
	// Sources are the cited sources, each starting with its key, e.g.
	// "[B9] aws.amazon.com/braket/pricing ...".
	Sources []string `yaml:"sources"`
	// Devices are unique by Provider and Name.
	Devices []Device `yaml:"devices"`
}

// Device is one catalogue entry.
type Device struct {
	// Provider is the cloud the broker talks to: one of the Provider constants.
	Provider string `yaml:"provider"`
	// Name is the device as the provider names it. For aws-braket it is the
	// last segment of the device ARN ("Forte-1", "sv1").
	Name string `yaml:"name"`
	// ARN is the Braket device ARN; empty for other providers.
	ARN string `yaml:"arn"`
	// Kind is KindQPU or KindSimulator.
	Kind string `yaml:"kind"`
	// Vendor is the hardware maker.
	Vendor string `yaml:"vendor"`
	// Qubits is the qubit count; 0 when the sources do not state it.
	Qubits int `yaml:"qubits"`
	// Price is the device's list price; Model is empty when it is unknown.
	Price Price `yaml:"price"`
	// Source is one or more source keys, e.g. "[B9] [B5]".
	Source string `yaml:"source"`
	// Note explains how the price was derived or why it is missing.
	Note string `yaml:"note"`
}

// Price is a device's list price under one model. Only the fields of its
// model may be set.
type Price struct {
	PerTaskUSD   float64 `yaml:"per_task_usd"`   // task+shot
	PerShotUSD   float64 `yaml:"per_shot_usd"`   // task+shot
	PerMinuteUSD float64 `yaml:"per_minute_usd"` // per-minute
	MinMinutes   float64 `yaml:"min_minutes"`    // per-minute: minimum billed duration
	PerSecondUSD float64 `yaml:"per_second_usd"` // per-second
	PerHQCUSD    float64 `yaml:"per_hqc_usd"`    // hqc: 0 means the HQC price is unknown
	// Model is one of the Model constants, or empty when the price is unknown.
	Model string `yaml:"model"`
	// HQC is the credit formula of the hqc model.
	HQC HQCFormula `yaml:"hqc"`
	// Uncertain is set when the source marks the price as unconfirmed.
	Uncertain bool `yaml:"uncertain"`
}

// HQCFormula counts credits as
// Base + shots × (OneQubit·N1q + TwoQubit·N2q + Measurement·Nm) / Divisor.
type HQCFormula struct {
	Base        float64 `yaml:"base"`
	OneQubit    float64 `yaml:"one_qubit"`
	TwoQubit    float64 `yaml:"two_qubit"`
	Measurement float64 `yaml:"measurement"`
	Divisor     float64 `yaml:"divisor"`
	// Unit is UnitHQC or UnitEHQC.
	Unit string `yaml:"unit"`
}

// Job is what an estimate needs to know about a job. Which fields matter
// depends on the device's model.
type Job struct {
	// Shots is used by task+shot and hqc.
	Shots int
	// OneQubitGates, TwoQubitGates and Measurements are used by hqc.
	OneQubitGates, TwoQubitGates, Measurements int
	// EstimatedSeconds is the expected runtime, used by per-minute (where
	// the minimum applies when it is shorter or 0) and per-second (where it
	// is required).
	EstimatedSeconds float64
}

// Load returns the built-in catalogue, parsed and validated afresh.
func Load() (*Catalogue, error) {
	return Parse([]byte(catalogueYAML))
}

// Lookup returns the device named name at provider.
func (c *Catalogue) Lookup(provider, name string) (Device, bool) {
	for _, d := range c.Devices {
		if d.Provider == provider && d.Name == name {
			return d, true
		}
	}
	return Device{}, false
}

// LookupARN returns the Braket device with the given device ARN.
func (c *Catalogue) LookupARN(arn string) (Device, bool) {
	if arn == "" {
		return Device{}, false
	}
	for _, d := range c.Devices {
		if d.ARN == arn {
			return d, true
		}
	}
	return Device{}, false
}
