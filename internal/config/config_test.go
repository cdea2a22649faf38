package config

import (
	"strings"
	"testing"
)

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte("listen: 127.0.0.1:9000\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.PublicURL != "http://127.0.0.1:9000" || c.Seal.Type != "file" || c.Seal.Path != "./qbroker-data/seal.key" || len(c.Devices) != len(DefaultDevices()) || len(c.Devices) < 4 {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

func TestParseEmpty(t *testing.T) {
	if _, err := Parse(nil); err != nil {
		t.Fatalf("empty config should get defaults: %v", err)
	}
}

func TestUnknownFieldRefused(t *testing.T) {
	_, err := Parse([]byte("listen: x\nlisten_addr: y\n"))
	if err == nil || !strings.Contains(err.Error(), "listen_addr") {
		t.Fatalf("want error naming the unknown field, got %v", err)
	}
}

func TestEveryProblemReported(t *testing.T) {
	_, err := Parse([]byte(`
public_url: "ftp://x"
seal: {type: kms}
devices:
  - {provider: ionq, name: a, kind: gpu, qubits: 0}
  - {provider: ionq, name: a, kind: qpu, qubits: 2}
log: {level: loud}
time_zone: Mars/Olympus
`))
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"public_url", "seal.type", "kind \"gpu\"", "qubits must be positive", "listed twice", "log.level", "time_zone"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
}

func TestAPILimits(t *testing.T) {
	c, err := Parse([]byte(`
api_limits:
  per_source_per_second: 20
  per_identity_per_second: 5.5
  per_identity_burst: 11
  exempt_sources: [10.0.0.0/8, 192.168.1.7, "fd00::/8"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if !c.APILimits.Enabled() || c.APILimits.PerSourceBurst != 0 || c.APILimits.PerIdentityBurst != 11 {
		t.Fatalf("api_limits not read: %+v", c.APILimits)
	}
	got := c.APILimits.ExemptPrefixes()
	if len(got) != 3 || got[0].String() != "10.0.0.0/8" || got[1].String() != "192.168.1.7/32" || got[2].String() != "fd00::/8" {
		t.Fatalf("exempt prefixes: %v", got)
	}
	if d, err := Parse(nil); err != nil || d.APILimits.Enabled() {
		t.Fatalf("api limits must be off by default: %+v %v", d.APILimits, err)
	}
}

func TestAPILimitsProblems(t *testing.T) {
	_, err := Parse([]byte(`
api_limits:
  per_source_per_second: -1
  per_source_burst: -2
  per_identity_per_second: .nan
  exempt_sources: [10.0.0.0/33, not-an-address, 10.1.2.3]
`))
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{
		"api_limits.per_source_per_second: -1 must not be negative",
		"api_limits.per_source_burst: -2 must not be negative",
		"api_limits.per_identity_per_second: NaN is not a number of requests per second",
		`api_limits.exempt_sources[0]: "10.0.0.0/33" is not a CIDR`,
		`api_limits.exempt_sources[1]: "not-an-address" is not a CIDR`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "exempt_sources[2]") {
		t.Errorf("a single address is a valid exempt source: %v", err)
	}
	_, err = Parse([]byte("api_limits: {per_identity_burst: 10}\n"))
	if err == nil || !strings.Contains(err.Error(), "api_limits.per_identity_burst: 10 is set but api_limits.per_identity_per_second is 0 (off)") {
		t.Fatalf("a burst without a rate: %v", err)
	}
}
