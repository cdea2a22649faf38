package policy

import (
	"fmt"
	"strings"
	"testing"
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
