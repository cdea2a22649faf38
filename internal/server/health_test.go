package server

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/config"
)

// /v1/sys/health answers with Vault's codes: 501 before initialization,
// 200 when serving, 503 while draining (so a load balancer moves on) —
// and requests are still served while draining.
func TestHealthStatusCodes(t *testing.T) {
	cfg := &config.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir()}
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	cfg.PublicURL = ""
	s, err := Start(context.Background(), Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	e := &env{t: t, d: &Dev{Server: s}, hc: &http.Client{Timeout: 10 * time.Second}}
	health := func() (int, api.HealthData) {
		r := e.broker(http.MethodGet, "/v1/sys/health", "", "")
		var h api.HealthData
		decodeData(t, r, &h)
		return r.status, h
	}
	if st, h := health(); st != http.StatusNotImplemented || h.Initialized || h.Store != "ok" {
		t.Fatalf("before initialization: %d %+v", st, h)
	}
	root, _, err := s.Initialize(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st, h := health(); st != http.StatusOK || !h.Initialized || h.Audit != "ok" || h.Draining {
		t.Fatalf("serving: %d %+v", st, h)
	}
	s.Broker.Drain()
	if st, h := health(); st != http.StatusServiceUnavailable || !h.Draining {
		t.Fatalf("draining: %d %+v", st, h)
	}
	want(t, "a request while draining", e.broker(http.MethodGet, "/v1/auth/token/lookup-self", root, ""), http.StatusOK)
}
