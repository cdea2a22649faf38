package broker

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/circuit"
	"github.com/qbroker/qbroker/internal/circuit/qasm"
	"github.com/qbroker/qbroker/internal/circuit/quil"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/policy"
	"github.com/qbroker/qbroker/internal/store"
	"github.com/qbroker/qbroker/internal/token"
)

// IssueJobToken runs the pipeline for POST /v1/quantum/jobtoken/<role>:
// the caller's role → request validation → role ceilings → Cedar → sign →
// record the grant → audit. Nothing is issued unless every step allows it.
func (b *Broker) IssueJobToken(ctx context.Context, c Caller, caller core.Token, roleName string, req api.JobTokenRequest) (api.JobTokenData, error) {
	defer b.stage("issue", time.Now())
	ev := &audit.Event{
		Type: "issue", Action: "SubmitJob", Agent: caller.AgentID, Role: roleName, AuthMethod: caller.AuthMethod,
		Accessor: caller.Accessor, Provider: req.Provider, Device: req.Device, Shots: req.Shots, ActingFor: caller.ActingFor,
	}
	if caller.Role != roleName {
		return api.JobTokenData{}, b.refuse(ctx, c, ev, core.Errorf(core.KindPermissionDenied, "permission denied: token is not for role %q", roleName))
	}
	if err := validateJobRequest(req); err != nil {
		return api.JobTokenData{}, b.refuse(ctx, c, ev, err)
	}
	role, err := b.role(ctx, roleName)
	if err != nil {
		return api.JobTokenData{}, b.refuse(ctx, c, ev, err)
	}
	rs := b.rules.Load()
	dev, ok := rs.devices[req.Provider+"/"+req.Device]
	if !ok {
		return api.JobTokenData{}, b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "unknown device %q for provider %q", req.Device, req.Provider))
	}
	if err := b.frozenFor(req.Provider, req.Device); err != nil {
		return api.JobTokenData{}, b.refuse(ctx, c, ev, err)
	}
	if !role.AllowsDevice(req.Provider, req.Device) {
		return api.JobTokenData{}, b.refuse(ctx, c, ev, core.Errorf(core.KindPermissionDenied, "role %q does not allow device %s/%s", roleName, req.Provider, req.Device))
	}
	if req.Shots > role.MaxShots {
		return api.JobTokenData{}, b.refuse(ctx, c, ev, core.Errorf(core.KindPermissionDenied, "role %q allows at most %d shots; request asks for %d", roleName, role.MaxShots, req.Shots))
	}
	if dev.MaxShots > 0 && req.Shots > dev.MaxShots {
		return api.JobTokenData{}, b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "device %s/%s takes at most %d shots", req.Provider, req.Device, dev.MaxShots))
	}

	qubits, err := checkProgram(&req, dev)
	if err != nil {
		return api.JobTokenData{}, b.refuse(ctx, c, ev, err)
	}

	now := b.now()
	local := now.In(b.cfg.Location)
	est := dev.EstimateUSD(req.Shots)
	decide := func(approved bool) policy.Decision {
		defer b.stage("decision", time.Now())
		return rs.policy.Decide(policy.Request{
			Agent:    policy.Agent{ID: caller.AgentID, Role: roleName, Owner: role.Owner, Team: role.Team, AuthMethod: caller.AuthMethod, ActingFor: caller.ActingFor},
			Action:   "SubmitJob",
			Provider: req.Provider,
			Device:   &policy.Device{Provider: dev.Provider, Name: dev.Name, Kind: dev.Kind, Vendor: dev.Vendor, ARN: dev.ARN, Qubits: dev.Qubits},
			Context: policy.Context{
				Shots: req.Shots, EstimatedCostUSD: est, ProgramSHA256: req.ProgramSHA256, Qubits: qubits,
				SourceIP: hostOf(c.RemoteAddr), Hour: local.Hour(), Weekday: int(local.Weekday()), Approved: approved,
			},
		})
	}
	var approvalID string
	dec := decide(false)
	if req.ApprovalID != "" {
		ev.ApprovalID = req.ApprovalID
		if _, err := b.checkApproved(ctx, caller, req); err != nil {
			return api.JobTokenData{}, b.refuse(ctx, c, ev, err)
		}
		approvalID, dec = req.ApprovalID, decide(true)
	} else {
		withApproval := dec
		if !dec.Allowed {
			withApproval = decide(true)
		}
		need, err := b.approvalNeeded(ctx, caller, role, dev, req, est, dec, withApproval)
		if err != nil {
			ev.Type, ev.Policies = "decision", withApproval.Policies
			return api.JobTokenData{}, b.refuse(ctx, c, ev, err)
		}
		if need != nil {
			ev.Policies = withApproval.Policies
			return api.JobTokenData{}, b.hold(ctx, c, caller, role, dev, req, est, need, ev)
		}
	}
	ev.Policies = dec.Policies
	if !dec.Allowed {
		ev.Type = "decision"
		return api.JobTokenData{}, b.refuse(ctx, c, ev, core.Errorf(core.KindPermissionDenied, "permission denied: %s", dec.Reason))
	}

	ttl := min(orDefault(role.JobTokenTTL, core.MaxJobTokenTTL), core.MaxJobTokenTTL)
	exp := now.Add(ttl)
	if !caller.ExpiresAt.IsZero() && caller.ExpiresAt.Before(exp) {
		exp = caller.ExpiresAt // a job token never outlives the token it came from
	}
	jti, err := newJTI(b.cfg.Instance)
	if err != nil {
		return api.JobTokenData{}, err
	}
	claims := token.Claims{
		Issuer: b.cfg.Issuer, Subject: caller.AgentID, Audience: b.cfg.Audience,
		IssuedAt: now, NotBefore: now, Expiry: exp, ID: jti,
		Role: roleName, Provider: req.Provider, Device: req.Device, MaxShots: req.Shots, ProgramSHA256: req.ProgramSHA256,
		MaxCostUSD: est, ApprovalID: approvalID,
	}
	signed, err := b.keys.Sign(claims)
	if err != nil {
		return api.JobTokenData{}, fmt.Errorf("sign job token: %w", err)
	}
	g := core.JobGrant{
		JTI: jti, Accessor: caller.Accessor, AgentID: caller.AgentID, Role: roleName, Provider: req.Provider, Device: req.Device,
		MaxShots: req.Shots, ProgramSHA256: req.ProgramSHA256, IssuedAt: now.UTC(), ExpiresAt: exp.UTC(),
	}
	checks := b.budgetChecks(caller.AgentID, roleName, role.Team, class(dev), now)
	resv := core.Reservation{JTI: jti, AgentID: caller.AgentID, Role: roleName, Team: role.Team, Class: class(dev), Shots: req.Shots,
		EstimatedQPUSeconds: dev.EstimateQPUSeconds(req.Shots), ActualQPUSeconds: -1,
		EstimatedUSD: est, ActualUSD: -1, State: core.ReservationReserved, CreatedAt: now.UTC(), ExpiresAt: exp.UTC()}
	wait, err := store.UpdatePipelined(ctx, b.cfg.Store, func(tx store.Aggregates) error {
		// Reserve the token's shots and estimate against every limit, with
		// the grant: both commit, or neither.
		start := time.Now()
		err := tx.Budgets().Reserve(ctx, resv, storeChecks(checks))
		b.stage("budget", start)
		if err != nil {
			return err
		}
		if approvalID != "" {
			// Issued once: the grant and the approval's use commit together.
			if err := tx.Approvals().MarkIssued(ctx, approvalID, jti); err != nil {
				return err
			}
		}
		return tx.Grants().Create(ctx, g)
	})
	if errors.Is(err, store.ErrClosed) {
		return api.JobTokenData{}, b.refuse(ctx, c, ev, core.Errorf(core.KindConflict, "approval %s was already used; ask for a new approval", approvalID))
	}
	var be *store.BudgetExceeded
	if errors.As(err, &be) {
		ev.Type, ev.Action = "budget", "Reserve"
		ev.EstimatedCostUSD = audit.USD(est)
		return api.JobTokenData{}, b.refuse(ctx, c, ev, budgetRefusal(be, checks, resv))
	}
	if err != nil {
		return api.JobTokenData{}, fmt.Errorf("record grant: %w", err)
	}
	b.budgetAlerts(checks)
	ev.JTI, ev.Decision, ev.Reason = jti, "allow", dec.Reason
	ev.Owner, ev.EstimatedCostUSD = role.Owner, audit.USD(est)
	commitErr, auditErr := b.commitAndRecord(ctx, c, wait, ev)
	if commitErr != nil {
		return api.JobTokenData{}, fmt.Errorf("record grant: %w", commitErr)
	}
	if auditErr != nil {
		return api.JobTokenData{}, auditErr // the grant is never handed out, so it is never redeemed
	}
	return api.JobTokenData{
		Token: signed, JTI: jti, ExpiresAt: exp.UTC(), GatewayAddr: b.cfg.GatewayAddr,
		Provider: req.Provider, Device: req.Device, MaxShots: req.Shots, ProgramSHA256: req.ProgramSHA256, Policies: dec.Policies,
	}, nil
}

func validateJobRequest(req api.JobTokenRequest) error {
	switch {
	case req.Provider == "":
		return core.Errorf(core.KindBadRequest, "provider is required")
	case req.Device == "":
		return core.Errorf(core.KindBadRequest, "device is required")
	case req.Shots <= 0:
		return core.Errorf(core.KindBadRequest, "shots must be a positive integer")
	case req.ProgramSHA256 != "" && !isHex64(req.ProgramSHA256):
		return core.Errorf(core.KindBadRequest, "program_sha256 must be 64 lowercase hex characters")
	case len(req.ApprovalID) > 64:
		return core.Errorf(core.KindBadRequest, "approval_id is too long")
	}
	return nil
}

// checkProgram validates the program a request carries, fills in its
// digest (refusing a program_sha256 that does not match it) and returns
// its qubit count (0 without a program).
func checkProgram(req *api.JobTokenRequest, dev Device) (int, error) {
	if len(req.Program) == 0 || string(req.Program) == "null" {
		if req.Format != "" {
			return 0, core.Errorf(core.KindBadRequest, "format %q given without a program", req.Format)
		}
		req.Program = nil
		return 0, nil
	}
	if req.Format == "" {
		req.Format = api.FormatIonQ
	}
	var qubits int
	var digest string
	switch req.Format {
	case api.FormatIonQ:
		in, err := circuit.ParseInput(req.Program)
		if err != nil {
			return 0, core.Errorf(core.KindBadRequest, "program: %s", err)
		}
		if digest, err = circuit.Digest(req.Program); err != nil {
			return 0, core.Errorf(core.KindBadRequest, "program: %s", err)
		}
		qubits = in.Qubits
	case api.FormatQASM3, api.FormatQASM2:
		var src string
		if err := json.Unmarshal(req.Program, &src); err != nil {
			return 0, core.Errorf(core.KindBadRequest, "program: format %s takes the OpenQASM source as a JSON string", req.Format)
		}
		p, err := qasm.Parse([]byte(src))
		if err != nil {
			return 0, core.Errorf(core.KindBadRequest, "program: %s", err)
		}
		if want := map[string]string{api.FormatQASM3: "3", api.FormatQASM2: "2.0"}[req.Format]; p.Version != want && !(want == "3" && p.Version == "3.0") {
			return 0, core.Errorf(core.KindBadRequest, "program: format %s given an OpenQASM %s program", req.Format, p.Version)
		}
		qubits, digest = p.Qubits, qasm.Digest([]byte(src))
	case api.FormatQuil:
		var src string
		if err := json.Unmarshal(req.Program, &src); err != nil {
			return 0, core.Errorf(core.KindBadRequest, "program: format %s takes the Quil source as a JSON string", req.Format)
		}
		p, err := quil.Parse([]byte(src))
		if err != nil {
			return 0, core.Errorf(core.KindBadRequest, "program: %s", err)
		}
		// Quil names physical qubits: the highest index must exist.
		if n := len(p.Qubits); n > 0 {
			qubits = p.Qubits[n-1] + 1
		}
		digest = quil.Digest([]byte(src))
	default:
		return 0, core.Errorf(core.KindBadRequest, "format %q is not supported (%s, %s, %s or %s)", req.Format, api.FormatIonQ, api.FormatQASM3, api.FormatQASM2, api.FormatQuil)
	}
	if qubits > dev.Qubits {
		return 0, core.Errorf(core.KindBadRequest, "program uses %d qubits; device %s/%s has %d", qubits, dev.Provider, dev.Name, dev.Qubits)
	}
	if req.ProgramSHA256 != "" && req.ProgramSHA256 != digest {
		return 0, core.Errorf(core.KindBadRequest, "program_sha256 does not match the program (its digest is %s)", digest)
	}
	req.ProgramSHA256 = digest
	return qubits, nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && s == toLower(s)
}

func toLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// newJTI is a fresh job token id: 144 random bits, after the issuing
// instance's name and a dot when it has one.
func newJTI(instance string) (string, error) {
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	id := base64.RawURLEncoding.EncodeToString(b[:])
	if instance != "" {
		id = instance + "." + id
	}
	return id, nil
}

// Redeem errors the gateway branches on.
var (
	ErrTokenUsed    = core.Errorf(core.KindUnauthenticated, "job token already used")
	ErrTokenExpired = core.Errorf(core.KindUnauthenticated, "job token expired")
	ErrTokenRevoked = core.Errorf(core.KindUnauthenticated, "job token revoked: the broker token it came from is no longer valid")
	ErrTokenUnknown = core.Errorf(core.KindUnauthenticated, "job token unknown to this broker")
)

// Redeem marks a job token used, exactly once across every gateway.
func (b *Broker) Redeem(ctx context.Context, c Caller, jti string) error {
	defer b.stage("redeem", time.Now())
	ev := &audit.Event{Type: "redeem", JTI: jti}
	if jti == "" {
		return b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "jti is required"))
	}
	if b.freeze.Load() != nil { // only while frozen: one extra read
		if g, err := b.cfg.Store.Grants().Get(ctx, jti); err == nil {
			if ferr := b.frozenFor(g.Provider, g.Device); ferr != nil {
				ev.Agent, ev.Provider, ev.Device, ev.Reason = g.AgentID, g.Provider, g.Device, core.UserMessage(ferr)
				return b.refuse(ctx, c, ev, ErrTokenRevoked)
			}
		}
	}
	var g core.JobGrant
	wait, err := store.UpdatePipelined(ctx, b.cfg.Store, func(tx store.Aggregates) (err error) {
		if g, err = tx.Grants().Redeem(ctx, jti, b.now()); err != nil {
			return err
		}
		return tx.Budgets().Confirm(ctx, jti) // submitted: no longer released at the token's expiry
	})
	ev.Agent, ev.Role, ev.Provider, ev.Device, ev.Shots, ev.Accessor = g.AgentID, g.Role, g.Provider, g.Device, g.MaxShots, g.Accessor
	switch {
	case err == nil:
	case errors.Is(err, store.ErrRedeemed):
		return b.refuse(ctx, c, ev, ErrTokenUsed)
	case errors.Is(err, store.ErrExpired):
		return b.refuse(ctx, c, ev, ErrTokenExpired)
	case errors.Is(err, store.ErrRevoked):
		return b.refuse(ctx, c, ev, ErrTokenRevoked)
	case errors.Is(err, store.ErrNotFound):
		return b.refuse(ctx, c, ev, ErrTokenUnknown)
	default:
		return fmt.Errorf("redeem: %w", err)
	}
	ev.Decision = "allow"
	commitErr, auditErr := b.commitAndRecord(ctx, c, wait, ev)
	if commitErr != nil {
		return fmt.Errorf("redeem: %w", commitErr)
	}
	return auditErr // the token is spent either way; without a durable record nothing is forwarded
}

// RecordJob remembers who owns a provider job.
func (b *Broker) RecordJob(ctx context.Context, c Caller, j api.JobRecord) error {
	if j.Provider == "" || j.ID == "" || j.AgentID == "" {
		return core.Errorf(core.KindBadRequest, "provider, id and agent_id are required")
	}
	if j.CreatedAt.IsZero() {
		j.CreatedAt = b.now().UTC()
	}
	err := b.cfg.Store.Jobs().Create(ctx, core.Job{Provider: j.Provider, ID: j.ID, AgentID: j.AgentID, Role: j.Role, JTI: j.JTI, Device: j.Device, Shots: j.Shots, CreatedAt: j.CreatedAt})
	if errors.Is(err, store.ErrConflict) {
		return core.Errorf(core.KindConflict, "job %s/%s already recorded", j.Provider, j.ID)
	}
	if err == nil {
		b.jobs.put(j.Provider+"/"+j.ID, j)
	}
	return err
}

// Job returns the record of a provider job.
// Job records never change once written, so they are cached.
func (b *Broker) Job(ctx context.Context, provider, id string) (api.JobRecord, error) {
	if r, ok := b.jobs.get(provider + "/" + id); ok {
		return r, nil
	}
	j, err := b.cfg.Store.Jobs().Get(ctx, provider, id)
	if errors.Is(err, store.ErrNotFound) {
		return api.JobRecord{}, core.Errorf(core.KindNotFound, "job not found")
	}
	if err != nil {
		return api.JobRecord{}, err
	}
	r := api.JobRecord{Provider: j.Provider, ID: j.ID, AgentID: j.AgentID, Role: j.Role, JTI: j.JTI, Device: j.Device, Shots: j.Shots, CreatedAt: j.CreatedAt}
	b.jobs.put(provider+"/"+id, r)
	return r, nil
}

// jobActions are the actions AuthorizeJob decides.
var jobActions = map[string]bool{policy.ActionReadJob: true, policy.ActionReadResult: true, policy.ActionCancelJob: true}

// AuthorizeJob decides whether the agent behind the broker token raw may do
// action on job — reading its status or results, or cancelling it — with
// the Job as the Cedar resource (owner, team, device). Refusals are audited
// and name the reason.
func (b *Broker) AuthorizeJob(ctx context.Context, c Caller, raw, action string, job api.JobRecord) error {
	t, err := b.Authenticate(ctx, raw)
	if err != nil {
		return err
	}
	if !jobActions[action] {
		return core.Errorf(core.KindBadRequest, "action %q is not a job action", action)
	}
	var owner, team string
	if t.Role != "" {
		role, err := b.role(ctx, t.Role)
		if err != nil && core.KindOf(err) != core.KindNotFound {
			return err
		}
		owner, team = role.Owner, role.Team
	}
	jobTeam := ""
	if job.Role != "" {
		if jr, err := b.role(ctx, job.Role); err == nil {
			jobTeam = jr.Team
		}
	}
	rs := b.rules.Load()
	req := policy.Request{
		Agent:    policy.Agent{ID: t.AgentID, Role: t.Role, Owner: owner, Team: team, AuthMethod: t.AuthMethod, ActingFor: t.ActingFor},
		Action:   action,
		Provider: job.Provider,
		Job:      &policy.Job{ID: job.ID, Owner: job.AgentID, Team: jobTeam, Provider: job.Provider, DeviceID: job.Provider + "/" + job.Device},
	}
	if dev, ok := rs.devices[job.Provider+"/"+job.Device]; ok {
		req.Device = &policy.Device{Provider: dev.Provider, Name: dev.Name, Kind: dev.Kind, Vendor: dev.Vendor, ARN: dev.ARN, Qubits: dev.Qubits}
	}
	dec := rs.policy.Decide(req)
	if dec.Allowed {
		return nil
	}
	ev := &audit.Event{Type: "decision", Action: action, Agent: t.AgentID, Role: t.Role, Accessor: t.Accessor, Provider: job.Provider, Device: job.Device, JobID: job.ID, Policies: dec.Policies}
	return b.refuse(ctx, c, ev, core.Errorf(core.KindPermissionDenied, "permission denied: %s", dec.Reason))
}
