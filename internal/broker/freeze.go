package broker

import (
	"context"
	"errors"

	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
)

// secretFreeze marks the global "freeze hardware" switch as on; its
// (sealed) value is the reason.
const secretFreeze = "sys/freeze-hardware"

// SetHardwareFreeze turns the global switch that refuses all QPU work: no
// job token for a QPU is issued and none already issued can be redeemed,
// until it is lifted. Root only; persisted and audited.
func (b *Broker) SetHardwareFreeze(ctx context.Context, c Caller, caller core.Token, on bool, reason string) error {
	action := "FreezeHardware"
	if !on {
		action = "LiftHardwareFreeze"
	}
	ev := &audit.Event{Type: "admin", Action: action, Agent: caller.AgentID, Accessor: caller.Accessor, Reason: reason}
	if err := requireRoot(caller); err != nil {
		return b.refuse(ctx, c, ev, err)
	}
	if on {
		if reason == "" {
			reason = "frozen by an administrator"
		}
		if err := b.putSealed(ctx, b.cfg.Store, secretFreeze, []byte(reason)); err != nil {
			return err
		}
		b.freeze.Store(&reason)
	} else {
		if err := b.cfg.Store.Secrets().Delete(ctx, secretFreeze); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		b.freeze.Store(nil)
	}
	b.tell(ctx, "freeze")
	ev.Decision = audit.DecisionAllow
	return b.record(ctx, c, ev)
}

// HardwareFreeze reports whether QPU work is frozen, and why.
func (b *Broker) HardwareFreeze() (bool, string) {
	if r := b.freeze.Load(); r != nil {
		return true, *r
	}
	return false, ""
}

func (b *Broker) loadFreeze(ctx context.Context) error {
	s, err := b.cfg.Store.Secrets().Get(ctx, secretFreeze)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	plain, err := b.cfg.Sealer.Open(s.Blob, []byte(secretFreeze))
	if err != nil {
		return err
	}
	reason := string(plain)
	b.freeze.Store(&reason)
	return nil
}

// frozenFor refuses QPU work while the freeze is on.
func (b *Broker) frozenFor(provider, device string) error {
	r := b.freeze.Load()
	if r == nil {
		return nil
	}
	if d, ok := b.rules.Load().devices[provider+"/"+device]; ok && d.Kind == "qpu" {
		return core.Errorf(core.KindPermissionDenied, "permission denied: QPU work is frozen (%s)", *r)
	}
	return nil
}
