package pricing

import (
	"errors"
	"strings"
	"testing"
)

// doc is a valid catalogue with the given device entries (YAML list items).
func doc(devices string) string {
	return `as_of: "2026-01-02"
sources:
  - "[T1] test fixture"
  - "[T2] another test fixture"
devices:` + devices + "\n"
}

const forte = `
  - provider: aws-braket
    name: Forte-1
    arn: "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1"
    kind: qpu
    vendor: ionq
    price: {model: task+shot, per_task_usd: 0.30, per_shot_usd: 0.08}
    source: "[T1]"`

func TestParseAcceptsAValidCatalogue(t *testing.T) {
	c, err := Parse([]byte(doc(forte + `
  - provider: ionq
    name: simulator
    kind: simulator
    vendor: ionq
    source: "[T1] [T2]"`)))
	if err != nil {
		t.Fatal(err)
	}
	if c.AsOf != "2026-01-02" || len(c.Sources) != 2 || len(c.Devices) != 2 {
		t.Fatalf("got %+v", c)
	}
	d := lookup(t, c, "aws-braket", "Forte-1")
	if d.Price != (Price{Model: ModelTaskShot, PerTaskUSD: 0.30, PerShotUSD: 0.08}) || d.Kind != KindQPU || d.Vendor != "ionq" {
		t.Fatalf("got %+v", d)
	}
}

func TestParseRefuses(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", doc(forte) + "currency: EUR\n", "currency"},
		{"unknown device key", doc(strings.Replace(forte, "kind: qpu", "kind: qpu\n    region: us-east-1", 1)), "region"},
		{"unknown price key", doc(strings.Replace(forte, "per_shot_usd:", "per_shot:", 1)), "per_shot"},
		{"negative price", doc(strings.Replace(forte, "per_shot_usd: 0.08", "per_shot_usd: -0.08", 1)), "per_shot_usd must not be negative"},
		{"NaN price", doc(strings.Replace(forte, "per_shot_usd: 0.08", "per_shot_usd: .nan", 1)), "finite"},
		{"infinite price", doc(strings.Replace(forte, "per_task_usd: 0.30", "per_task_usd: .inf", 1)), "finite"},
		{"duplicate device", doc(forte + forte), "listed twice"},
		{"arn not matching the name", doc(strings.Replace(forte, "name: Forte-1", "name: forte-1", 1)), "does not end in the device name"},
		{"unknown model", doc(strings.Replace(forte, "model: task+shot", "model: per-shot", 1)), `price.model "per-shot"`},
		{"field of another model", doc(strings.Replace(forte, "per_shot_usd: 0.08", "per_shot_usd: 0.08, per_minute_usd: 0.075", 1)), "per_minute_usd does not apply"},
		{"prices without a model", doc(strings.Replace(forte, "model: task+shot, ", "", 1)), "price.model is missing"},
		{"uncertain without a model", doc(strings.Replace(forte, "model: task+shot, per_task_usd: 0.30, per_shot_usd: 0.08", "uncertain: true", 1)), "uncertain is set"},
		{"undeclared source key", doc(strings.Replace(forte, `source: "[T1]"`, `source: "[T1] [B9]"`, 1)), "[B9] is not listed"},
		{"missing source", doc(strings.Replace(forte, `source: "[T1]"`, `note: no source`, 1)), "source"},
		{"free-text source", doc(strings.Replace(forte, `source: "[T1]"`, `source: "the AWS pricing page"`, 1)), "source"},
		{"bad as_of", strings.Replace(doc(forte), "2026-01-02", "Jan 2026", 1), "as_of"},
		{"no sources", strings.Replace(doc(forte), "  - \"[T1] test fixture\"\n  - \"[T2] another test fixture\"\n", "", 1), "sources"},
		{"source without key", strings.Replace(doc(forte), `"[T2] another test fixture"`, `"another test fixture"`, 1), "sources[1]"},
		{"duplicate source key", strings.Replace(doc(forte), `[T2] another`, `[T1] another`, 1), "key [T1] listed twice"},
		{"no devices", `as_of: "2026-01-02"` + "\nsources: [\"[T1] x\"]\ndevices: []\n", "at least one device"},
		{"unknown provider", doc(strings.Replace(forte, "provider: aws-braket", "provider: dwave", 1)), `provider "dwave"`},
		{"braket without arn", doc(strings.Replace(forte, `arn: "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1"`, "", 1)), "needs its device ARN"},
		{"arn on another provider", doc(strings.Replace(forte, "provider: aws-braket", "provider: ionq", 1)), "only aws-braket"},
		{"bad kind", doc(strings.Replace(forte, "kind: qpu", "kind: annealer", 1)), `kind "annealer"`},
		{"negative qubits", doc(strings.Replace(forte, "kind: qpu", "kind: qpu\n    qubits: -1", 1)), "qubits"},
		{"hqc without divisor", doc(`
  - provider: azure
    name: quantinuum.qpu.h1-1
    kind: qpu
    vendor: quantinuum
    price: {model: hqc, hqc: {base: 5, one_qubit: 1, unit: HQC}}
    source: "[T1]"`), "divisor must be positive"},
		{"hqc bad unit", doc(`
  - provider: azure
    name: quantinuum.qpu.h1-1
    kind: qpu
    vendor: quantinuum
    price: {model: hqc, hqc: {divisor: 5000, unit: USD}}
    source: "[T1]"`), `unit "USD"`},
		{"emulator credits with a USD price", doc(`
  - provider: azure
    name: quantinuum.sim.h1-1e
    kind: simulator
    vendor: quantinuum
    price: {model: hqc, per_hqc_usd: 1, hqc: {divisor: 5000, unit: EHQC}}
    source: "[T1]"`), "EHQC"},
		{"hqc formula on a task+shot price", doc(strings.Replace(forte, "per_shot_usd: 0.08", "per_shot_usd: 0.08, hqc: {divisor: 5000}", 1)), "hqc.divisor does not apply"},
		{"duplicate YAML key", doc(strings.Replace(forte, "kind: qpu", "kind: qpu\n    kind: simulator", 1)), "already defined"},
		{"two documents", doc(forte) + "---\n" + doc(forte), "more than one YAML document"},
		{"empty", "", "empty"},
		{"not a mapping", "- 1\n- 2\n", "cannot unmarshal"},
		{"too large", doc(forte) + "#" + strings.Repeat("x", maxCatalogueBytes) + "\n", "larger than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if !errors.Is(err, ErrInvalidCatalogue) {
				t.Errorf("error %v does not wrap ErrInvalidCatalogue", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestParseReportsEveryProblemAtOnce(t *testing.T) {
	bad := strings.Replace(forte, "per_shot_usd: 0.08", "per_shot_usd: -1", 1)
	bad = strings.Replace(bad, "kind: qpu", "kind: gpu", 1)
	_, err := Parse([]byte(strings.Replace(doc(bad), "2026-01-02", "soon", 1)))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"as_of", "per_shot_usd must not be negative", `kind "gpu"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
