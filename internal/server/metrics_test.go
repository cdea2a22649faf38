package server

import (
	"net/http"
	"strings"
	"testing"
)

// /metrics counts requests by route pattern and audit events by type and
// decision — and carries no secret or identity.
func TestMetrics(t *testing.T) {
	e := newEnv(t)
	a := e.mustLogin(e.d.RoleID, e.d.SecretID)
	e.mustSubmit(e.mustJobToken(a.ClientToken, "simulator", 100, "").Token, bell())
	want(t, "bad login", e.login(e.d.RoleID, "wrong"), http.StatusBadRequest, "")
	r := e.do(http.MethodGet, e.d.BrokerURL+"/metrics", "")
	body := string(r.body)
	for _, w := range []string{
		`qbroker_http_requests_total{code="200",route="POST /v1/auth/approle/login"} 1`,
		`qbroker_http_requests_total{code="400",route="POST /v1/auth/approle/login"} 1`,
		`qbroker_audit_events_total{decision="allow",type="login"} 1`,
		`qbroker_audit_events_total{decision="deny",type="login"} 1`,
		`qbroker_audit_events_total{decision="allow",type="issue"}`,
		`qbroker_audit_events_total{decision="allow",type="redeem"} 1`,
		`qbroker_http_requests_total{code="201",route="gateway"} 1`,
		`qbroker_audit_fsyncs`,
		`qbroker_stage_duration_seconds_count{stage="issue"} 1`,
		`qbroker_stage_duration_seconds_count{stage="decision"} 1`,
		`qbroker_stage_duration_seconds_count{stage="redeem"} 1`,
		`qbroker_stage_duration_seconds_count{stage="budget"} 1`,
		`qbroker_stage_duration_seconds_count{stage="login"} 2`,
		`qbroker_upstream_duration_seconds_count{provider="ionq"} 1`,
	} {
		if !strings.Contains(body, w) {
			t.Errorf("metrics lack %s", w)
		}
	}
	for _, secret := range []string{e.d.SecretID, a.ClientToken, e.d.RootToken, e.ionqKey, a.EntityID} {
		if strings.Contains(body, secret) {
			t.Fatalf("metrics expose %q", secret)
		}
	}
}
