package pricing

import (
	"strings"
	"testing"
	"time"
)

func TestEmbeddedCatalogueLoads(t *testing.T) {
	c := load(t)
	if _, err := time.Parse(time.DateOnly, c.AsOf); err != nil {
		t.Errorf("as_of %q: %v", c.AsOf, err)
	}
	if len(c.Devices) < 20 {
		t.Errorf("only %d devices", len(c.Devices))
	}
	// Every listed source is cited by some entry: no dead citations.
	cited := map[string]bool{}
	for _, d := range c.Devices {
		for _, m := range sourceKeyRE.FindAllStringSubmatch(d.Source, -1) {
			cited[m[1]] = true
		}
	}
	for _, s := range c.Sources {
		key := sourceEntryRE.FindStringSubmatch(s)[1]
		if !cited[key] {
			t.Errorf("source [%s] is cited by no device", key)
		}
	}
	// Each provider the broker may talk to but Rigetti QCS (no device names
	// in the reference) has entries.
	for _, p := range []string{ProviderBraket, ProviderIonQ, ProviderIBM, ProviderAzure, ProviderQuantinuum} {
		n := 0
		for _, d := range c.Devices {
			if d.Provider == p {
				n++
			}
		}
		if n == 0 {
			t.Errorf("no %s devices", p)
		}
	}
}

func TestLookup(t *testing.T) {
	c := load(t)
	d, ok := c.Lookup("aws-braket", "Forte-1")
	if !ok || d.ARN != "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1" || d.Vendor != "ionq" || d.Kind != KindQPU {
		t.Fatalf("Lookup Forte-1: %+v, %v", d, ok)
	}
	// Names are the provider's own: IonQ direct and Braket differ.
	if _, ok := c.Lookup("ionq", "Forte-1"); ok {
		t.Error("ionq/Forte-1 found; IonQ calls it qpu.forte-1")
	}
	if _, ok := c.Lookup("aws-braket", "forte-1"); ok {
		t.Error("lookup is case-insensitive; names must match exactly")
	}
	if _, ok := c.Lookup("", ""); ok {
		t.Error("empty lookup found a device")
	}

	for _, arn := range []string{
		"arn:aws:braket:::device/quantum-simulator/amazon/sv1",
		"arn:aws:braket:us-west-1::device/qpu/rigetti/Ankaa-3",
		"arn:aws:braket:eu-north-1::device/qpu/iqm/Garnet",
	} {
		d, ok := c.LookupARN(arn)
		if !ok || d.ARN != arn || !strings.HasSuffix(arn, "/"+d.Name) {
			t.Errorf("LookupARN(%s): %+v, %v", arn, d, ok)
		}
	}
	// A retired device, a wrong region and the empty ARN are not found.
	for _, arn := range []string{
		"arn:aws:braket:us-east-1::device/qpu/ionq/Aria-1",
		"arn:aws:braket:us-east-1::device/qpu/rigetti/Ankaa-3",
		"",
	} {
		if d, ok := c.LookupARN(arn); ok {
			t.Errorf("LookupARN(%q) found %s/%s", arn, d.Provider, d.Name)
		}
	}
}

// Load parses afresh: one caller changing its catalogue changes no other's.
func TestLoadReturnsIndependentCopies(t *testing.T) {
	a, b := load(t), load(t)
	a.Devices[0].Price.PerShotUSD = 1000
	a.Sources[0] = "changed"
	if b.Devices[0].Price.PerShotUSD == 1000 || b.Sources[0] == "changed" {
		t.Fatal("two Loads share state")
	}
	if c := load(t); c.Devices[0].Price.PerShotUSD == 1000 {
		t.Fatal("a change survived into a later Load")
	}
}
