package config

import (
	"strings"
	"testing"
)

func TestTrustedProxies(t *testing.T) {
	c, err := Parse([]byte("trusted_proxies: [10.0.0.0/8, 192.0.2.7, \"2001:db8::/32\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := c.TrustedPrefixes()
	if len(got) != 3 || got[1].String() != "192.0.2.7/32" || got[2].String() != "2001:db8::/32" {
		t.Fatalf("prefixes: %v", got)
	}
	_, err = Parse([]byte("trusted_proxies: [0.0.0.0/0, not-a-proxy, 10.0.0.0/8]\n"))
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{
		`trusted_proxies[0]: "0.0.0.0/0" trusts every address`,
		`trusted_proxies[1]: "not-a-proxy" is not a CIDR or an IP address`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "trusted_proxies[2]") {
		t.Errorf("10.0.0.0/8 is a valid proxy range: %v", err)
	}
}
