package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
)

func newApproval(id string, required int, created time.Time) core.Approval {
	return core.Approval{
		ID: id, State: core.ApprovalPending, RequesterAgent: "agent-1", RequesterAccessor: "acc-1", ActingFor: "alice",
		Role: "research", Owner: "owner@example.com", Team: "team-q", SourceIP: "10.0.0.7",
		Action: "SubmitJob", Provider: "ionq", Device: "qpu.forte-1", DeviceKind: "qpu", Shots: 100,
		Program: []byte(`{"qubits":2,"circuit":[{"gate":"h","target":0}]}`), Format: "ionq.circuit.v1",
		ProgramSHA256: "ab12", EstimatedCostUSD: 9.75, Reasons: []string{"rule hardware", "policy demo-qpu"},
		Rule: "hardware", Required: required, Group: "admins",
		CreatedAt: created.UTC(), ExpiresAt: created.Add(time.Hour).UTC(),
	}
}

func testApprovals(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	a := newApproval("ap-1", 1, t0)
	if err := s.Approvals().Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.Approvals().Create(ctx, a); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate Create = %v, want ErrConflict", err)
	}
	got, err := s.Approvals().Get(ctx, "ap-1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, a) {
		t.Fatalf("Get = %+v\nwant %+v", got, a)
	}
	if _, err := s.Approvals().Get(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(unknown) = %v, want ErrNotFound", err)
	}
	b := newApproval("ap-2", 2, t0.Add(time.Minute))
	b.RequesterAgent = "agent-2"
	if err := s.Approvals().Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	all, err := s.Approvals().List(ctx, store.ApprovalFilter{})
	if err != nil || len(all) != 2 || all[0].ID != "ap-2" || all[1].ID != "ap-1" {
		t.Fatalf("List = %v %v, want ap-2, ap-1 (newest first)", ids(all), err)
	}
	mine, err := s.Approvals().List(ctx, store.ApprovalFilter{Agent: "agent-1"})
	if err != nil || len(mine) != 1 || mine[0].ID != "ap-1" {
		t.Fatalf("List(agent-1) = %v %v", ids(mine), err)
	}
	if _, err := s.Approvals().Vote(ctx, "ap-1", core.Vote{Approver: "bob", Decision: core.VoteApprove, Via: "api", At: t0}, t0); err != nil {
		t.Fatal(err)
	}
	pending, err := s.Approvals().List(ctx, store.ApprovalFilter{State: core.ApprovalPending})
	if err != nil || len(pending) != 1 || pending[0].ID != "ap-2" {
		t.Fatalf("List(pending) = %v %v, want ap-2", ids(pending), err)
	}
	one, err := s.Approvals().List(ctx, store.ApprovalFilter{Limit: 1})
	if err != nil || len(one) != 1 {
		t.Fatalf("List(limit 1) = %v %v", ids(one), err)
	}
	// MarkIssued: once, and only when approved.
	if err := s.Approvals().MarkIssued(ctx, "ap-2", "jti-x"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("MarkIssued(pending) = %v, want ErrClosed", err)
	}
	if err := s.Approvals().MarkIssued(ctx, "ap-1", "jti-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Approvals().MarkIssued(ctx, "ap-1", "jti-2"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("second MarkIssued = %v, want ErrClosed", err)
	}
	if err := s.Approvals().MarkIssued(ctx, "nope", "jti-2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("MarkIssued(unknown) = %v, want ErrNotFound", err)
	}
	got, _ = s.Approvals().Get(ctx, "ap-1")
	if got.State != core.ApprovalIssued || got.IssuedJTI != "jti-1" {
		t.Fatalf("after MarkIssued: state %s jti %s", got.State, got.IssuedJTI)
	}
}

func ids(as []core.Approval) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.ID
	}
	return out
}

func testApprovalVotes(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	if err := s.Approvals().Create(ctx, newApproval("two", 2, t0)); err != nil {
		t.Fatal(err)
	}
	vote := func(who, decision, reason string, at time.Time) (core.Approval, error) {
		return s.Approvals().Vote(ctx, "two", core.Vote{Approver: who, Decision: decision, Reason: reason, Via: "console", At: at}, at)
	}
	a, err := vote("bob", core.VoteApprove, "looks fine", t0.Add(time.Minute))
	if err != nil || a.State != core.ApprovalPending || a.Approvals() != 1 {
		t.Fatalf("first approve: %+v %v, want pending with 1", a.State, err)
	}
	if _, err := vote("bob", core.VoteApprove, "again", t0.Add(2*time.Minute)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second vote by bob = %v, want ErrConflict", err)
	}
	a, err = vote("carol", core.VoteApprove, "", t0.Add(3*time.Minute))
	if err != nil || a.State != core.ApprovalApproved || !a.DecidedAt.Equal(t0.Add(3*time.Minute)) {
		t.Fatalf("second approve: %s %v %v, want approved", a.State, a.DecidedAt, err)
	}
	if _, err := vote("dave", core.VoteDeny, "too late", t0.Add(4*time.Minute)); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("vote on approved = %v, want ErrClosed", err)
	}
	got, err := s.Approvals().Get(ctx, "two")
	if err != nil || len(got.Votes) != 2 || got.Votes[0].Approver != "bob" || got.Votes[0].Reason != "looks fine" || got.Votes[1].Approver != "carol" {
		t.Fatalf("votes after: %+v %v", got.Votes, err)
	}

	// One denial ends it, with the denier's reason.
	if err := s.Approvals().Create(ctx, newApproval("deny", 2, t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Approvals().Vote(ctx, "deny", core.Vote{Approver: "bob", Decision: core.VoteApprove, At: t0}, t0); err != nil {
		t.Fatal(err)
	}
	d, err := s.Approvals().Vote(ctx, "deny", core.Vote{Approver: "carol", Decision: core.VoteDeny, Reason: "not on forte", At: t0}, t0)
	if err != nil || d.State != core.ApprovalDenied || d.Reason != "not on forte" {
		t.Fatalf("deny: %s %q %v", d.State, d.Reason, err)
	}
	if err := s.Approvals().MarkIssued(ctx, "deny", "j"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("MarkIssued(denied) = %v, want ErrClosed", err)
	}

	// After expiry no vote counts, even before the sweep.
	if err := s.Approvals().Create(ctx, newApproval("late", 1, t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Approvals().Vote(ctx, "late", core.Vote{Approver: "bob", Decision: core.VoteApprove, At: t0}, t0.Add(time.Hour)); !errors.Is(err, store.ErrExpired) {
		t.Fatalf("vote at expiry = %v, want ErrExpired", err)
	}
	if _, err := s.Approvals().Vote(ctx, "missing", core.Vote{Approver: "bob", Decision: core.VoteApprove}, t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("vote on unknown = %v, want ErrNotFound", err)
	}
	if _, err := s.Approvals().Vote(ctx, "late", core.Vote{Approver: "bob", Decision: "maybe"}, t0); err == nil {
		t.Fatal("a vote that is neither approve nor deny was accepted")
	}
	got, _ = s.Approvals().Get(ctx, "late")
	if got.State != core.ApprovalPending || len(got.Votes) != 0 {
		t.Fatalf("refused votes changed the approval: %s %v", got.State, got.Votes)
	}
}

// testApprovalVotesConcurrent: many distinct approvers racing on a 3-of-N
// approval: exactly three votes count, the rest find it closed.
func testApprovalVotesConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Now().UTC()
	if err := s.Approvals().Create(ctx, newApproval("race", 3, t0)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, closed := 0, 0
	for i := range 16 {
		wg.Go(func() {
			_, err := s.Approvals().Vote(ctx, "race", core.Vote{Approver: fmt.Sprintf("p%d", i), Decision: core.VoteApprove, At: t0}, t0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrClosed):
				closed++
			default:
				t.Errorf("vote %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	got, err := s.Approvals().Get(ctx, "race")
	if err != nil {
		t.Fatal(err)
	}
	if ok != 3 || closed != 13 || got.State != core.ApprovalApproved || len(got.Votes) != 3 {
		t.Fatalf("ok %d closed %d state %s votes %d; want 3, 13, approved, 3", ok, closed, got.State, len(got.Votes))
	}
}

func testApprovalExpire(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	early := newApproval("early", 1, t0)
	early.ExpiresAt = t0.Add(time.Minute)
	late := newApproval("later", 1, t0)
	done := newApproval("done", 1, t0)
	done.ExpiresAt = t0.Add(time.Minute)
	for _, a := range []core.Approval{early, late, done} {
		if err := s.Approvals().Create(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Approvals().Vote(ctx, "done", core.Vote{Approver: "bob", Decision: core.VoteApprove, At: t0}, t0); err != nil {
		t.Fatal(err)
	}
	exp, err := s.Approvals().ExpirePending(ctx, t0.Add(2*time.Minute))
	if err != nil || len(exp) != 1 || exp[0].ID != "early" || exp[0].State != core.ApprovalExpired || exp[0].Reason == "" {
		t.Fatalf("ExpirePending = %+v %v, want only early, expired with a reason", ids(exp), err)
	}
	for id, want := range map[string]string{"early": core.ApprovalExpired, "later": core.ApprovalPending, "done": core.ApprovalApproved} {
		got, err := s.Approvals().Get(ctx, id)
		if err != nil || got.State != want {
			t.Errorf("%s: state %s %v, want %s", id, got.State, err, want)
		}
	}
	again, err := s.Approvals().ExpirePending(ctx, t0.Add(2*time.Minute))
	if err != nil || len(again) != 0 {
		t.Fatalf("second ExpirePending = %v %v, want none", ids(again), err)
	}
}

func testJobsUsedDevice(t *testing.T, s store.Store) {
	ctx := context.Background()
	used, err := s.Jobs().UsedDevice(ctx, "a1", "ionq", "qpu.forte-1")
	if err != nil || used {
		t.Fatalf("UsedDevice before any job = %v %v", used, err)
	}
	if err := s.Jobs().Create(ctx, core.Job{Provider: "ionq", ID: "j1", AgentID: "a1", Device: "simulator", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if used, _ := s.Jobs().UsedDevice(ctx, "a1", "ionq", "qpu.forte-1"); used {
		t.Fatal("a simulator job counted as use of the QPU")
	}
	if used, _ := s.Jobs().UsedDevice(ctx, "a1", "ionq", "simulator"); !used {
		t.Fatal("recorded job not seen")
	}
	if used, _ := s.Jobs().UsedDevice(ctx, "a2", "ionq", "simulator"); used {
		t.Fatal("another agent's job counted")
	}
}
