package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// benchConcurrency is the number of concurrent clients in the benchmarks.
const benchConcurrency = 32

// reportCPU adds the process CPU time (user+system) per operation, a
// steadier basis for comparing direct and gateway throughput than wall time
// on a shared machine. Call it right after the timed loop; start is from
// cpuNow before it.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64((cpuNow()-start).Microseconds())/float64(b.N), "cpu-µs/op")
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func setParallelism(b *testing.B) {
	p := benchConcurrency / runtime.GOMAXPROCS(0)
	if p < 1 {
		p = 1
	}
	b.SetParallelism(p)
}

func benchHarness(b *testing.B) *harness {
	h := newHarness(b, func(s *harnessSettings) { s.gw.Logger = slog.New(slog.DiscardHandler) })
	h.upstream.quiet.Store(true)
	h.client = &http.Client{Transport: NewTransport()}
	b.Cleanup(h.client.CloseIdleConnections)
	return h
}

// completedJob submits a Bell job through the gateway and waits for it.
func completedJob(b *testing.B, h *harness) string {
	b.Helper()
	id := jobID(b, h.submit(h.mint(h.claims()), bellBody(100, testDevice)))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(string(h.do(http.MethodGet, "/ionq/v0.4/jobs/"+id, aliceToken, "").Body), `"completed"`) {
		if time.Now().After(deadline) {
			b.Fatal("job did not complete")
		}
		time.Sleep(2 * time.Millisecond)
	}
	return id
}

func getOnce(b *testing.B, client *http.Client, url, auth string) bool {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", auth)
	resp, err := client.Do(req)
	if err != nil {
		b.Error(err)
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Errorf("status %d", resp.StatusCode)
		return false
	}
	return true
}

func benchGET(b *testing.B, client *http.Client, url, auth string) {
	setParallelism(b)
	b.ResetTimer()
	start := cpuNow()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !getOnce(b, client, url, auth) {
				return
			}
		}
	})
	reportCPU(b, start)
}

// benchGETSerial measures latency: one request at a time.
func benchGETSerial(b *testing.B, client *http.Client, url, auth string) {
	for b.Loop() {
		if !getOnce(b, client, url, auth) {
			return
		}
	}
}

// BenchmarkStatusRead compares GET /jobs/{id} of a completed job straight
// from the emulator with the same read through the gateway (broker-token
// check, ownership check, credential injection, result-URL rewrite): at
// concurrency 32 for throughput (target: gateway ≥ 0.4× direct), and one at
// a time for the added latency (target: ≤ 0.2 ms).
func BenchmarkStatusRead(b *testing.B) {
	h := benchHarness(b)
	id := completedJob(b, h)
	direct, gw := h.upSrv.URL+"/v0.4/jobs/"+id, h.srv.URL+"/ionq/v0.4/jobs/"+id
	b.Run("direct", func(b *testing.B) { benchGET(b, h.client, direct, "apiKey "+realKey) })
	b.Run("gateway", func(b *testing.B) { benchGET(b, h.client, gw, "apiKey "+aliceToken) })
	b.Run("direct-serial", func(b *testing.B) { benchGETSerial(b, h.client, direct, "apiKey "+realKey) })
	b.Run("gateway-serial", func(b *testing.B) { benchGETSerial(b, h.client, gw, "apiKey "+aliceToken) })
}

func benchPOST(b *testing.B, client *http.Client, url string, auths []string, body string) {
	var next atomic.Int64
	setParallelism(b)
	b.ResetTimer()
	start := cpuNow()
	defer reportCPU(b, start)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
			req.Header.Set("Authorization", auths[int(i)%len(auths)])
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkSubmit compares Bell submissions straight to the emulator with
// submissions through the gateway (verify, strict decode, scope checks,
// redeem, two audit events, forward, record), at concurrency 32. Job tokens
// are minted before the timer starts. The target is gateway ≥ 0.25× direct.
func BenchmarkSubmit(b *testing.B) {
	h := benchHarness(b)
	body := bellBody(100, testDevice)
	b.Run("direct", func(b *testing.B) {
		benchPOST(b, h.client, h.upSrv.URL+"/v0.4/jobs", []string{"apiKey " + realKey}, body)
	})
	b.Run("gateway", func(b *testing.B) {
		auths := make([]string, b.N)
		for i := range auths {
			auths[i] = "apiKey " + h.mint(h.claims())
		}
		benchPOST(b, h.client, h.srv.URL+"/ionq/v0.4/jobs", auths, body)
	})
}
