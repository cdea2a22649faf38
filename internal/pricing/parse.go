package pricing

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxCatalogueBytes bounds what Parse reads.
const maxCatalogueBytes = 1 << 20

var (
	sourceEntryRE = regexp.MustCompile(`^\[([A-Za-z0-9.-]+)\] \S`)
	sourceRefRE   = regexp.MustCompile(`^\[([A-Za-z0-9.-]+)\](?: \[([A-Za-z0-9.-]+)\])*$`)
	sourceKeyRE   = regexp.MustCompile(`\[([A-Za-z0-9.-]+)\]`)
)

// Parse decodes and validates a catalogue. Decoding is strict: unknown keys,
// duplicate keys and more than one YAML document are errors. Validation
// reports every problem at once, wrapped with ErrInvalidCatalogue.
func Parse(b []byte) (*Catalogue, error) {
	if len(b) > maxCatalogueBytes {
		return nil, fmt.Errorf("pricing: %w: larger than %d bytes", ErrInvalidCatalogue, maxCatalogueBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Catalogue
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("pricing: %w: empty", ErrInvalidCatalogue)
		}
		return nil, fmt.Errorf("pricing: %w: %w", ErrInvalidCatalogue, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("pricing: %w: more than one YAML document", ErrInvalidCatalogue)
	}
	if errs := c.validate(); len(errs) > 0 {
		return nil, fmt.Errorf("pricing: %w: %w", ErrInvalidCatalogue, errors.Join(errs...))
	}
	return &c, nil
}

func (c *Catalogue) validate() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if _, err := time.Parse(time.DateOnly, c.AsOf); err != nil {
		bad("as_of: %q is not a YYYY-MM-DD date", c.AsOf)
	}
	keys := map[string]bool{}
	if len(c.Sources) == 0 {
		bad("sources: at least one source is required")
	}
	for i, s := range c.Sources {
		m := sourceEntryRE.FindStringSubmatch(s)
		if m == nil {
			bad("sources[%d]: must start with a key such as \"[B9] \" and describe the source", i)
			continue
		}
		if keys[m[1]] {
			bad("sources[%d]: key [%s] listed twice", i, m[1])
		}
		keys[m[1]] = true
	}
	if len(c.Devices) == 0 {
		bad("devices: at least one device is required")
	}
	names := map[string]bool{}
	for i, d := range c.Devices {
		at := fmt.Sprintf("devices[%d] (%s/%s)", i, d.Provider, d.Name)
		for _, e := range d.validate(keys) {
			errs = append(errs, fmt.Errorf("%s: %w", at, e))
		}
		k := d.Provider + "/" + d.Name
		if names[k] {
			bad("%s: listed twice", at)
		}
		names[k] = true // the ARN ends in the name, so ARNs are unique too
	}
	return errs
}

func (d Device) validate(keys map[string]bool) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	switch d.Provider {
	case ProviderBraket, ProviderIonQ, ProviderIBM, ProviderAzure, ProviderQuantinuum, ProviderRigetti:
	default:
		bad("provider %q is not one of aws-braket, ionq, ibm, azure, quantinuum, rigetti", d.Provider)
	}
	if d.Name == "" || strings.TrimSpace(d.Name) != d.Name {
		bad("name must be non-empty, without surrounding spaces")
	}
	switch {
	case d.Provider == ProviderBraket && !strings.HasPrefix(d.ARN, "arn:aws:braket:"):
		bad("arn: a Braket device needs its device ARN (arn:aws:braket:...)")
	case d.Provider == ProviderBraket && !strings.HasSuffix(d.ARN, "/"+d.Name):
		bad("arn %s does not end in the device name %q", d.ARN, d.Name)
	case d.Provider != ProviderBraket && d.ARN != "":
		bad("arn: only aws-braket devices have one")
	}
	if d.Kind != KindQPU && d.Kind != KindSimulator {
		bad("kind %q is not qpu or simulator", d.Kind)
	}
	if d.Vendor == "" {
		bad("vendor is required")
	}
	if d.Qubits < 0 {
		bad("qubits must not be negative")
	}
	if !sourceRefRE.MatchString(d.Source) {
		bad("source %q must be one or more keys such as \"[B9] [B5]\"", d.Source)
	}
	for _, m := range sourceKeyRE.FindAllStringSubmatch(d.Source, -1) {
		if !keys[m[1]] {
			bad("source [%s] is not listed under sources", m[1])
		}
	}
	return append(errs, d.Price.validate()...)
}

func (p Price) validate() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	fields := []struct {
		name string
		v    float64
		used bool // by p.Model
	}{
		{"per_task_usd", p.PerTaskUSD, p.Model == ModelTaskShot},
		{"per_shot_usd", p.PerShotUSD, p.Model == ModelTaskShot},
		{"per_minute_usd", p.PerMinuteUSD, p.Model == ModelPerMinute},
		{"min_minutes", p.MinMinutes, p.Model == ModelPerMinute},
		{"per_second_usd", p.PerSecondUSD, p.Model == ModelPerSecond},
		{"per_hqc_usd", p.PerHQCUSD, p.Model == ModelHQC},
		{"hqc.base", p.HQC.Base, p.Model == ModelHQC},
		{"hqc.one_qubit", p.HQC.OneQubit, p.Model == ModelHQC},
		{"hqc.two_qubit", p.HQC.TwoQubit, p.Model == ModelHQC},
		{"hqc.measurement", p.HQC.Measurement, p.Model == ModelHQC},
		{"hqc.divisor", p.HQC.Divisor, p.Model == ModelHQC},
	}
	for _, f := range fields {
		switch {
		case math.IsNaN(f.v) || math.IsInf(f.v, 0):
			bad("price.%s must be a finite number", f.name)
		case f.v < 0:
			bad("price.%s must not be negative", f.name)
		case f.v != 0 && !f.used && p.Model == "":
			bad("price.%s is set but price.model is missing", f.name)
		case f.v != 0 && !f.used:
			bad("price.%s does not apply to model %q", f.name, p.Model)
		}
	}
	switch p.Model {
	case "":
		if p.Uncertain {
			bad("price.uncertain is set but price.model is missing")
		}
		if p.HQC.Unit != "" {
			bad("price.hqc.unit is set but price.model is missing")
		}
	case ModelTaskShot, ModelPerMinute, ModelPerSecond:
		if p.HQC.Unit != "" {
			bad("price.hqc does not apply to model %q", p.Model)
		}
	case ModelHQC:
		if !(p.HQC.Divisor > 0) {
			bad("price.hqc.divisor must be positive")
		}
		switch p.HQC.Unit {
		case UnitHQC:
		case UnitEHQC:
			if p.PerHQCUSD != 0 {
				bad("price.per_hqc_usd: emulator credits (EHQC) have no USD price")
			}
		default:
			bad("price.hqc.unit %q is not HQC or EHQC", p.HQC.Unit)
		}
	default:
		bad("price.model %q is not one of task+shot, per-minute, per-second, hqc", p.Model)
	}
	return errs
}
