package mcp

import (
	"errors"
	"strings"
	"testing"

	"github.com/qbroker/qbroker/client"
)

func TestRedactRemovesCredentialShapes(t *testing.T) {
	for _, secret := range []string{
		"qbt_3xAMPLEtoken_with-dashes_0123456789",
		"eyJhbGciOiJFZERTQSIsInR5cCI6InFicm9rZXItam9iK2p3dCJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
		"ionq-dev-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	} {
		for _, wrap := range []string{"%s", "token %s was refused", `{"api_key":"%s"}`, "Authorization: Bearer %s", "apiKey %s"} {
			in := strings.Replace(wrap, "%s", secret, 1)
			if out := redact(in); strings.Contains(out, secret) || !strings.Contains(out, "[redacted]") {
				t.Errorf("redact(%q) = %q", in, out)
			}
		}
	}
	// What a model needs stays: ids, digests, console URLs, policy names.
	for _, keep := range []string{
		"denied by policy \"demo-no-qpu\"",
		"http://127.0.0.1:8200/ui/approvals/apr_mfui34rrpdf5pbu7o53wkrv4",
		"job 85e64093-a0d4-4ce1-a6e7-67e569909bb9",
		"circuit 1b83b33237210f1c4c9a2e3b1b0f7e5d9c8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c",
		"budget limit lab-hardware.usd_per_day for role lab: 200 USD a day",
	} {
		if out := redact(keep); out != keep {
			t.Errorf("redact(%q) = %q, want it unchanged", keep, out)
		}
	}
}

func TestRefuseBrokerExplainsWithoutLeaking(t *testing.T) {
	for _, c := range []struct {
		status int
		msg    string
		want   []string
	}{
		{403, `permission denied: denied by policy "demo-no-qpu"`, []string{"refused by policy", "demo-no-qpu", "will be refused again"}},
		{403, "budget limit x.usd_per_day for role lab: 200 USD a day, 199 used, this request adds 8.30; resets 2026-11-27T00:00:00Z", []string{"refused by budget", "x.usd_per_day", "Nothing was issued or charged"}},
		{429, "rate limit lab-rate.jobs_per_minute for role lab: 60 job tokens a minute", []string{"refused by rate limit", "Wait"}},
		{403, "permission denied: invalid, expired or revoked token", []string{"invalid, expired or revoked", "new token"}},
		{403, `role "demo" allows at most 10000 shots; request asks for 20000`, []string{"role's limits", "10000"}},
		{410, "approval apr_x expired", []string{"no longer usable"}},
		{400, "unknown device \"x\" for provider \"ionq\"", []string{"invalid request", "unknown device"}},
		{503, "audit log unavailable; request refused", []string{"unavailable", "nothing was done"}},
		{403, "token qbt_leakedleakedleakedleaked is bad", []string{"[redacted]"}},
	} {
		err := refuseBroker(&client.Error{Status: c.status, Errors: []string{c.msg}})
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%d %q → %q, lacks %q", c.status, c.msg, err, w)
			}
		}
		if strings.Contains(err.Error(), "qbt_") {
			t.Errorf("refusal leaks a token: %q", err)
		}
	}
	// A transport error (it may name the broker's address) is not shown.
	err := refuseBroker(errors.New(`Post "http://10.0.0.7:8200/v1/quantum/jobtoken/demo": dial tcp: connection refused`))
	if strings.Contains(err.Error(), "10.0.0.7") || !strings.Contains(err.Error(), "could not be reached") {
		t.Errorf("transport error → %q", err)
	}
	var r *refusal
	if !errors.As(err, &r) || r.cause == nil {
		t.Error("the cause is not kept for the log")
	}
}
