// Package metrics holds qbroker's Prometheus metrics, on a registry of its
// own (no global default registry). Labels are bounded and never carry
// secrets or identities: route patterns, status codes, event types and
// decisions — not paths, agents or tokens.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the broker's set of metrics.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	events   *prometheus.CounterVec
	stages   *prometheus.HistogramVec
	upstream *prometheus.HistogramVec
}

// New builds the metrics on a fresh registry, with Go and process
// collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qbroker_http_requests_total", Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "qbroker_http_request_duration_seconds", Help: "HTTP request latency by route pattern.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qbroker_audit_events_total", Help: "Durable audit events by type and decision: logins, issuances, redemptions, submissions, refusals, revocations, anomalies.",
		}, []string{"type", "decision"}),
	}
	m.stages = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "qbroker_stage_duration_seconds", Help: "Time spent in the broker's stages: decision (Cedar), budget (the reservation's checks and insert), issue (a job token, end to end), redeem, login.",
		Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	}, []string{"stage"})
	m.upstream = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "qbroker_upstream_duration_seconds", Help: "Gateway requests to the providers, by provider, until the answer's headers.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"provider"})
	m.reg.MustRegister(m.requests, m.latency, m.events, m.stages, m.upstream, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Event counts a durable audit event.
func (m *Metrics) Event(typ, decision string) {
	if m == nil {
		return
	}
	m.events.WithLabelValues(typ, decision).Inc()
}

// Stage records the duration of one broker stage (decision, issue,
// redeem, login).
func (m *Metrics) Stage(stage string, d time.Duration) {
	if m == nil {
		return
	}
	m.stages.WithLabelValues(stage).Observe(d.Seconds())
}

// Upstream records one gateway request to a provider.
func (m *Metrics) Upstream(provider string, d time.Duration) {
	if m == nil {
		return
	}
	m.upstream.WithLabelValues(provider).Observe(d.Seconds())
}

// GaugeFunc registers a gauge read at scrape time (e.g. the audit sink's
// fsync count).
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// Middleware measures every request under its route pattern (the mux's
// pattern, never the raw path), or under fallback when the handler has no
// patterns (the gateway).
func (m *Metrics) Middleware(fallback string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = fallback
		}
		m.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}
