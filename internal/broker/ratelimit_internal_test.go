package broker

import (
	"fmt"
	"testing"
	"time"
)

func TestSourceBucket(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.7":         "198.51.100.7",
		"::ffff:198.51.100.7":  "198.51.100.7",
		"2001:db8:1:2:aaaa::1": "2001:db8:1:2::/64",
		"2001:db8:1:2:bbbb::9": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":      "2001:db8:1:3::/64",
		"fe80::1%eth0":         "fe80::/64",
		"not-an-address":       "not-an-address",
	} {
		if got := sourceBucket(in); got != want {
			t.Errorf("sourceBucket(%q) = %q, want %q", in, got, want)
		}
	}
}

// Failed logins lock out the whole /64: a host cannot step to the next
// address of its prefix for a fresh failure budget.
func TestLoginLockoutSpansTheSlash64(t *testing.T) {
	g := newLoginGuard(LoginLimits{FailuresPerMinute: 10})
	now := time.Now()
	for i := range 10 {
		src := fmt.Sprintf("2001:db8:7:7::%x", i+1)
		if err := g.admit(src, now); err != nil {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
		g.failed(src, now)
	}
	if err := g.admit("2001:db8:7:7:ffff::1", now); err == nil {
		t.Fatal("another address of the same /64 got a fresh failure budget")
	}
	if err := g.admit("2001:db8:7:8::1", now); err != nil {
		t.Fatalf("another /64: %v", err)
	}
}

// A full set of buckets never forgets one that carries state: new keys
// share one overflow bucket instead, so an attacker with many addresses
// cannot reset its own (or anyone's) bucket by filling the set.
func TestFullLimiterSetNeverResetsABucket(t *testing.T) {
	l := newLimiters(0.001, 2) // practically no refill during the test
	l.max = 10
	now := time.Now()
	victim := l.get("victim")
	victim.AllowN(now, 2)
	for i := range 9 {
		l.get(fmt.Sprint("k", i)).AllowN(now, 1) // stateful: not evictable
	}
	admitted := 0
	for i := range 100 {
		if l.get(fmt.Sprint("new", i)).AllowN(now, 1) {
			admitted++
		}
	}
	if admitted != 2 {
		t.Fatalf("100 new keys on a full set: %d admitted, want 2 (one shared bucket of burst 2)", admitted)
	}
	if l.get("victim") != victim || victim.TokensAt(now) >= 1 {
		t.Fatal("filling the set reset an exhausted bucket")
	}
}
