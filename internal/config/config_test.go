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
