package broker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
	"github.com/qbroker/qbroker/internal/token"
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// PutRole creates or replaces a role after validating it completely.
func (b *Broker) PutRole(ctx context.Context, c Caller, caller core.Token, name string, in api.Role) (api.Role, error) {
	ev := &audit.Event{Type: "admin", Action: "PutRole", Role: name, Agent: caller.AgentID, Accessor: caller.Accessor}
	if err := requireRoot(caller); err != nil {
		return api.Role{}, b.refuse(ctx, c, ev, err)
	}
	r, err := b.validateRole(name, in)
	if err != nil {
		return api.Role{}, b.refuse(ctx, c, ev, err)
	}
	in.Name, in.RoleID = name, ""
	if err := b.gateAdmin(ctx, c, caller, adminOp{Action: "AdminRoles", Op: "PutRole", Target: name,
		Summary: fmt.Sprintf("create or replace role %s (provider %s, devices %v, max shots %d, owner %q)", name, in.Provider, in.Devices, in.MaxShots, in.Owner),
		Params:  in}, ev); err != nil {
		return api.Role{}, b.refuseUnlessPending(ctx, c, ev, err)
	}
	now := b.now().UTC()
	r.CreatedAt, r.UpdatedAt = now, now
	err = b.cfg.Store.Update(ctx, func(tx store.Aggregates) error {
		old, err := tx.Roles().Get(ctx, name)
		switch {
		case err == nil:
			r.RoleID, r.CreatedAt = old.RoleID, old.CreatedAt
		case errors.Is(err, store.ErrNotFound):
			if r.RoleID, err = newUUID(); err != nil {
				return err
			}
		default:
			return err
		}
		return tx.Roles().Put(ctx, r)
	})
	b.roles.drop(name)
	b.tell(ctx, "role:"+name)
	if err != nil {
		return api.Role{}, fmt.Errorf("put role: %w", err)
	}
	ev.Decision = "allow"
	if err := b.record(ctx, c, ev); err != nil {
		return api.Role{}, err
	}
	return roleOut(r), nil
}

func (b *Broker) validateRole(name string, in api.Role) (core.Role, error) {
	var problems []string
	if !nameRE.MatchString(name) {
		problems = append(problems, "name must be 1-63 lowercase letters, digits, '.', '_' or '-'")
	}
	if in.Provider == "" {
		problems = append(problems, "provider is required")
	}
	if len(in.Devices) == 0 {
		problems = append(problems, "devices must name at least one device")
	}
	devices := b.rules.Load().devices
	for _, d := range in.Devices {
		if _, ok := devices[in.Provider+"/"+d]; !ok {
			problems = append(problems, fmt.Sprintf("device %q is not in the %s catalogue", d, in.Provider))
		}
	}
	if in.MaxShots <= 0 {
		problems = append(problems, "max_shots must be positive")
	}
	if in.JobTokenTTL.D() > core.MaxJobTokenTTL {
		problems = append(problems, fmt.Sprintf("job_token_ttl must be at most %s", core.MaxJobTokenTTL))
	}
	if in.TokenMaxTTL > 0 && in.TokenTTL > in.TokenMaxTTL {
		problems = append(problems, "token_ttl must not exceed token_max_ttl")
	}
	if in.SecretIDNumUses < 0 {
		problems = append(problems, "secret_id_num_uses must not be negative")
	}
	if len(problems) > 0 {
		return core.Role{}, core.Errorf(core.KindBadRequest, "invalid role: %s", strings.Join(problems, "; "))
	}
	return core.Role{
		Name: name, Provider: in.Provider, Devices: slices.Clone(in.Devices), MaxShots: in.MaxShots,
		TokenTTL: orDefault(in.TokenTTL.D(), time.Hour), TokenMaxTTL: orDefault(in.TokenMaxTTL.D(), 24*time.Hour),
		JobTokenTTL: orDefault(in.JobTokenTTL.D(), core.MaxJobTokenTTL), SecretIDTTL: in.SecretIDTTL.D(),
		SecretIDNumUses: in.SecretIDNumUses, Owner: in.Owner, Team: in.Team,
	}, nil
}

func roleOut(r core.Role) api.Role {
	return api.Role{
		Name: r.Name, Provider: r.Provider, Devices: r.Devices, MaxShots: r.MaxShots,
		TokenTTL: api.Duration(r.TokenTTL), TokenMaxTTL: api.Duration(r.TokenMaxTTL), JobTokenTTL: api.Duration(r.JobTokenTTL),
		SecretIDTTL: api.Duration(r.SecretIDTTL), SecretIDNumUses: r.SecretIDNumUses, Owner: r.Owner, Team: r.Team, RoleID: r.RoleID,
	}
}

// GetRole returns a role.
func (b *Broker) GetRole(ctx context.Context, caller core.Token, name string) (api.Role, error) {
	if err := requireRoot(caller); err != nil {
		return api.Role{}, err
	}
	r, err := b.role(ctx, name)
	if err != nil {
		return api.Role{}, err
	}
	return roleOut(r), nil
}

func (b *Broker) role(ctx context.Context, name string) (core.Role, error) {
	now := b.now()
	if r, ok := b.roles.get(name, now); ok {
		return r, nil
	}
	r, err := b.cfg.Store.Roles().Get(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return core.Role{}, core.Errorf(core.KindNotFound, "role %q not found", name)
	}
	if err != nil {
		return core.Role{}, err
	}
	b.roles.put(r, now)
	return r, nil
}

// roleByID finds a role by its AppRole role_id (store.ErrNotFound if none).
func (b *Broker) roleByID(ctx context.Context, id string) (core.Role, error) {
	now := b.now()
	if r, ok := b.roles.getByID(id, now); ok {
		return r, nil
	}
	r, err := b.cfg.Store.Roles().GetByRoleID(ctx, id)
	if err != nil {
		return core.Role{}, err
	}
	b.roles.put(r, now)
	return r, nil
}

// ListRoles lists role names.
func (b *Broker) ListRoles(ctx context.Context, caller core.Token) ([]string, error) {
	if err := requireRoot(caller); err != nil {
		return nil, err
	}
	return b.cfg.Store.Roles().List(ctx)
}

// DeleteRole deletes a role.
func (b *Broker) DeleteRole(ctx context.Context, c Caller, caller core.Token, name string) error {
	ev := &audit.Event{Type: "admin", Action: "DeleteRole", Role: name, Agent: caller.AgentID, Accessor: caller.Accessor}
	if err := requireRoot(caller); err != nil {
		return b.refuse(ctx, c, ev, err)
	}
	if err := b.gateAdmin(ctx, c, caller, adminOp{Action: "AdminRoles", Op: "DeleteRole", Target: name, Summary: "delete role " + name}, ev); err != nil {
		return b.refuseUnlessPending(ctx, c, ev, err)
	}
	err := b.cfg.Store.Roles().Delete(ctx, name)
	b.roles.drop(name)
	b.tell(ctx, "role:"+name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	ev.Decision = "allow"
	return b.record(ctx, c, ev)
}

// RoleID returns a role's AppRole role_id.
func (b *Broker) RoleID(ctx context.Context, caller core.Token, name string) (string, error) {
	if err := requireRoot(caller); err != nil {
		return "", err
	}
	r, err := b.role(ctx, name)
	if err != nil {
		return "", err
	}
	return r.RoleID, nil
}

// NewSecretID mints an AppRole secret ID for a role. It is returned once and
// stored only as a hash.
func (b *Broker) NewSecretID(ctx context.Context, c Caller, caller core.Token, roleName string, req api.SecretIDRequest) (api.SecretIDData, error) {
	ev := &audit.Event{Type: "admin", Action: "NewSecretID", Role: roleName, Agent: caller.AgentID, Accessor: caller.Accessor}
	if err := requireRoot(caller); err != nil {
		return api.SecretIDData{}, b.refuse(ctx, c, ev, err)
	}
	r, err := b.role(ctx, roleName)
	if err != nil {
		return api.SecretIDData{}, b.refuse(ctx, c, ev, err)
	}
	if req.Agent != "" && !nameRE.MatchString(req.Agent) {
		return api.SecretIDData{}, b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "agent must be 1-63 lowercase letters, digits, '.', '_' or '-'"))
	}
	ttl, uses := r.SecretIDTTL, r.SecretIDNumUses
	if req.TTL != nil {
		ttl = req.TTL.D()
	}
	if req.NumUses != nil {
		if *req.NumUses < 0 {
			return api.SecretIDData{}, b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "num_uses must not be negative"))
		}
		uses = *req.NumUses
	}
	raw, err := newSecretID()
	if err != nil {
		return api.SecretIDData{}, err
	}
	acc, err := token.NewAccessor()
	if err != nil {
		return api.SecretIDData{}, err
	}
	now := b.now().UTC()
	s := core.SecretID{Hash: token.Hash(raw), Accessor: acc, Role: roleName, Agent: req.Agent, Meta: req.Metadata, CreatedAt: now, UsesLeft: uses}
	if ttl > 0 {
		s.ExpiresAt = now.Add(ttl)
	}
	if err := b.cfg.Store.SecretIDs().Create(ctx, s); err != nil {
		return api.SecretIDData{}, err
	}
	ev.Decision = "allow"
	ev.Reason = "secret_id accessor " + acc
	if err := b.record(ctx, c, ev); err != nil {
		_ = b.cfg.Store.SecretIDs().DeleteByAccessor(context.WithoutCancel(ctx), roleName, acc)
		return api.SecretIDData{}, err
	}
	return api.SecretIDData{SecretID: raw, SecretIDAccessor: acc, SecretIDTTL: int(ttl / time.Second), SecretIDNumUses: uses, Agent: req.Agent}, nil
}

// newSecretID returns a random UUID-shaped secret (Vault's form), 122 bits.
func newSecretID() (string, error) { return newUUID() }

func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:]), nil
}
