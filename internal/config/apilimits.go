package config

import (
	"math"
	"net/netip"
	"strings"
)

// APILimits are request rate limits on the broker API, separate from the
// spend rates of budgets: token buckets per client address (applied before
// authentication) and per authenticated identity (the agent behind a broker
// token, shared by all its tokens). Zero rates are off. See docs/budgets.md.
type APILimits struct {
	PerSourcePerSecond float64 `yaml:"per_source_per_second"` // requests per second per client address; 0: off
	PerSourceBurst     int     `yaml:"per_source_burst"`      // 0: twice the rate (at least 1)
	// PerIdentityPerSecond limits each agent (all its tokens together);
	// gateway tokens are exempt (they carry many agents' traffic).
	PerIdentityPerSecond float64 `yaml:"per_identity_per_second"`
	PerIdentityBurst     int     `yaml:"per_identity_burst"` // 0: twice the rate (at least 1)
	// ExemptSources are CIDRs (or single addresses) that per-source limits
	// never apply to: load balancers' health checks, in-cluster gateways.
	ExemptSources []string `yaml:"exempt_sources"`
}

// Enabled reports whether any limit is on.
func (a APILimits) Enabled() bool {
	return a.PerSourcePerSecond > 0 || a.PerIdentityPerSecond > 0
}

// ExemptPrefixes parses ExemptSources (validated by Validate; an entry
// that does not parse is skipped).
func (a APILimits) ExemptPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range a.ExemptSources {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// parsePrefix reads a CIDR, or a single address as its /32 or /128.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (a *APILimits) validate(bad func(string, ...any)) {
	for _, l := range []struct {
		name, burstName string
		rate            float64
		burst           int
	}{
		{"api_limits.per_source_per_second", "api_limits.per_source_burst", a.PerSourcePerSecond, a.PerSourceBurst},
		{"api_limits.per_identity_per_second", "api_limits.per_identity_burst", a.PerIdentityPerSecond, a.PerIdentityBurst},
	} {
		switch {
		case math.IsNaN(l.rate) || math.IsInf(l.rate, 0):
			bad("%s: %v is not a number of requests per second", l.name, l.rate)
		case l.rate < 0:
			bad("%s: %v must not be negative (0 turns the limit off)", l.name, l.rate)
		}
		switch {
		case l.burst < 0:
			bad("%s: %d must not be negative (0: twice the rate)", l.burstName, l.burst)
		case l.burst > 0 && l.rate == 0:
			bad("%s: %d is set but %s is 0 (off); set the rate too, or drop the burst", l.burstName, l.burst, l.name)
		}
	}
	for i, s := range a.ExemptSources {
		if _, err := parsePrefix(s); err != nil {
			bad("api_limits.exempt_sources[%d]: %q is not a CIDR (e.g. 10.0.0.0/8) or an IP address", i, s)
		}
	}
}
