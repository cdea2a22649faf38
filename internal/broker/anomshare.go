package broker

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/store"
)

// Anomaly detection across replicas. Each replica writes its own trail,
// but an agent's burst, its denials or its new source can be spread over
// every replica behind the balancer. So every replica shares the events
// the rules read with the others (batched NOTIFYs on PostgreSQL), every
// engine sees the whole cluster's events, and only the replica that holds
// the sweeper lease acts on findings: one alert, one hold, one suspension.
// A new leader takes over with the same state, because it saw everything.

// anomShareEvery is how often a replica sends what its rules saw; the
// payload stays under PostgreSQL's 8000-byte NOTIFY limit.
const (
	anomShareEvery = 50 * time.Millisecond
	anomShareMax   = 7000
)

// sharedEvent is what the anomaly rules read of an audit event; nothing
// secret (no hashes, no tokens), and short.
type sharedEvent struct {
	Time     time.Time `json:"t"`
	Type     string    `json:"y"`
	Agent    string    `json:"a,omitempty"`
	Role     string    `json:"r,omitempty"`
	Action   string    `json:"n,omitempty"`
	Provider string    `json:"p,omitempty"`
	Device   string    `json:"d,omitempty"`
	Shots    int       `json:"s,omitempty"`
	Decision string    `json:"o,omitempty"`
	Remote   string    `json:"ip,omitempty"`
	Cost     *float64  `json:"c,omitempty"`
}

func shareOf(e *audit.Event) sharedEvent {
	return sharedEvent{Time: e.Time, Type: e.Type, Agent: e.Agent, Role: e.Role, Action: e.Action, Provider: e.Provider,
		Device: e.Device, Shots: e.Shots, Decision: e.Decision, Remote: e.RemoteAddr, Cost: e.EstimatedCostUSD}
}

func (s sharedEvent) event() audit.Event {
	return audit.Event{Time: s.Time, Type: s.Type, Agent: s.Agent, Role: s.Role, Action: s.Action, Provider: s.Provider,
		Device: s.Device, Shots: s.Shots, Decision: s.Decision, RemoteAddr: s.Remote, EstimatedCostUSD: s.Cost}
}

// anomShare queues this replica's events for the others.
type anomShare struct {
	mu      sync.Mutex
	pending []sharedEvent
	dropped int
}

// sharing reports whether this broker shares anomaly events: rules on, a
// store other replicas write too, and a broadcast to carry them.
func (b *Broker) sharing() bool {
	_, ok := b.cfg.Store.(store.Broadcaster)
	return ok && b.cfg.Anomaly != nil && !b.cfg.ExclusiveStore && b.cfg.Instance != ""
}

// SetLeader tells the broker whether this replica holds the sweeper lease
// (the server's sweeper calls it). With a shared store only the leader
// acts on anomaly findings; with an exclusive one this replica always does.
func (b *Broker) SetLeader(on bool) { b.leader.Store(on) }

// actsOnFindings reports whether this replica carries out anomaly actions.
func (b *Broker) actsOnFindings() bool {
	return !b.sharing() || b.leader.Load()
}

// queueShare adds a durable event for the other replicas.
func (b *Broker) queueShare(e *audit.Event) {
	b.share.mu.Lock()
	defer b.share.mu.Unlock()
	if len(b.share.pending) >= 10_000 { // the flusher is stuck: keep memory bounded
		b.share.dropped++
		return
	}
	b.share.pending = append(b.share.pending, shareOf(e))
}

// flushShares sends queued events every anomShareEvery until ctx ends.
func (b *Broker) flushShares(ctx context.Context) {
	bc := b.cfg.Store.(store.Broadcaster)
	t := time.NewTicker(anomShareEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.share.mu.Lock()
		evs, dropped := b.share.pending, b.share.dropped
		b.share.pending, b.share.dropped = nil, 0
		b.share.mu.Unlock()
		if dropped > 0 {
			b.log.Warn("anomaly: events not shared with the other replicas (queue full)", "dropped", dropped)
		}
		prefix := "anom:" + b.cfg.Instance + ":"
		for len(evs) > 0 {
			var batch []byte
			n := 0
			for n < len(evs) {
				one, err := json.Marshal(evs[n])
				if err != nil {
					n++
					continue
				}
				if len(batch)+len(one)+len(prefix)+2 > anomShareMax && n > 0 {
					break
				}
				if len(batch) > 0 {
					batch = append(batch, ',')
				}
				batch = append(batch, one...)
				n++
			}
			evs = evs[n:]
			if err := bc.Publish(ctx, prefix+"["+string(batch)+"]"); err != nil && ctx.Err() == nil {
				b.log.Warn("anomaly: could not share events with the other replicas", "err", err)
			}
		}
	}
}

// heardShares feeds another replica's events to this replica's rules.
func (b *Broker) heardShares(msg string) {
	from, body, ok := strings.Cut(msg, ":")
	if !ok || from == b.cfg.Instance || b.cfg.Anomaly == nil {
		return
	}
	var evs []sharedEvent
	if err := json.Unmarshal([]byte(body), &evs); err != nil {
		b.log.Warn("anomaly: a replica shared events this one cannot read", "from", from, "err", err)
		return
	}
	for _, s := range evs {
		b.findings(s.event())
	}
}
