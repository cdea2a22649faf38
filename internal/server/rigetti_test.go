package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/provider/rigetti"
	"github.com/qbroker/qbroker/internal/sim/rigettisim"
)

// Rigetti QCS token custody: the broker keeps the rotating refresh token
// sealed, stores each rotation before it uses the access token, and after
// a restart mints from the latest rotation (a lost rotation would lock the
// account out). The original refresh token is dead once used.
func TestRigettiTokenCustody(t *testing.T) {
	sim, err := rigettisim.New(rigettisim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	first := sim.IssueRefreshToken()
	dir := t.TempDir()
	rc := config.Rigetti{Enabled: true, Issuer: srv.URL + sim.IssuerPath(), ClientID: sim.ClientID()}
	d := startDevWith(t, DevOptions{DataDir: dir, Rigetti: rc})
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 10 * time.Second}}
	want(t, "store the refresh token", e.broker(http.MethodPost, "/v1/sys/providers/rigetti/credential", d.RootToken, fmt.Sprintf(`{"api_key":%q}`, first)), http.StatusNoContent)

	getUser := func(access string) int {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/auth:getUser", nil)
		req.Header.Set("Authorization", "Bearer "+access)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	c, _, err := d.Broker.Upstream(context.Background(), "rigetti", "lab")
	if err != nil || getUser(c.Secret) != http.StatusOK {
		t.Fatalf("first access token: %v", err)
	}
	stored, _ := d.Broker.Credential(context.Background(), "rigetti")
	if stored == first || stored == "" {
		t.Fatal("the rotated refresh token was not stored")
	}
	e.wantNotInAudit(first, stored, c.Secret)
	assertDirHasNo(t, dir, first, stored, c.Secret)
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	d2 := startDevWith(t, DevOptions{DataDir: dir, Rigetti: rc})
	c2, _, err := d2.Broker.Upstream(context.Background(), "rigetti", "lab")
	if err != nil || getUser(c2.Secret) != http.StatusOK {
		t.Fatalf("after a restart, minting from the stored rotation: %v", err)
	}
	// The refresh token the operator enrolled is spent.
	m := &rigetti.Minter{Issuer: rc.Issuer, ClientID: rc.ClientID}
	if _, _, _, err := m.Mint(context.Background(), first, ""); !errors.Is(err, rigetti.ErrRefreshRejected) {
		t.Fatalf("the enrolled refresh token still works: %v", err)
	}
}
