package device

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/auth/jwtauth"
)

var ctx = context.Background()

func idClaims(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("want %v, got %v", want, err)
	}
}

// TestDeviceFlowToCompletion: start, one pending poll, the user approves at the
// real OP, the next poll returns tokens whose subject is the approving user and
// that the broker's jwtauth accepts; the handle is then spent.
func TestDeviceFlowToCompletion(t *testing.T) {
	op := startOP(t)
	clk := newClock()
	f := newFlow(t, op, clk)

	p, err := f.StartFor(ctx, "submit-only")
	if err != nil {
		t.Fatal(err)
	}
	if p.UserCode == "" || !strings.HasPrefix(p.VerificationURI, op.issuer) ||
		!strings.Contains(p.VerificationURIComplete, "user_code=") || p.Interval != 5*time.Second ||
		!p.ExpiresAt.Equal(clk.Now().Add(5*time.Minute)) {
		t.Fatalf("pending %+v", p)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(p.Handle); err != nil || len(raw) != 32 {
		t.Fatalf("handle %q is not 32 bytes of base64url", p.Handle)
	}
	// The device code is nowhere in what the caller gets.
	dc := op.lastDeviceCode(t)
	v := reflect.ValueOf(p)
	for i := range v.NumField() {
		if s := fmt.Sprint(v.Field(i).Interface()); strings.Contains(s, dc) {
			t.Fatalf("Pending.%s contains the device code", v.Type().Field(i).Name)
		}
	}
	if strings.Contains(fmt.Sprintf("%+v %#v", p, p), dc) {
		t.Fatal("formatted Pending contains the device code")
	}

	clk.Advance(p.Interval)
	_, err = f.Poll(ctx, p.Handle)
	wantErr(t, err, ErrPending)
	if ErrorCode(err) != "authorization_pending" {
		t.Fatalf("code %q", ErrorCode(err))
	}
	if n := op.count("/oauth/token"); n != 1 {
		t.Fatalf("token requests %d, want 1", n)
	}

	op.userAct(t, p.UserCode, "alice", "pw-alice", "allowed")
	clk.Advance(p.Interval)
	res, err := f.Poll(ctx, p.Handle)
	if err != nil {
		t.Fatal(err)
	}
	if res.AccessToken == "" || res.IDToken == "" || res.Label != "submit-only" || !res.Expiry.After(clk.Now()) {
		t.Fatalf("result %v", res)
	}
	if s := fmt.Sprintf("%v %+v", res, res); strings.Contains(s, res.IDToken) || strings.Contains(s, res.AccessToken) {
		t.Fatalf("formatted Result leaks tokens: %s", s)
	}

	// zitadel's example: the device client's access token is opaque; the ID
	// token (scope openid) is a JWT with sub = the approver, aud = client id.
	if strings.Count(res.AccessToken, ".") == 2 {
		t.Fatalf("expected an opaque access token from the example OP's device client")
	}
	claims := idClaims(t, res.IDToken)
	if claims["sub"] != "alice" || claims["iss"] != op.issuer || !reflect.DeepEqual(claims["aud"], []any{"device"}) ||
		claims["azp"] != "device" {
		t.Fatalf("id token claims %v", claims)
	}
	t.Logf("id token claims: %v", claims)

	// The broker verifies the ID token with jwtauth: subject is the approver,
	// audience the broker's client id.
	a, err := jwtauth.New(ctx, []jwtauth.IssuerConfig{{Name: "corp", Issuer: op.issuer, DiscoveryURL: op.issuer}},
		[]jwtauth.RoleConfig{
			{Name: "owner", Issuer: "corp", BoundAudiences: []string{"device"}, BrokerRole: "owner"},
			{Name: "bob-only", Issuer: "corp", BoundAudiences: []string{"device"}, BoundSubject: "bob"},
		}, jwtauth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	id, err := a.Login(ctx, "owner", res.IDToken)
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "alice" || id.Issuer != op.issuer {
		t.Fatalf("identity %+v", id)
	}
	if _, err := a.Login(ctx, "bob-only", res.IDToken); err == nil {
		t.Fatal("alice's token logged in as bob")
	}

	// Single use: the handle is gone.
	clk.Advance(p.Interval)
	_, err = f.Poll(ctx, p.Handle)
	wantErr(t, err, ErrUnknownHandle)
	if f.Len() != 0 {
		t.Fatalf("%d pending after completion", f.Len())
	}
	if n := op.count("/oauth/token"); n != 2 {
		t.Fatalf("token requests %d, want 2", n)
	}
}

// TestDeviceFlowDenied: the user denies at the OP → ErrDenied, handle removed.
func TestDeviceFlowDenied(t *testing.T) {
	op := startOP(t)
	clk := newClock()
	f := newFlow(t, op, clk)
	p, err := f.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	op.userAct(t, p.UserCode, "bob", "pw-bob", "denied")
	clk.Advance(p.Interval)
	_, err = f.Poll(ctx, p.Handle)
	wantErr(t, err, ErrDenied)
	if ErrorCode(err) != "access_denied" || !strings.Contains(err.Error(), "denied") {
		t.Fatalf("error %q code %q", err, ErrorCode(err))
	}
	clk.Advance(p.Interval)
	_, err = f.Poll(ctx, p.Handle)
	wantErr(t, err, ErrUnknownHandle)
}

// TestDeviceFlowExpiredLocally: past ExpiresAt the broker answers ErrExpired
// itself and forgets the handle.
func TestDeviceFlowExpiredLocally(t *testing.T) {
	op := startOP(t)
	clk := newClock()
	f := newFlow(t, op, clk)
	p, err := f.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	op.userAct(t, p.UserCode, "alice", "pw-alice", "allowed") // approval after expiry must not help
	clk.Advance(5 * time.Minute)
	_, err = f.Poll(ctx, p.Handle)
	wantErr(t, err, ErrExpired)
	if ErrorCode(err) != "expired_token" {
		t.Fatalf("code %q", ErrorCode(err))
	}
	if n := op.count("/oauth/token"); n != 0 {
		t.Fatalf("expired handle reached the IdP (%d token requests)", n)
	}
	_, err = f.Poll(ctx, p.Handle)
	wantErr(t, err, ErrUnknownHandle)
}

// TestDeviceFlowExpiredAtIdP: the OP's own expired_token maps to ErrExpired.
func TestDeviceFlowExpiredAtIdP(t *testing.T) {
	op := startOP(t)
	op.SetDeviceCodeLifetime(time.Millisecond)
	clk := newClock()
	f := newFlow(t, op, clk)
	p, err := f.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	clk.Advance(p.Interval)
	_, err = f.Poll(ctx, p.Handle)
	wantErr(t, err, ErrExpired)
	if n := op.count("/oauth/token"); n != 1 {
		t.Fatalf("token requests %d, want 1", n)
	}
	_, err = f.Poll(ctx, p.Handle)
	wantErr(t, err, ErrUnknownHandle)
}

// TestPollTooFast: polling within the interval (also right after Start) is
// answered ErrSlowDown without an IdP request, and does not burn the handle.
func TestPollTooFast(t *testing.T) {
	op := startOP(t)
	clk := newClock()
	f := newFlow(t, op, clk)
	p, err := f.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		_, err = f.Poll(ctx, p.Handle)
		wantErr(t, err, ErrSlowDown)
	}
	if n := op.count("/oauth/token"); n != 0 {
		t.Fatalf("fast polls reached the IdP: %d token requests", n)
	}
	clk.Advance(p.Interval)
	_, err = f.Poll(ctx, p.Handle)
	wantErr(t, err, ErrPending)
	clk.Advance(p.Interval - time.Second)
	_, err = f.Poll(ctx, p.Handle)
	wantErr(t, err, ErrSlowDown)
	if ErrorCode(err) != "slow_down" {
		t.Fatalf("code %q", ErrorCode(err))
	}
	if n := op.count("/oauth/token"); n != 1 {
		t.Fatalf("token requests %d, want 1", n)
	}
	// Still usable at the right pace.
	op.userAct(t, p.UserCode, "alice", "pw-alice", "allowed")
	clk.Advance(time.Second)
	if _, err := f.Poll(ctx, p.Handle); err != nil {
		t.Fatal(err)
	}
}

// TestUnknownHandle: made-up, empty, and another flow's handles are refused
// without an IdP request; so is the device code itself used as a handle.
func TestUnknownHandle(t *testing.T) {
	op := startOP(t)
	clk := newClock()
	f := newFlow(t, op, clk)
	other := newFlow(t, op, clk)
	p, err := other.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	for _, h := range []string{"", "nope", p.Handle, op.lastDeviceCode(t), strings.Repeat("A", 43)} {
		_, err := f.Poll(ctx, h)
		wantErr(t, err, ErrUnknownHandle)
	}
	if _, err := other.Poll(ctx, op.lastDeviceCode(t)); !errors.Is(err, ErrUnknownHandle) {
		t.Fatalf("device code accepted as a handle: %v", err)
	}
	if n := op.count("/oauth/token"); n != 0 {
		t.Fatalf("unknown handles reached the IdP: %d", n)
	}
}
