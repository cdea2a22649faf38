package ibmsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestBackendListing(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.StepDelay = time.Hour })
	h.login()
	h.submit(crnA, samplerJob(kingston, 10, bellISA))

	// Without IBM-API-Version, or before 2025-01-01: names only.
	for _, v := range []string{"", "2024-01-01"} {
		res := h.do(hdr{auth: "Bearer " + h.token, crn: crnA, version: v}, http.MethodGet, "/backends", "")
		if res.status != http.StatusOK || string(res.body) != `{"devices":["ibm_kingston","ibm_torino"]}` {
			t.Errorf("version %q: %d %s", v, res.status, res.body)
		}
	}
	res := h.do(h.bearer(crnA), http.MethodGet, "/backends", "")
	var list struct {
		Devices []device `json:"devices"`
	}
	if err := json.Unmarshal(res.body, &list); err != nil || len(list.Devices) != 2 {
		t.Fatalf("v2 list: %d %s", res.status, res.body)
	}
	k := list.Devices[0]
	if k.Name != kingston || k.Qubits != 156 || k.Status.Name != "online" || k.IsSimulator ||
		k.ProcessorType.Family != "Heron" || k.QueueLength != 1 || list.Devices[1].QueueLength != 0 {
		t.Fatalf("devices %+v", list.Devices)
	}

	res = h.do(h.bearer(crnA), http.MethodGet, "/backends/ibm_torino/configuration", "")
	var cfg backendConfig
	if err := json.Unmarshal(res.body, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.BackendName != "ibm_torino" || cfg.NQubits != 133 || cfg.MaxShots != 100_000 || cfg.MaxExperiments != 300 ||
		fmt.Sprint(cfg.BasisGates) != "[cz id rx rz rzz sx x]" || len(cfg.CouplingMap) != 2*132 || cfg.Simulator {
		t.Fatalf("configuration %s", res.body)
	}
	res = h.do(h.bearer(crnA), http.MethodGet, "/backends/ibm_kingston/status", "")
	if !strings.Contains(string(res.body), `"length_queue":1`) || !strings.Contains(string(res.body), `"state":true`) {
		t.Fatalf("status %s", res.body)
	}
	// Backends are behind authentication and the instance check too.
	expectError(t, "backends without a token", h.do(hdr{crn: crnA}, http.MethodGet, "/backends", ""), http.StatusUnauthorized, codeInvalidCredentials)
	expectError(t, "configuration for a foreign CRN", h.do(hdr{auth: "Bearer " + h.token, crn: crnA + "x"}, http.MethodGet, "/backends/ibm_torino/configuration", ""),
		http.StatusForbidden, codeNotAuthorized)
}

func TestRoutes(t *testing.T) {
	h := newHarness(t, nil)
	h.login()
	res := h.do(hdr{}, http.MethodGet, "/versions", "")
	if res.status != http.StatusOK || !strings.Contains(string(res.body), `"version":"2026-03-15","status":"live"`) {
		t.Errorf("versions: %d %s", res.status, res.body)
	}
	expectError(t, "unknown route", h.do(h.bearer(crnA), http.MethodGet, "/programs", ""), http.StatusNotFound, codeNotFound)
	res = h.do(h.bearer(crnA), http.MethodPut, "/jobs", "")
	expectError(t, "wrong method", res, http.StatusMethodNotAllowed, codeNotFound)
	if res.header.Get("Allow") == "" {
		t.Error("405 without Allow")
	}
	if res.header.Get("Content-Type") != "application/json" {
		t.Errorf("error content type %q", res.header.Get("Content-Type"))
	}
}
