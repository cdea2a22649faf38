package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/store"
)

// An anomaly hold: an anomaly rule with the require_approval action makes
// every job request of the agent wait for a human approval until it ends
// (or the agent is resumed). Holds are stored sealed, so a restart keeps
// them.

// HoldDuration is how long a require_approval finding holds an agent.
const HoldDuration = time.Hour

const secretHoldPrefix = "anomaly-hold/"

type hold struct {
	Until time.Time `json:"until"`
	Rule  string    `json:"rule"`
}

// placeHold holds agent's requests for approval until now+HoldDuration.
func (b *Broker) placeHold(ctx context.Context, agent, rule string) error {
	h := hold{Until: b.now().Add(HoldDuration).UTC(), Rule: rule}
	v, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if err := b.putSealed(ctx, b.cfg.Store, secretHoldPrefix+agent, v); err != nil {
		return err
	}
	b.holds.Store(agent, h)
	b.tell(ctx, "hold:"+agent)
	return nil
}

// heldBy returns the anomaly hold on agent, if one is in force. Holds are
// kept in memory (loaded at start), so the hot path does no store read.
func (b *Broker) heldBy(_ context.Context, agent string) (hold, bool, error) {
	v, ok := b.holds.Load(agent)
	if !ok {
		return hold{}, false, nil
	}
	h := v.(hold)
	return h, b.now().Before(h.Until), nil
}

// loadHolds reads the stored holds at start.
func (b *Broker) loadHolds(ctx context.Context) error {
	ss, err := b.cfg.Store.Secrets().List(ctx, secretHoldPrefix)
	if err != nil {
		return err
	}
	for _, s := range ss {
		plain, err := b.cfg.Sealer.Open(s.Blob, []byte(s.Name))
		if err != nil {
			return fmt.Errorf("open %s: %w", s.Name, err)
		}
		var h hold
		if err := json.Unmarshal(plain, &h); err != nil {
			return fmt.Errorf("decode %s: %w", s.Name, err)
		}
		b.holds.Store(strings.TrimPrefix(s.Name, secretHoldPrefix), h)
	}
	return nil
}

// liftHold removes a hold (resume).
func (b *Broker) liftHold(ctx context.Context, agent string) error {
	b.holds.Delete(agent)
	defer b.tell(ctx, "hold:"+agent)
	err := b.cfg.Store.Secrets().Delete(ctx, secretHoldPrefix+agent)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// holdFinding carries out require_approval for a finding.
func (b *Broker) holdFinding(ctx context.Context, c Caller, agent, rule, detail string) {
	if agent == "" || strings.ContainsRune(agent, '/') {
		return
	}
	ev := &audit.Event{Type: "admin", Action: "HoldForApproval", Agent: agent, Reason: "anomaly rule " + rule + ": " + detail}
	if err := b.placeHold(ctx, agent, rule); err != nil {
		b.log.Error("anomaly: hold failed", "agent", agent, "err", err)
		ev.Decision, ev.Error = audit.DecisionError, "could not store the hold"
	} else {
		ev.Decision = audit.DecisionAllow
	}
	if err := b.record(ctx, c, ev); err != nil {
		b.log.Error("anomaly: audit failed", "rule", rule, "err", err)
	}
}
