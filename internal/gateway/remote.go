package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/provider"
)

// Cache bounds of RemoteBroker.
const (
	// AgentCacheTTL is how long RemoteBroker remembers a broker token's
	// agent. It is well under a second so that a revoked broker token stops
	// working at this gateway within a second (invariant 9), p99 included.
	AgentCacheTTL = 500 * time.Millisecond
	// agentCacheMax and jobCacheMax bound the caches' entries.
	agentCacheMax = 4096
	jobCacheMax   = 8192
	// maxBrokerBody bounds a broker answer.
	maxBrokerBody = 1 << 20
)

// RemoteBroker implements [Broker] over the broker's HTTP API, authenticated
// with a gateway token (X-Vault-Token). It is what `qbroker gateway` uses.
//
// Caching, all in memory only:
//   - Credential: kept per provider until InvalidateCredential (the gateway
//     calls it when the upstream answers 401), then fetched again.
//   - AgentForToken: successful lookups for at most [AgentCacheTTL] (1 s)
//     and never past the token's own expiry, keyed by the token's SHA-256,
//     at most 4096 entries. Failures are not cached.
//   - Job: found records, at most 8192 entries. A record's owner never
//     changes, so a cached record cannot go stale; absences are not cached.
//
// It is safe for concurrent use.
type RemoteBroker struct {
	base   string
	token  string
	client *http.Client
	now    func() time.Time

	mu     sync.Mutex
	creds  map[string]string           // provider -> API key
	agents map[[32]byte]agentEntry     // sha256(broker token) -> agent
	jobs   map[[2]string]api.JobRecord // {provider, id} -> record
	// upstreams: "<provider>/<role>" -> credential and scope (memory only)
	upstreams map[string]cachedUpstream
	// rejected: "<provider>/<role>" -> the digest of a credential the
	// provider refused, told to the broker with the next fetch
	rejected map[string]string
}

type agentEntry struct {
	agent, role string
	expires     time.Time
}

var (
	_ Broker                = (*RemoteBroker)(nil)
	_ CredentialInvalidator = (*RemoteBroker)(nil)
)

// NewRemoteBroker returns a Broker that calls the broker at baseURL (e.g.
// https://broker:8200) with gatewayToken. A nil client means a dedicated
// client with a tuned Transport and a 30 s timeout.
func NewRemoteBroker(baseURL string, gatewayToken string, client *http.Client) *RemoteBroker {
	if client == nil {
		client = &http.Client{Transport: NewTransport(), Timeout: 30 * time.Second}
	}
	return &RemoteBroker{
		base:   strings.TrimRight(baseURL, "/"),
		token:  gatewayToken,
		client: client,
		now:    time.Now,
		creds:  make(map[string]string),
		agents: make(map[[32]byte]agentEntry),
		jobs:   make(map[[2]string]api.JobRecord),
	}
}

// brokerStatusError is a broker answer the contract does not map to a
// sentinel.
type brokerStatusError struct {
	op     string
	status int
	msg    string
}

func (e *brokerStatusError) Error() string {
	if e.msg == "" {
		return fmt.Sprintf("gateway: broker %s: status %d", e.op, e.status)
	}
	return fmt.Sprintf("gateway: broker %s: status %d: %s", e.op, e.status, e.msg)
}

// call sends one request. in (if non-nil) is sent as JSON; on 200 the body
// is decoded into out (if non-nil). It returns the status; for a status
// other than 200/204 the body's first error message is returned as msg.
func (b *RemoteBroker) call(ctx context.Context, method, path string, in, out any) (status int, msg string, err error) {
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return 0, "", fmt.Errorf("gateway: encode broker request: %w", err)
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, body)
	if err != nil {
		return 0, "", fmt.Errorf("gateway: build broker request: %w", err)
	}
	req.Header.Set(api.TokenHeader, b.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("gateway: broker %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBrokerBody))
	if err != nil {
		return 0, "", fmt.Errorf("gateway: read broker answer: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if out != nil {
			if err := json.Unmarshal(raw, out); err != nil {
				return resp.StatusCode, "", fmt.Errorf("gateway: decode broker answer to %s %s: %w", method, path, err)
			}
		}
		return resp.StatusCode, "", nil
	case http.StatusNoContent:
		return resp.StatusCode, "", nil
	}
	var er api.ErrorResponse
	if json.Unmarshal(raw, &er) == nil && len(er.Errors) > 0 {
		msg = truncate(er.Errors[0])
	}
	return resp.StatusCode, msg, nil
}

// Redeem implements Broker.
func (b *RemoteBroker) Redeem(ctx context.Context, jti string) error {
	status, msg, err := b.call(ctx, http.MethodPost, "/v1/sys/gateway/redeem", api.RedeemRequest{JTI: jti}, nil)
	if err != nil {
		return err
	}
	switch status {
	case http.StatusNoContent, http.StatusOK:
		return nil
	case http.StatusConflict:
		return ErrTokenUsed
	case http.StatusGone:
		return ErrTokenExpired
	case http.StatusForbidden:
		return ErrTokenRevoked
	case http.StatusNotFound:
		return ErrUnknownToken
	}
	return &brokerStatusError{op: "redeem", status: status, msg: msg}
}

// RecordJob implements Broker.
func (b *RemoteBroker) RecordJob(ctx context.Context, j api.JobRecord) error {
	status, msg, err := b.call(ctx, http.MethodPost, "/v1/sys/gateway/jobs", j, nil)
	if err != nil {
		return err
	}
	if status != http.StatusNoContent && status != http.StatusOK {
		return &brokerStatusError{op: "record job", status: status, msg: msg}
	}
	b.mu.Lock()
	b.putJob(j)
	b.mu.Unlock()
	return nil
}

// putJob caches a record; b.mu must be held.
func (b *RemoteBroker) putJob(j api.JobRecord) {
	if len(b.jobs) >= jobCacheMax {
		evictSome(b.jobs)
	}
	b.jobs[[2]string{j.Provider, j.ID}] = j
}

// evictSome drops about a quarter of m's entries (arbitrary ones: map
// iteration order is unspecified).
func evictSome[K comparable, V any](m map[K]V) {
	n := len(m)/4 + 1
	for k := range m {
		if n == 0 {
			return
		}
		delete(m, k)
		n--
	}
}

// Job implements Broker.
func (b *RemoteBroker) Job(ctx context.Context, provider, id string) (api.JobRecord, error) {
	key := [2]string{provider, id}
	b.mu.Lock()
	j, ok := b.jobs[key]
	b.mu.Unlock()
	if ok {
		return j, nil
	}
	var out struct {
		Data api.JobRecord `json:"data"`
	}
	path := "/v1/sys/gateway/jobs/" + url.PathEscape(provider) + "/" + url.PathEscape(id)
	status, msg, err := b.call(ctx, http.MethodGet, path, nil, &out)
	if err != nil {
		return api.JobRecord{}, err
	}
	switch status {
	case http.StatusOK:
	case http.StatusNotFound:
		return api.JobRecord{}, ErrNotFound
	default:
		return api.JobRecord{}, &brokerStatusError{op: "job lookup", status: status, msg: msg}
	}
	if out.Data.Provider != provider || out.Data.ID != id {
		return api.JobRecord{}, fmt.Errorf("gateway: broker answered job lookup for %s/%s with another job", provider, id)
	}
	b.mu.Lock()
	b.putJob(out.Data)
	b.mu.Unlock()
	return out.Data, nil
}

// AgentForToken implements Broker.
func (b *RemoteBroker) AgentForToken(ctx context.Context, brokerToken string) (string, error) {
	agent, _, err := b.RoleForToken(ctx, brokerToken)
	return agent, err
}

// RoleForToken implements RoleResolver: the token's agent and broker role,
// from the same short cache as AgentForToken.
func (b *RemoteBroker) RoleForToken(ctx context.Context, brokerToken string) (agent, role string, err error) {
	if brokerToken == "" {
		return "", "", ErrBadBrokerToken
	}
	key := sha256.Sum256([]byte(brokerToken))
	now := b.now()
	b.mu.Lock()
	e, ok := b.agents[key]
	b.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.agent, e.role, nil
	}
	var out struct {
		Data api.TokenInfo `json:"data"`
	}
	status, msg, err := b.call(ctx, http.MethodPost, "/v1/auth/token/lookup", api.TokenRequest{Token: brokerToken}, &out)
	if err != nil {
		return "", "", err
	}
	switch status {
	case http.StatusOK:
	case http.StatusForbidden:
		return "", "", ErrBadBrokerToken
	default:
		return "", "", &brokerStatusError{op: "token lookup", status: status, msg: msg}
	}
	agent = out.Data.EntityID
	if agent == "" {
		return "", "", ErrBadBrokerToken
	}
	role = out.Data.Role
	expires := now.Add(AgentCacheTTL)
	if exp := out.Data.ExpireTime; exp != nil && !exp.IsZero() {
		if !now.Before(*exp) {
			return "", "", ErrBadBrokerToken
		}
		if exp.Before(expires) {
			expires = *exp
		}
	}
	b.mu.Lock()
	if len(b.agents) >= agentCacheMax {
		for k, v := range b.agents {
			if !now.Before(v.expires) {
				delete(b.agents, k)
			}
		}
		if len(b.agents) >= agentCacheMax {
			evictSome(b.agents)
		}
	}
	b.agents[key] = agentEntry{agent: agent, role: role, expires: expires}
	b.mu.Unlock()
	return agent, role, nil
}

// Authorize implements Broker: POST /v1/sys/gateway/authorize; 204 allows,
// 403 refuses with the policy's reason.
func (b *RemoteBroker) Authorize(ctx context.Context, brokerToken, action string, job api.JobRecord) error {
	status, msg, err := b.call(ctx, http.MethodPost, "/v1/sys/gateway/authorize", api.AuthorizeRequest{Token: brokerToken, Action: action, Job: job}, nil)
	if err != nil {
		return err
	}
	switch status {
	case http.StatusNoContent, http.StatusOK:
		return nil
	case http.StatusForbidden:
		return fmt.Errorf("%w: %s", ErrForbidden, msg)
	default:
		return &brokerStatusError{op: "authorize", status: status, msg: msg}
	}
}

// Credential implements Broker. The key is cached in memory until
// InvalidateCredential.
func (b *RemoteBroker) Credential(ctx context.Context, provider string) (string, error) {
	b.mu.Lock()
	key, ok := b.creds[provider]
	b.mu.Unlock()
	if ok {
		return key, nil
	}
	var out struct {
		Data api.ProviderCredential `json:"data"`
	}
	status, msg, err := b.call(ctx, http.MethodGet, "/v1/sys/gateway/credentials/"+url.PathEscape(provider), nil, &out)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", &brokerStatusError{op: "credential", status: status, msg: msg}
	}
	if out.Data.APIKey == "" {
		return "", errors.New("gateway: broker returned an empty credential")
	}
	b.mu.Lock()
	b.creds[provider] = out.Data.APIKey
	b.mu.Unlock()
	return out.Data.APIKey, nil
}

// InvalidateCredential implements CredentialInvalidator.
func (b *RemoteBroker) InvalidateCredential(provider string) {
	b.mu.Lock()
	delete(b.creds, provider)
	b.mu.Unlock()
}

// Audit implements Broker: it returns only once the broker has recorded e.
func (b *RemoteBroker) Audit(ctx context.Context, e *audit.Event) error {
	if e == nil {
		return errors.New("gateway: nil audit event")
	}
	status, msg, err := b.call(ctx, http.MethodPost, "/v1/sys/gateway/audit", e, nil)
	if err != nil {
		return err
	}
	if status != http.StatusNoContent && status != http.StatusOK {
		return &brokerStatusError{op: "audit", status: status, msg: msg}
	}
	return nil
}

// Upstream implements UpstreamSource over HTTP. The broker caches what it
// mints; the gateway keeps each answer until shortly before it expires.
func (b *RemoteBroker) Upstream(ctx context.Context, prov, role string) (provider.Credential, provider.Scope, error) {
	key := prov + "/" + role
	b.mu.Lock()
	if u, ok := b.upstreams[key]; ok && b.now().Add(time.Minute).Before(u.c.Expires) {
		b.mu.Unlock()
		return u.c, u.s, nil
	}
	b.mu.Unlock()
	var out struct {
		Data api.UpstreamData `json:"data"`
	}
	q := "?role=" + url.QueryEscape(role)
	b.mu.Lock()
	if d, ok := b.rejected[key]; ok {
		q += "&rejected=" + url.QueryEscape(d)
		delete(b.rejected, key)
	}
	b.mu.Unlock()
	status, msg, err := b.call(ctx, http.MethodGet, "/v1/sys/gateway/upstream/"+url.PathEscape(prov)+q, nil, &out)
	if err != nil {
		return provider.Credential{}, provider.Scope{}, err
	}
	if status != http.StatusOK {
		return provider.Credential{}, provider.Scope{}, &brokerStatusError{op: "upstream", status: status, msg: msg}
	}
	u := cachedUpstream{
		c: provider.Credential{AccessKeyID: out.Data.AccessKeyID, Secret: out.Data.Secret, SessionToken: out.Data.SessionToken, Expires: out.Data.Expires},
		s: provider.Scope{Bucket: out.Data.Bucket, Prefix: out.Data.Prefix},
	}
	b.mu.Lock()
	if b.upstreams == nil {
		b.upstreams = map[string]cachedUpstream{}
	}
	b.upstreams[key] = u
	b.mu.Unlock()
	return u.c, u.s, nil
}

// ForgetUpstream implements UpstreamForgetter: the cached credential is
// dropped if it is the rejected one, and the broker is told with the next
// fetch (so it drops its own cached copy too).
func (b *RemoteBroker) ForgetUpstream(_ context.Context, prov, role, digest string) {
	key := prov + "/" + role
	b.mu.Lock()
	defer b.mu.Unlock()
	if u, ok := b.upstreams[key]; !ok || u.c.Digest() != digest {
		return
	}
	delete(b.upstreams, key)
	if b.rejected == nil {
		b.rejected = map[string]string{}
	}
	b.rejected[key] = digest
}

var _ UpstreamForgetter = (*RemoteBroker)(nil)

type cachedUpstream struct {
	c provider.Credential
	s provider.Scope
}

var _ UpstreamSource = (*RemoteBroker)(nil)

// Settle implements Settler over HTTP.
func (b *RemoteBroker) Settle(ctx context.Context, s api.SettleRequest) error {
	status, msg, err := b.call(ctx, http.MethodPost, "/v1/sys/gateway/settle", s, nil)
	if err != nil {
		return err
	}
	if status/100 != 2 {
		return &brokerStatusError{op: "settle", status: status, msg: msg}
	}
	return nil
}

var _ Settler = (*RemoteBroker)(nil)
