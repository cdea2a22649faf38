package bench

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// percentiles returns the exact nearest-rank p50, p90, p99 and maximum of
// samples, which it sorts in place. No samples gives zeros.
func percentiles(samples []time.Duration) (p50, p90, p99, maxD time.Duration) {
	if len(samples) == 0 {
		return 0, 0, 0, 0
	}
	slices.Sort(samples)
	return rank(samples, 50), rank(samples, 90), rank(samples, 99), samples[len(samples)-1]
}

// rank is the nearest-rank p-th percentile of sorted: the smallest sample
// with at least p% of the samples at or below it.
func rank(sorted []time.Duration, p int) time.Duration {
	n := len(sorted)
	k := (p*n + 99) / 100 // ceil(p*n/100)
	return sorted[max(k, 1)-1]
}

// fmtDur prints a latency in µs below a millisecond, in ms below ten
// seconds, and in seconds beyond.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return strconv.FormatInt(d.Microseconds(), 10) + "µs"
	case d < 10*time.Second:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + "ms"
	default:
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
	}
}

// waitShare is TokenWait as a percentage of the workers' measured time.
func (r Result) waitShare() float64 {
	total := float64(r.Elapsed) * float64(r.Concurrency)
	if total <= 0 {
		return 0
	}
	return 100 * float64(r.TokenWait) / total
}

// String is one line: step, concurrency, ops/s, p50/p90/p99/max and
// errors (with the first error, if any).
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-13s conc=%-3d ops/s=%-9.1f p50=%s p90=%s p99=%s max=%s ops=%d errors=%d",
		r.Step, r.Concurrency, r.OpsPerSec, fmtDur(r.P50), fmtDur(r.P90), fmtDur(r.P99), fmtDur(r.Max), r.Ops, r.Errors)
	if r.TokenWait > 0 {
		fmt.Fprintf(&b, " token-wait=%.1f%%", r.waitShare())
	}
	if r.FirstError != "" {
		fmt.Fprintf(&b, " first-error=%q", r.FirstError)
	}
	return b.String()
}

// WriteTable writes rs as a markdown table, one row per result.
func WriteTable(w io.Writer, rs []Result) {
	var b strings.Builder
	b.WriteString("| step | conc | ops | ops/s | p50 | p90 | p99 | max | errors |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s | %d | %d | %.1f | %s | %s | %s | %s | %d |\n",
			r.Step, r.Concurrency, r.Ops, r.OpsPerSec, fmtDur(r.P50), fmtDur(r.P90), fmtDur(r.P99), fmtDur(r.Max), r.Errors)
	}
	_, _ = io.WriteString(w, b.String())
}
