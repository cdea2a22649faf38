package audit

import (
	"testing"
)

func benchSink(b *testing.B) *FileSink {
	b.Helper()
	s, err := OpenFile(b.TempDir()+"/audit.log", FileOptions{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

func reportSyncs(b *testing.B, s *FileSink) {
	events, syncs := s.Stats()
	if events != uint64(b.N) {
		b.Fatalf("%d events durable, want %d", events, b.N)
	}
	b.ReportMetric(float64(syncs)/float64(b.N), "syncs/op")
}

func BenchmarkWriteSerial(b *testing.B) {
	s := benchSink(b)
	e := &Event{Type: "decision", Agent: "bench", Decision: DecisionAllow}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Write(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
	reportSyncs(b, s)
}

func BenchmarkWriteParallel(b *testing.B) {
	s := benchSink(b)
	ctx := b.Context()
	b.SetParallelism(32)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		e := &Event{Type: "decision", Agent: "bench", Decision: DecisionAllow}
		for pb.Next() {
			if err := s.Write(ctx, e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportSyncs(b, s)
}

// BenchmarkWriteParallelSigned is BenchmarkWriteParallel with the hash
// chain and a signed checkpoint every 1000 events: checkpoints ride in the
// batch they close, so syncs/op should match the unsigned sink.
func BenchmarkWriteParallelSigned(b *testing.B) {
	_, priv := newKey(b)
	s, err := OpenFile(b.TempDir()+"/audit.log", FileOptions{Logger: quietLogger(), Signer: priv})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	ctx := b.Context()
	b.SetParallelism(32)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		e := &Event{Type: "decision", Agent: "bench", Decision: DecisionAllow}
		for pb.Next() {
			if err := s.Write(ctx, e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportSyncs(b, s)
}
