package policy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// benchFiles is a realistic set of 20 policies: the 4 demo policies plus 16
// more with role/team membership, attribute, tag and context conditions.
func benchFiles() []File {
	var b strings.Builder
	roles := []string{"submit", "monitor", "admin", "research"}
	for i := range 12 {
		role := roles[i%len(roles)]
		fmt.Fprintf(&b, `@id("bench-permit-%d") permit(principal in Role::%q, action == Action::"SubmitJob", resource in Provider::"p%d")
  when { context.shots <= %d && resource.qubits >= context.qubits && context.estimated_cost_usd.lessThan(decimal("%d.50")) };
`, i, role, i, 1000*(i+1), i+1)
	}
	b.WriteString(`@id("bench-team-read") permit(principal in Team::"research", action == Action::"ReadJob", resource);
@id("bench-labels") permit(principal, action == Action::"ListDevices", resource) when { principal.hasTag("env") && principal.getTag("env") == "prod" };
@id("bench-office") permit(principal, action == Action::"IssueCredentials", resource) when { context has source_ip && context.source_ip.isInRange(ip("10.0.0.0/8")) };
@id("bench-no-night") forbid(principal, action == Action::"SubmitJob", resource) when { resource.kind == "qpu" && (context.hour < 6 || context.hour > 22) };
`)
	return append(DefaultFiles(), File{Name: "bench.cedar", Data: []byte(b.String())})
}

func BenchmarkDecide(b *testing.B) {
	e, err := New(benchFiles())
	if err != nil {
		b.Fatal(err)
	}
	if n := len(e.PolicyIDs()); n != 20 {
		b.Fatalf("%d policies, want 20", n)
	}
	agent := Agent{ID: "agent-1", Role: "demo", Owner: "alice", Team: "research", AuthMethod: "approle", Labels: map[string]string{"env": "prod"}}
	allow := submit(agent, simulator(), 1000)
	allow.Context.SourceIP = "10.0.0.1"
	allow.Context.EstimatedCostUSD = 0.3
	deny := submit(agent, forte(), 1000)
	deny.Context = allow.Context
	b.Run("allow", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if d := e.Decide(allow); !d.Allowed {
				b.Fatal(d.Reason)
			}
		}
	})
	b.Run("deny", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if d := e.Decide(deny); d.Allowed {
				b.Fatal(d.Reason)
			}
		}
	})
	benchScaled(b)
}

func BenchmarkNew(b *testing.B) {
	files := benchFiles()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(files); err != nil {
			b.Fatal(err)
		}
	}
}

// scaledFiles returns n policies: the 4 demo policies plus generated ones
// in the shape of benchFiles (role/provider scopes with context and
// attribute conditions, team reads, label and address checks, a forbid).
func scaledFiles(n int) []File {
	var b strings.Builder
	roles := []string{"submit", "monitor", "admin", "research"}
	for i := range n - 4 {
		role := roles[i%len(roles)]
		switch i % 5 {
		case 0, 1, 2:
			fmt.Fprintf(&b, `@id("p-%d") permit(principal in Role::%q, action == Action::"SubmitJob", resource in Provider::"p%d")
  when { context.shots <= %d && resource.qubits >= context.qubits && context.estimated_cost_usd.lessThan(decimal("%d.50")) };
`, i, role, i, 1000*(i+1), i+1)
		case 3:
			fmt.Fprintf(&b, `@id("p-%d") permit(principal in Team::"team-%d", action == Action::"ReadJob", resource is Job) when { resource.owner == principal };
`, i, i)
		case 4:
			fmt.Fprintf(&b, `@id("p-%d") forbid(principal, action == Action::"SubmitJob", resource) when { resource.kind == "qpu" && principal.hasTag("block-%d") };
`, i, i)
		}
	}
	return append(DefaultFiles(), File{Name: "scaled.cedar", Data: []byte(b.String())})
}

func scaledRequest() Request {
	agent := Agent{ID: "agent-1", Role: "demo", Owner: "alice", Team: "research", AuthMethod: "approle", Labels: map[string]string{"env": "prod"}}
	r := submit(agent, simulator(), 1000)
	r.Context.SourceIP = "10.0.0.1"
	r.Context.EstimatedCostUSD = 0.3
	return r
}

// benchScaled adds BenchmarkDecide/policies=10|100|1000.
func benchScaled(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		e, err := New(scaledFiles(n))
		if err != nil {
			b.Fatal(err)
		}
		if got := len(e.PolicyIDs()); got != n {
			b.Fatalf("%d policies, want %d", got, n)
		}
		req := scaledRequest()
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d := e.Decide(req); !d.Allowed {
					b.Fatal(d.Reason)
				}
			}
		})
	}
}

// TestDecideLatencyPercentiles times single decisions at 10, 100 and 1000
// policies and logs p50/p99 (go test -run Percentiles -v). It asserts only
// a loose ceiling, so it stays a smoke test on slow machines.
func TestDecideLatencyPercentiles(t *testing.T) {
	for _, n := range []int{10, 100, 1000} {
		e := newEngine(t, scaledFiles(n)...)
		req := scaledRequest()
		iters := 20000 / n * 10
		if iters > 5000 {
			iters = 5000
		}
		lat := make([]time.Duration, iters)
		for i := range lat {
			start := time.Now()
			d := e.Decide(req)
			lat[i] = time.Since(start)
			if !d.Allowed {
				t.Fatal(d.Reason)
			}
		}
		slices.Sort(lat)
		p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
		t.Logf("policies=%d decisions=%d p50=%v p99=%v", n, iters, p50, p99)
		if p50 > 50*time.Millisecond {
			t.Errorf("policies=%d: p50 %v is absurd", n, p50)
		}
	}
}
