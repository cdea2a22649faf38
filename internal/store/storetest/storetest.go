// Package storetest is the contract suite every store.Store implementation
// must pass. An implementation's tests call Run with a function that opens
// a fresh, empty store:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openFresh(t) })
//	}
//
// Run closes every store it opens. Stores may be opened concurrently: the
// concurrency tests use several goroutines on one store, nothing more.
package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
)

// Run runs the contract suite. open must return a fresh, empty store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Roles", testRoles},
		{"RolePutKeepsSecretIDs", testRolePutKeepsSecretIDs},
		{"SecretIDs", testSecretIDs},
		{"Consume", testConsume},
		{"ConsumeConcurrent", testConsumeConcurrent},
		{"ConsumeConcurrentMany", testConsumeConcurrentMany},
		{"Agents", testAgents},
		{"Tokens", testTokens},
		{"TokensDeleteExpired", testTokensDeleteExpired},
		{"TokensDeleteByAgent", testTokensDeleteByAgent},
		{"TokensDelegation", testTokensDelegation},
		{"JobsByAgent", testJobsByAgent},
		{"TokensDeleteByRole", testTokensDeleteByRole},
		{"Grants", testGrants},
		{"Redeem", testRedeem},
		{"RedeemConcurrent", testRedeemConcurrent},
		{"Jobs", testJobs},
		{"Secrets", testSecrets},
		{"SecretsListPrefix", testSecretsListPrefix},
		{"UpdateRollsBack", testUpdateRollsBack},
		{"UpdateCommits", testUpdateCommits},
		{"UpdateRollsBackConsumeAndRedeem", testUpdateRollsBackUses},
		{"ZeroTimes", testZeroTimes},
		{"Approvals", testApprovals},
		{"ApprovalVotes", testApprovalVotes},
		{"ApprovalVotesConcurrent", testApprovalVotesConcurrent},
		{"ApprovalExpire", testApprovalExpire},
		{"JobsUsedDevice", testJobsUsedDevice},
		{"Budgets", testBudgets},
		{"BudgetsConcurrent", testBudgetsConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// now is the suite's clock: a fixed UTC instant with nanoseconds, so a
// store that truncates times fails.
func now() time.Time { return time.Date(2031, time.March, 4, 5, 6, 7, 123456789, time.UTC) }

func ctx(t *testing.T) context.Context { return t.Context() }

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func equal[T any](t *testing.T, got, want T, what string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

func sampleRole(name string) core.Role {
	return core.Role{
		Name:            name,
		Provider:        "ionq",
		Devices:         []string{"simulator", "qpu.aria-1"},
		MaxShots:        1000,
		TokenTTL:        time.Hour,
		TokenMaxTTL:     24 * time.Hour,
		JobTokenTTL:     2 * time.Minute,
		SecretIDTTL:     30 * time.Minute,
		SecretIDNumUses: 3,
		Owner:           "alice",
		Team:            "physics",
		RoleID:          "rid-" + name,
		CreatedAt:       now().Add(-time.Hour),
		UpdatedAt:       now(),
	}
}

func sampleSecretID(role, hash string, uses int, expires time.Time) core.SecretID {
	return core.SecretID{
		Hash:      hash,
		Accessor:  "acc-" + hash,
		Role:      role,
		Agent:     "agent-1",
		Meta:      map[string]string{"host": "ci-7"},
		CreatedAt: now().Add(-time.Minute),
		ExpiresAt: expires,
		UsesLeft:  uses,
	}
}

func sampleToken(hash, accessor string, expires time.Time) core.Token {
	return core.Token{
		Hash:         hash,
		Accessor:     accessor,
		AgentID:      "approle:demo:agent-1",
		Role:         "demo",
		Policies:     []string{"demo"},
		DisplayName:  "approle-agent-1",
		AuthMethod:   "approle",
		Meta:         map[string]string{"role": "demo"},
		IssuedAt:     now().Add(-time.Minute),
		ExpiresAt:    expires,
		MaxExpiresAt: now().Add(24 * time.Hour),
		CreationTTL:  time.Hour,
		Renewable:    true,
	}
}

func sampleGrant(jti, accessor string, expires time.Time) core.JobGrant {
	return core.JobGrant{
		JTI:           jti,
		Accessor:      accessor,
		AgentID:       "approle:demo:agent-1",
		Role:          "demo",
		Provider:      "ionq",
		Device:        "simulator",
		MaxShots:      100,
		ProgramSHA256: "ab12",
		IssuedAt:      now().Add(-time.Second),
		ExpiresAt:     expires,
	}
}

func testRoles(t *testing.T, s store.Store) {
	c := ctx(t)
	_, err := s.Roles().Get(c, "demo")
	wantErr(t, err, store.ErrNotFound, "Get before Put")

	r := sampleRole("demo")
	must(t, s.Roles().Put(c, r), "Put")
	got, err := s.Roles().Get(c, "demo")
	must(t, err, "Get")
	equal(t, got, r, "Get after Put")

	got, err = s.Roles().GetByRoleID(c, r.RoleID)
	must(t, err, "GetByRoleID")
	equal(t, got, r, "GetByRoleID")
	_, err = s.Roles().GetByRoleID(c, "rid-nope")
	wantErr(t, err, store.ErrNotFound, "GetByRoleID unknown")

	// Put replaces.
	r.Devices = []string{"simulator"}
	r.MaxShots = 10
	r.UpdatedAt = now().Add(time.Minute)
	must(t, s.Roles().Put(c, r), "Put replace")
	got, err = s.Roles().Get(c, "demo")
	must(t, err, "Get after replace")
	equal(t, got, r, "Get after replace")

	// Two roles may not share a role_id (it is how login finds the role);
	// roles without one never match an empty lookup.
	dup := sampleRole("other")
	dup.RoleID = r.RoleID
	wantErr(t, s.Roles().Put(c, dup), store.ErrConflict, "Put with another role's role_id")
	noID := sampleRole("no-id")
	noID.RoleID = ""
	must(t, s.Roles().Put(c, noID), "Put without role_id")
	noID2 := sampleRole("no-id-2")
	noID2.RoleID = ""
	must(t, s.Roles().Put(c, noID2), "second Put without role_id")
	_, err = s.Roles().GetByRoleID(c, "")
	wantErr(t, err, store.ErrNotFound, "GetByRoleID empty")

	names, err := s.Roles().List(c)
	must(t, err, "List")
	equal(t, names, []string{"demo", "no-id", "no-id-2"}, "List")

	must(t, s.Roles().Delete(c, "demo"), "Delete")
	_, err = s.Roles().Get(c, "demo")
	wantErr(t, err, store.ErrNotFound, "Get after Delete")
	wantErr(t, s.Roles().Delete(c, "demo"), store.ErrNotFound, "Delete twice")
}

// Replacing a role must not drop its secret IDs; deleting it must.
func testRolePutKeepsSecretIDs(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.Roles().Put(c, sampleRole("demo")), "Put")
	must(t, s.SecretIDs().Create(c, sampleSecretID("demo", "h1", 0, time.Time{})), "Create")
	must(t, s.SecretIDs().Create(c, sampleSecretID("demo", "h2", 0, time.Time{})), "Create")
	r := sampleRole("demo")
	r.MaxShots = 5
	must(t, s.Roles().Put(c, r), "Put replace")
	_, err := s.SecretIDs().Consume(c, "demo", "h1", now())
	must(t, err, "Consume after role replaced")

	must(t, s.Roles().Delete(c, "demo"), "Delete role")
	_, err = s.SecretIDs().Consume(c, "demo", "h2", now())
	wantErr(t, err, store.ErrNotFound, "Consume after role deleted")
	// A role recreated under the same name does not inherit them.
	must(t, s.Roles().Put(c, sampleRole("demo")), "Put again")
	_, err = s.SecretIDs().Consume(c, "demo", "h2", now())
	wantErr(t, err, store.ErrNotFound, "Consume after role recreated")
}

func testSecretIDs(t *testing.T, s store.Store) {
	c := ctx(t)
	sid := sampleSecretID("demo", "h1", 2, now().Add(time.Hour))
	wantErr(t, s.SecretIDs().Create(c, sid), store.ErrNotFound, "Create for a missing role")

	must(t, s.Roles().Put(c, sampleRole("demo")), "Put role")
	must(t, s.Roles().Put(c, sampleRole("other")), "Put role")
	must(t, s.SecretIDs().Create(c, sid), "Create")
	wantErr(t, s.SecretIDs().Create(c, sid), store.ErrConflict, "Create same hash")
	sameAcc := sampleSecretID("demo", "h2", 1, time.Time{})
	sameAcc.Accessor = sid.Accessor
	wantErr(t, s.SecretIDs().Create(c, sameAcc), store.ErrConflict, "Create same accessor")
	if err := s.SecretIDs().Create(c, sampleSecretID("demo", "hneg", -1, time.Time{})); err == nil {
		t.Fatal("Create with negative uses: no error")
	}

	got, err := s.SecretIDs().Consume(c, "demo", "h1", now())
	must(t, err, "Consume")
	equal(t, got, sid, "Consume returns the secret ID as before this use")

	// DeleteByAccessor is scoped to the role.
	wantErr(t, s.SecretIDs().DeleteByAccessor(c, "other", sid.Accessor), store.ErrNotFound, "DeleteByAccessor wrong role")
	must(t, s.SecretIDs().DeleteByAccessor(c, "demo", sid.Accessor), "DeleteByAccessor")
	wantErr(t, s.SecretIDs().DeleteByAccessor(c, "demo", sid.Accessor), store.ErrNotFound, "DeleteByAccessor twice")
	_, err = s.SecretIDs().Consume(c, "demo", "h1", now())
	wantErr(t, err, store.ErrNotFound, "Consume after DeleteByAccessor")

	// DeleteExpired: at or before now goes; later and never stay.
	must(t, s.SecretIDs().Create(c, sampleSecretID("demo", "past", 0, now().Add(-time.Second))), "Create past")
	must(t, s.SecretIDs().Create(c, sampleSecretID("demo", "exact", 0, now())), "Create exact")
	must(t, s.SecretIDs().Create(c, sampleSecretID("demo", "future", 0, now().Add(time.Nanosecond))), "Create future")
	must(t, s.SecretIDs().Create(c, sampleSecretID("demo", "never", 0, time.Time{})), "Create never")
	n, err := s.SecretIDs().DeleteExpired(c, now())
	must(t, err, "DeleteExpired")
	if n != 2 {
		t.Fatalf("DeleteExpired removed %d, want 2", n)
	}
	for _, h := range []string{"future", "never"} {
		_, err := s.SecretIDs().Consume(c, "demo", h, now())
		must(t, err, "Consume "+h+" after sweep")
	}
	n, err = s.SecretIDs().DeleteExpired(c, now())
	must(t, err, "DeleteExpired again")
	if n != 0 {
		t.Fatalf("second DeleteExpired removed %d, want 0", n)
	}
}
