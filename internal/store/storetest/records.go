package storetest

import (
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
)

func testAgents(t *testing.T, s store.Store) {
	c := ctx(t)
	_, err := s.Agents().Get(c, "approle:demo:a")
	wantErr(t, err, store.ErrNotFound, "Get before Upsert")

	a := core.Agent{
		ID: "approle:demo:a", Name: "a", Role: "demo", Owner: "alice", Team: "physics",
		AuthMethod: "approle", Labels: map[string]string{"env": "ci"}, CreatedAt: now(),
	}
	must(t, s.Agents().Upsert(c, a), "Upsert")
	got, err := s.Agents().Get(c, a.ID)
	must(t, err, "Get")
	equal(t, got, a, "Get after Upsert")

	a.Suspended = true
	a.Labels = nil
	must(t, s.Agents().Upsert(c, a), "Upsert again")
	got, err = s.Agents().Get(c, a.ID)
	must(t, err, "Get after update")
	equal(t, got, a, "Get after update (suspended, nil labels)")

	a.Labels = map[string]string{}
	must(t, s.Agents().Upsert(c, a), "Upsert empty labels")
	got, err = s.Agents().Get(c, a.ID)
	must(t, err, "Get empty labels")
	equal(t, got, a, "Get after update (empty labels)")
}

func testTokens(t *testing.T, s store.Store) {
	c := ctx(t)
	tk := s.Tokens()
	_, err := tk.Get(c, "h1")
	wantErr(t, err, store.ErrNotFound, "Get before Create")
	_, err = tk.GetByAccessor(c, "a1")
	wantErr(t, err, store.ErrNotFound, "GetByAccessor before Create")

	tok := sampleToken("h1", "a1", now().Add(time.Hour))
	must(t, tk.Create(c, tok), "Create")
	got, err := tk.Get(c, "h1")
	must(t, err, "Get")
	equal(t, got, tok, "Get")
	got, err = tk.GetByAccessor(c, "a1")
	must(t, err, "GetByAccessor")
	equal(t, got, tok, "GetByAccessor")

	wantErr(t, tk.Create(c, sampleToken("h1", "a-other", now())), store.ErrConflict, "Create same hash")
	wantErr(t, tk.Create(c, sampleToken("h-other", "a1", now())), store.ErrConflict, "Create same accessor")

	// Renewal.
	must(t, tk.SetExpiry(c, "h1", now().Add(2*time.Hour)), "SetExpiry")
	got, err = tk.Get(c, "h1")
	must(t, err, "Get after SetExpiry")
	tok.ExpiresAt = now().Add(2 * time.Hour)
	equal(t, got, tok, "Get after SetExpiry")
	wantErr(t, tk.SetExpiry(c, "nope", now()), store.ErrNotFound, "SetExpiry unknown")

	// Delete returns what it removed, once.
	got, err = tk.Delete(c, "h1")
	must(t, err, "Delete")
	equal(t, got, tok, "Delete result")
	_, err = tk.Get(c, "h1")
	wantErr(t, err, store.ErrNotFound, "Get after Delete")
	_, err = tk.GetByAccessor(c, "a1")
	wantErr(t, err, store.ErrNotFound, "GetByAccessor after Delete")
	_, err = tk.Delete(c, "h1")
	wantErr(t, err, store.ErrNotFound, "Delete twice")

	tok2 := sampleToken("h2", "a2", now().Add(time.Hour))
	must(t, tk.Create(c, tok2), "Create 2")
	got, err = tk.DeleteByAccessor(c, "a2")
	must(t, err, "DeleteByAccessor")
	equal(t, got, tok2, "DeleteByAccessor result")
	_, err = tk.Get(c, "h2")
	wantErr(t, err, store.ErrNotFound, "Get after DeleteByAccessor")
	_, err = tk.DeleteByAccessor(c, "a2")
	wantErr(t, err, store.ErrNotFound, "DeleteByAccessor twice")

	// The accessor of a deleted token can be reused.
	must(t, tk.Create(c, sampleToken("h3", "a1", now().Add(time.Hour))), "Create with a freed accessor")
}

func testTokensDeleteExpired(t *testing.T, s store.Store) {
	c := ctx(t)
	tk := s.Tokens()
	must(t, tk.Create(c, sampleToken("past", "a-past", now().Add(-time.Second))), "Create")
	must(t, tk.Create(c, sampleToken("exact", "a-exact", now())), "Create")
	must(t, tk.Create(c, sampleToken("future", "a-future", now().Add(time.Nanosecond))), "Create")
	must(t, tk.Create(c, sampleToken("never", "a-never", time.Time{})), "Create")
	n, err := tk.DeleteExpired(c, now())
	must(t, err, "DeleteExpired")
	if n != 2 {
		t.Fatalf("DeleteExpired removed %d, want 2", n)
	}
	for _, h := range []string{"past", "exact"} {
		_, err := tk.Get(c, h)
		wantErr(t, err, store.ErrNotFound, "Get swept "+h)
	}
	for _, h := range []string{"future", "never"} {
		_, err := tk.Get(c, h)
		must(t, err, "Get kept "+h)
	}
}

func testGrants(t *testing.T, s store.Store) {
	c := ctx(t)
	g := s.Grants()
	_, err := g.Get(c, "j1")
	wantErr(t, err, store.ErrNotFound, "Get before Create")
	gr := sampleGrant("j1", "a1", now().Add(time.Minute))
	must(t, g.Create(c, gr), "Create")
	got, err := g.Get(c, "j1")
	must(t, err, "Get")
	equal(t, got, gr, "Get")
	wantErr(t, g.Create(c, gr), store.ErrConflict, "Create same jti")

	// DeleteExpired(before) removes grants that expired strictly before.
	must(t, g.Create(c, sampleGrant("old", "a1", now().Add(-time.Second))), "Create old")
	must(t, g.Create(c, sampleGrant("edge", "a1", now())), "Create edge")
	n, err := g.DeleteExpired(c, now())
	must(t, err, "DeleteExpired")
	if n != 1 {
		t.Fatalf("DeleteExpired removed %d, want 1", n)
	}
	_, err = g.Get(c, "old")
	wantErr(t, err, store.ErrNotFound, "Get swept grant")
	for _, j := range []string{"edge", "j1"} {
		_, err := g.Get(c, j)
		must(t, err, "Get kept "+j)
	}
	// A swept grant cannot be redeemed.
	_, err = g.Redeem(c, "old", now().Add(-time.Hour))
	wantErr(t, err, store.ErrNotFound, "Redeem swept grant")
}

func testJobs(t *testing.T, s store.Store) {
	c := ctx(t)
	_, err := s.Jobs().Get(c, "ionq", "job-1")
	wantErr(t, err, store.ErrNotFound, "Get before Create")
	j := core.Job{Provider: "ionq", ID: "job-1", AgentID: "approle:demo:a", Role: "demo",
		JTI: "j1", Device: "simulator", Shots: 100, CreatedAt: now()}
	must(t, s.Jobs().Create(c, j), "Create")
	got, err := s.Jobs().Get(c, "ionq", "job-1")
	must(t, err, "Get")
	equal(t, got, j, "Get")

	// A job id cannot be re-recorded under another owner.
	steal := j
	steal.AgentID = "approle:demo:mallory"
	wantErr(t, s.Jobs().Create(c, steal), store.ErrConflict, "Create same job for another agent")
	got, err = s.Jobs().Get(c, "ionq", "job-1")
	must(t, err, "Get after conflicting Create")
	equal(t, got, j, "owner unchanged")

	// The key is (provider, id).
	other := j
	other.Provider = "braket"
	must(t, s.Jobs().Create(c, other), "same id, other provider")
	_, err = s.Jobs().Get(c, "ibm", "job-1")
	wantErr(t, err, store.ErrNotFound, "Get other provider")
}

func testSecrets(t *testing.T, s store.Store) {
	c := ctx(t)
	_, err := s.Secrets().Get(c, "k")
	wantErr(t, err, store.ErrNotFound, "Get before Put")
	sec := core.SealedSecret{Name: "k", Blob: []byte{0, 1, 2, 0xff, 0}, CreatedAt: now()}
	must(t, s.Secrets().Put(c, sec), "Put")
	got, err := s.Secrets().Get(c, "k")
	must(t, err, "Get")
	equal(t, got, sec, "Get")

	sec.Blob = []byte("resealed")
	sec.CreatedAt = now().Add(time.Hour)
	must(t, s.Secrets().Put(c, sec), "Put replace")
	got, err = s.Secrets().Get(c, "k")
	must(t, err, "Get after replace")
	equal(t, got, sec, "Get after replace")

	must(t, s.Secrets().Delete(c, "k"), "Delete")
	_, err = s.Secrets().Get(c, "k")
	wantErr(t, err, store.ErrNotFound, "Get after Delete")
	wantErr(t, s.Secrets().Delete(c, "k"), store.ErrNotFound, "Delete twice")
}

func testSecretsListPrefix(t *testing.T, s store.Store) {
	c := ctx(t)
	for _, n := range []string{"signing/2", "signing/1", "signingx", "Signing/3", "sig%/1", "sig_a", "audit/key", "provider/ionq"} {
		must(t, s.Secrets().Put(c, core.SealedSecret{Name: n, Blob: []byte(n), CreatedAt: now()}), "Put "+n)
	}
	names := func(prefix string) []string {
		t.Helper()
		list, err := s.Secrets().List(c, prefix)
		must(t, err, "List "+prefix)
		var out []string
		for _, sec := range list {
			if string(sec.Blob) != sec.Name {
				t.Fatalf("List %q: %s has blob %q", prefix, sec.Name, sec.Blob)
			}
			out = append(out, sec.Name)
		}
		return out
	}
	equal(t, names("signing/"), []string{"signing/1", "signing/2"}, "List signing/ (case-sensitive, ordered)")
	equal(t, names("sig%"), []string{"sig%/1"}, "List sig% (no wildcards)")
	equal(t, names("sig_"), []string{"sig_a"}, "List sig_ (no wildcards)")
	equal(t, names("nothing/"), []string(nil), "List unmatched prefix")
	if all := names(""); len(all) != 8 {
		t.Fatalf("List all: %d secrets, want 8: %v", len(all), all)
	}
}

func testTokensDeleteByAgent(t *testing.T, s store.Store) {
	c := ctx(t)
	tk := s.Tokens()
	a1, a2 := sampleToken("h1", "a1", now().Add(time.Hour)), sampleToken("h2", "a2", now().Add(time.Hour))
	other := sampleToken("h3", "a3", now().Add(time.Hour))
	other.AgentID = "approle:demo:someone-else"
	for _, tok := range []core.Token{a1, a2, other} {
		must(t, tk.Create(c, tok), "Create")
	}
	got, err := tk.DeleteByAgent(c, a1.AgentID)
	must(t, err, "DeleteByAgent")
	if len(got) != 2 {
		t.Fatalf("DeleteByAgent removed %d tokens, want 2", len(got))
	}
	for _, h := range []string{"h1", "h2"} {
		_, err := tk.Get(c, h)
		wantErr(t, err, store.ErrNotFound, "Get revoked "+h)
	}
	_, err = tk.Get(c, "h3")
	must(t, err, "another agent's token survives")
	got, err = tk.DeleteByAgent(c, a1.AgentID)
	must(t, err, "DeleteByAgent again")
	if len(got) != 0 {
		t.Fatalf("second DeleteByAgent removed %d", len(got))
	}
}

func testTokensDelegation(t *testing.T, s store.Store) {
	c := ctx(t)
	tk := s.Tokens()
	person := sampleToken("hp", "acc-person", now().Add(time.Hour))
	person.AgentID = "oidc:corp:alice"
	child := sampleToken("hc", "acc-child", now().Add(time.Hour))
	child.ActingFor, child.ParentAccessor = person.AgentID, person.Accessor
	unrelated := sampleToken("hu", "acc-other", now().Add(time.Hour))
	for _, tok := range []core.Token{person, child, unrelated} {
		must(t, tk.Create(c, tok), "Create")
	}
	got, err := tk.Get(c, "hc")
	must(t, err, "Get child")
	equal(t, got, child, "delegated token round trip")
	gone, err := tk.DeleteByParent(c, person.Accessor)
	must(t, err, "DeleteByParent")
	if len(gone) != 1 || gone[0].Hash != "hc" {
		t.Fatalf("DeleteByParent removed %+v", gone)
	}
	for _, h := range []string{"hp", "hu"} {
		_, err := tk.Get(c, h)
		must(t, err, "kept "+h)
	}
	gone, err = tk.DeleteByParent(c, "")
	must(t, err, "DeleteByParent empty")
	if len(gone) != 0 {
		t.Fatal("DeleteByParent with an empty accessor removed tokens")
	}
}

func testJobsByAgent(t *testing.T, s store.Store) {
	c := ctx(t)
	for i, id := range []string{"j-old", "j-mid", "j-new"} {
		must(t, s.Jobs().Create(c, core.Job{Provider: "ionq", ID: id, AgentID: "approle:demo:a", Role: "demo", JTI: id, Device: "simulator", Shots: 1,
			CreatedAt: now().Add(time.Duration(i) * time.Second)}), "Create")
	}
	must(t, s.Jobs().Create(c, core.Job{Provider: "ionq", ID: "j-other", AgentID: "approle:demo:b", Role: "demo", JTI: "x", Device: "simulator", Shots: 1, CreatedAt: now()}), "Create other")
	got, err := s.Jobs().ListByAgent(c, "approle:demo:a", 2)
	must(t, err, "ListByAgent")
	if len(got) != 2 || got[0].ID != "j-new" || got[1].ID != "j-mid" {
		t.Fatalf("ListByAgent: %+v", got)
	}
	none, err := s.Jobs().ListByAgent(c, "approle:demo:nobody", 10)
	must(t, err, "ListByAgent none")
	if len(none) != 0 {
		t.Fatalf("jobs of nobody: %+v", none)
	}
}

func testTokensDeleteByRole(t *testing.T, s store.Store) {
	c := ctx(t)
	tk := s.Tokens()
	a, b := sampleToken("h1", "a1", now().Add(time.Hour)), sampleToken("h2", "a2", now().Add(time.Hour))
	b.Role = "other"
	must(t, tk.Create(c, a), "Create")
	must(t, tk.Create(c, b), "Create")
	gone, err := tk.DeleteByRole(c, a.Role)
	must(t, err, "DeleteByRole")
	if len(gone) != 1 || gone[0].Hash != "h1" {
		t.Fatalf("DeleteByRole removed %+v", gone)
	}
	_, err = tk.Get(c, "h2")
	must(t, err, "another role's token survives")
	if gone, _ := tk.DeleteByRole(c, ""); len(gone) != 0 {
		t.Fatal("DeleteByRole with an empty role removed tokens")
	}
}
