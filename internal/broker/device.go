package broker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/auth/device"
	"github.com/qbroker/qbroker/internal/core"
)

// DeviceFlow is the device authorization grant (RFC 8628) with the broker
// as the IdP's OAuth client (internal/auth/device).
type DeviceFlow interface {
	StartFor(ctx context.Context, label string) (device.Pending, error)
	Poll(ctx context.Context, handle string) (device.Result, error)
}

// DeviceStart begins a device login for the JWT role that will verify the
// person's ID token. The handle it returns is a bearer secret for polling.
func (b *Broker) DeviceStart(ctx context.Context, c Caller, role string) (api.DeviceStartData, error) {
	ev := &audit.Event{Type: "login", AuthMethod: "device", Action: "DeviceStart"}
	if b.cfg.Device == nil || b.cfg.JWT == nil {
		return api.DeviceStartData{}, b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "the device flow is not configured"))
	}
	if role == "" {
		return api.DeviceStartData{}, b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "missing role"))
	}
	if err := b.guard.admit(hostOf(c.RemoteAddr), b.now()); err != nil {
		return api.DeviceStartData{}, b.refuse(ctx, c, ev, err)
	}
	p, err := b.cfg.Device.StartFor(ctx, role)
	if err != nil {
		return api.DeviceStartData{}, deviceError(err)
	}
	ev.Decision, ev.Reason = audit.DecisionAllow, "device login started for role "+role
	if err := b.record(ctx, c, ev); err != nil {
		return api.DeviceStartData{}, err
	}
	return api.DeviceStartData{
		Handle: p.Handle, UserCode: p.UserCode, VerificationURI: p.VerificationURI, VerificationURIComplete: p.VerificationURIComplete,
		ExpiresIn: int(math.Ceil(time.Until(p.ExpiresAt).Seconds())), Interval: int(math.Ceil(p.Interval.Seconds())),
	}, nil
}

// DevicePoll polls once. Until the person approves it fails with
// "authorization_pending" (or "slow_down"); then it verifies the person's
// ID token with the JWT role given at start and issues the broker token,
// bound to the person who approved.
func (b *Broker) DevicePoll(ctx context.Context, c Caller, handle string) (*api.Auth, error) {
	if b.cfg.Device == nil || b.cfg.JWT == nil {
		return nil, core.Errorf(core.KindBadRequest, "the device flow is not configured")
	}
	if handle == "" {
		return nil, core.Errorf(core.KindBadRequest, "missing handle")
	}
	res, err := b.cfg.Device.Poll(ctx, handle)
	if err != nil {
		var de *device.Error
		if errors.As(err, &de) && (de.Code() == "authorization_pending" || de.Code() == "slow_down") {
			return nil, deviceError(err) // not audited: polling is routine
		}
		ev := &audit.Event{Type: "login", AuthMethod: "device", Action: "DevicePoll"}
		return nil, b.refuse(ctx, c, ev, deviceError(err))
	}
	ev := &audit.Event{Type: "login", AuthMethod: "device", Action: "Login"}
	id, err := b.cfg.JWT.LoginJWT(ctx, res.Label, res.IDToken)
	if err != nil {
		if core.KindOf(err) == core.KindInternal {
			return nil, fmt.Errorf("device login: %w", err)
		}
		return nil, b.refuse(ctx, c, ev, err)
	}
	return b.completeLogin(ctx, c, ev, "device", id)
}

// deviceError turns a device-flow error into a user-safe error whose
// message starts with the OAuth error code clients branch on.
func deviceError(err error) error {
	var de *device.Error
	if !errors.As(err, &de) {
		return err
	}
	msg := de.Code() + ": " + de.Message()
	switch de.Code() {
	case "temporarily_unavailable":
		return core.Wrap(core.KindUnavailable, err, msg)
	case "server_error":
		return core.Wrap(core.KindUnavailable, err, msg)
	default:
		return core.Wrap(core.KindBadRequest, err, msg)
	}
}
