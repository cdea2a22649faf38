package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
)

var errAbort = errors.New("storetest: abort")

// writeAll makes one change to every aggregate inside tx.
func writeAll(t *testing.T, tx store.Aggregates) error {
	t.Helper()
	c := ctx(t)
	steps := []func() error{
		func() error { return tx.Roles().Put(c, sampleRole("demo")) },
		func() error { return tx.SecretIDs().Create(c, sampleSecretID("demo", "sh", 1, time.Time{})) },
		func() error { return tx.Agents().Upsert(c, core.Agent{ID: "ag", Name: "ag", Role: "demo"}) },
		func() error { return tx.Tokens().Create(c, sampleToken("th", "ta", now().Add(time.Hour))) },
		func() error { return tx.Grants().Create(c, sampleGrant("j", "ta", now().Add(time.Minute))) },
		func() error { return tx.Jobs().Create(c, core.Job{Provider: "ionq", ID: "job", AgentID: "ag"}) },
		func() error { return tx.Secrets().Put(c, core.SealedSecret{Name: "k", Blob: []byte("x")}) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	// Reads inside the transaction see its writes.
	if _, err := tx.Tokens().Get(c, "th"); err != nil {
		t.Errorf("read-your-writes inside Update: %v", err)
	}
	if _, err := tx.Roles().Get(c, "demo"); err != nil {
		t.Errorf("read-your-writes inside Update: %v", err)
	}
	return nil
}

// present reports, per aggregate, whether writeAll's record exists.
func present(t *testing.T, s store.Store) map[string]bool {
	t.Helper()
	c := ctx(t)
	check := func(err error) bool {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unexpected error: %v", err)
		}
		return err == nil
	}
	_, errRole := s.Roles().Get(c, "demo")
	_, errAgent := s.Agents().Get(c, "ag")
	_, errTok := s.Tokens().Get(c, "th")
	_, errGrant := s.Grants().Get(c, "j")
	_, errJob := s.Jobs().Get(c, "ionq", "job")
	_, errSec := s.Secrets().Get(c, "k")
	return map[string]bool{
		"role": check(errRole), "agent": check(errAgent), "token": check(errTok),
		"grant": check(errGrant), "job": check(errJob), "secret": check(errSec),
	}
}

func testUpdateRollsBack(t *testing.T, s store.Store) {
	err := s.Update(ctx(t), func(tx store.Aggregates) error {
		if err := writeAll(t, tx); err != nil {
			return err
		}
		return errAbort
	})
	wantErr(t, err, errAbort, "Update returns fn's error")
	for what, ok := range present(t, s) {
		if ok {
			t.Errorf("%s committed although fn failed", what)
		}
	}
	// A failing step also aborts everything before it.
	err = s.Update(ctx(t), func(tx store.Aggregates) error {
		if err := tx.Tokens().Create(ctx(t), sampleToken("th", "ta", now())); err != nil {
			return err
		}
		return tx.Tokens().Create(ctx(t), sampleToken("th-2", "ta", now())) // same accessor
	})
	wantErr(t, err, store.ErrConflict, "Update with a conflicting step")
	_, err = s.Tokens().Get(ctx(t), "th")
	wantErr(t, err, store.ErrNotFound, "first step after failed Update")
}

func testUpdateCommits(t *testing.T, s store.Store) {
	must(t, s.Update(ctx(t), func(tx store.Aggregates) error { return writeAll(t, tx) }), "Update")
	for what, ok := range present(t, s) {
		if !ok {
			t.Errorf("%s not committed", what)
		}
	}
	_, err := s.SecretIDs().Consume(ctx(t), "demo", "sh", now())
	must(t, err, "Consume secret ID created in Update")
}

// A use taken or a grant redeemed inside a failed Update is given back.
func testUpdateRollsBackUses(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.Roles().Put(c, sampleRole("demo")), "Put role")
	must(t, s.SecretIDs().Create(c, sampleSecretID("demo", "sh", 1, time.Time{})), "Create secret ID")
	must(t, s.Tokens().Create(c, sampleToken("th", "ta", now().Add(time.Hour))), "Create token")
	must(t, s.Grants().Create(c, sampleGrant("j", "ta", now().Add(time.Minute))), "Create grant")

	err := s.Update(c, func(tx store.Aggregates) error {
		if _, err := tx.SecretIDs().Consume(c, "demo", "sh", now()); err != nil {
			return err
		}
		if _, err := tx.Grants().Redeem(c, "j", now()); err != nil {
			return err
		}
		// Inside the transaction the changes are visible...
		if _, err := tx.Grants().Redeem(c, "j", now()); !errors.Is(err, store.ErrRedeemed) {
			t.Errorf("second Redeem inside Update: %v, want ErrRedeemed", err)
		}
		if _, err := tx.SecretIDs().Consume(c, "demo", "sh", now()); err == nil {
			t.Error("second Consume of a one-use secret ID inside Update succeeded")
		}
		return errAbort
	})
	wantErr(t, err, errAbort, "Update")
	// ...and after the rollback they are undone.
	_, err = s.SecretIDs().Consume(c, "demo", "sh", now())
	must(t, err, "Consume after rolled-back Consume")
	_, err = s.Grants().Redeem(c, "j", now())
	must(t, err, "Redeem after rolled-back Redeem")
}

// Zero times round-trip as zero; real times never read back as zero.
func testZeroTimes(t *testing.T, s store.Store) {
	c := ctx(t)
	tok := core.Token{Hash: "h", Accessor: "a", Policies: []string{"root"}} // every time zero
	must(t, s.Tokens().Create(c, tok), "Create token with zero times")
	got, err := s.Tokens().Get(c, "h")
	must(t, err, "Get")
	equal(t, got, tok, "zero-time token")
	if !got.IssuedAt.IsZero() || !got.ExpiresAt.IsZero() || !got.MaxExpiresAt.IsZero() {
		t.Fatalf("zero times came back non-zero: %+v", got)
	}
	if !got.Live(now()) {
		t.Fatal("never-expiring token is not live")
	}

	gr := sampleGrant("j", "a", now().Add(time.Minute))
	must(t, s.Grants().Create(c, gr), "Create grant")
	gotG, err := s.Grants().Get(c, "j")
	must(t, err, "Get grant")
	if !gotG.RedeemedAt.IsZero() {
		t.Fatalf("unredeemed grant has RedeemedAt %v", gotG.RedeemedAt)
	}

	// The epoch instant is a real time: as an expiry it must stay expired,
	// never turn into "never expires".
	epoch := time.Unix(0, 0).UTC()
	must(t, s.Tokens().Create(c, sampleToken("h-epoch", "a-epoch", epoch)), "Create token expiring at the epoch")
	got, err = s.Tokens().Get(c, "h-epoch")
	must(t, err, "Get epoch token")
	if got.ExpiresAt.IsZero() || got.Live(now()) {
		t.Fatalf("token that expired at the epoch reads back live (ExpiresAt %v)", got.ExpiresAt)
	}

	// Times keep nanoseconds and come back in UTC.
	loc := time.FixedZone("UTC+3", 3*3600)
	must(t, s.Secrets().Put(c, core.SealedSecret{Name: "k", Blob: []byte("x"), CreatedAt: now().In(loc)}), "Put")
	sec, err := s.Secrets().Get(c, "k")
	must(t, err, "Get secret")
	if !sec.CreatedAt.Equal(now()) || sec.CreatedAt.Location() != time.UTC {
		t.Fatalf("CreatedAt %v, want %v in UTC", sec.CreatedAt, now())
	}
}
