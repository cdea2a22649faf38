package server

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/testidp"
)

// The device flow end to end against a real OpenID provider: the broker
// starts it, the person approves at the IdP, the agent's poll gets a broker
// token bound to that person; a denial is a clear error.
func TestDeviceFlowLogin(t *testing.T) {
	op := testidp.Start(t)
	t.Setenv("QB_TEST_DEVICE_SECRET", testidp.DeviceClientSecret)
	d, err := StartDev(context.Background(), DevOptions{
		Addr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0", SimAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		Auth: config.Auth{
			JWT: config.JWTAuth{
				Issuers: []config.JWTIssuer{{Name: "corp", Issuer: op.Issuer, DiscoveryURL: op.Issuer}},
				Roles:   []config.JWTRole{{Name: "people", Issuer: "corp", BoundAudiences: []string{testidp.DeviceClientID}, BrokerRole: DemoRole}},
			},
			Device: config.DeviceAuth{Issuer: op.Issuer, ClientID: testidp.DeviceClientID, ClientSecretEnv: "QB_TEST_DEVICE_SECRET"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 10 * time.Second}}

	start := func() api.DeviceStartData {
		var s api.DeviceStartData
		decodeData(t, e.broker(http.MethodPost, "/v1/auth/device/start", "", `{"role":"people"}`), &s)
		if s.Handle == "" || s.UserCode == "" || s.VerificationURI == "" || s.Interval <= 0 {
			t.Fatalf("start: %+v", s)
		}
		return s
	}
	poll := func(handle string) result {
		return e.broker(http.MethodPost, "/v1/auth/device/poll", "", `{"handle":"`+handle+`"}`)
	}

	s := start()
	want(t, "poll before approval", poll(s.Handle), http.StatusBadRequest, "authorization_pending|slow_down")
	op.Approve(t, s.UserCode, "alice", "allowed")
	var auth api.Auth
	deadline := time.Now().Add(20 * time.Second)
	for {
		time.Sleep(time.Duration(s.Interval) * time.Second)
		r := poll(s.Handle)
		if r.status == http.StatusOK {
			var resp struct {
				Auth api.Auth `json:"auth"`
			}
			if err := json.Unmarshal(r.body, &resp); err != nil {
				t.Fatal(err)
			}
			auth = resp.Auth
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("device login never completed: %s", r)
		}
	}
	if auth.EntityID != "device:corp:alice" || auth.ClientToken == "" {
		t.Fatalf("device login: %+v", auth)
	}
	e.mustJobToken(auth.ClientToken, "simulator", 10, "")
	want(t, "the handle is single use", poll(s.Handle), http.StatusBadRequest, "invalid_grant")

	s2 := start()
	op.Approve(t, s2.UserCode, "bob", "denied")
	time.Sleep(time.Duration(s2.Interval) * time.Second)
	want(t, "denied by the person", poll(s2.Handle), http.StatusBadRequest, "access_denied")
	want(t, "unknown handle", poll("not-a-handle"), http.StatusBadRequest, "invalid_grant")
}
