package config

import "net/netip"

// TrustedPrefixes parses TrustedProxies (validated by Validate; an entry
// that does not parse is skipped).
func (c *Config) TrustedPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range c.TrustedProxies {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func (c *Config) validateProxies(bad func(string, ...any)) {
	for i, s := range c.TrustedProxies {
		p, err := parsePrefix(s)
		switch {
		case err != nil:
			bad("trusted_proxies[%d]: %q is not a CIDR or an IP address", i, s)
		case p.Bits() == 0:
			bad("trusted_proxies[%d]: %q trusts every address, so any client could name its own source", i, s)
		}
	}
}
