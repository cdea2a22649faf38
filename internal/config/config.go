// Package config loads qbroker's one YAML configuration file strictly:
// unknown keys are errors, every problem is reported at once, and defaults
// are applied in one place. See docs/config.md for the reference.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/qbroker/qbroker/internal/pricing"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the server configuration.
type Config struct {
	Listen    string   `yaml:"listen"`     // broker API address, e.g. 127.0.0.1:8200
	PublicURL string   `yaml:"public_url"` // how agents and gateways reach the broker; the job tokens' issuer
	DataDir   string   `yaml:"data_dir"`
	Seal      Seal     `yaml:"seal"`
	Store     Store    `yaml:"store"`
	Policies  []string `yaml:"policies"`  // Cedar policy files; empty: the built-in demo policies
	TimeZone  string   `yaml:"time_zone"` // zone for the hour/weekday policies see; default UTC
	// WatchPolicies reloads when a policy file or this file changes
	// (default true); SIGHUP reloads either way.
	WatchPolicies *bool       `yaml:"watch_policies"`
	Gateway       Gateway     `yaml:"gateway"`
	Providers     Providers   `yaml:"providers"`
	Devices       []Device    `yaml:"devices"` // empty: the built-in catalogue
	Auth          Auth        `yaml:"auth"`
	Anomaly       Anomaly     `yaml:"anomaly"`
	Approvals     Approvals   `yaml:"approvals"`
	Budgets       Budgets     `yaml:"budgets"`
	SigningKeys   SigningKeys `yaml:"signing_keys"`
	APILimits     APILimits   `yaml:"api_limits"` // request rates per client address and per identity
	// TrustedProxies are the load balancers (CIDRs or addresses) whose
	// X-Forwarded-For is believed: behind them, the client's address is
	// the source for rate limits, lockouts, audit and anomaly rules.
	TrustedProxies []string   `yaml:"trusted_proxies"`
	TLS            TLS        `yaml:"tls"`
	Audit          Audit      `yaml:"audit"`
	Log            LogOptions `yaml:"log"`
}

// Store chooses the database: the embedded SQLite in data_dir (default),
// or PostgreSQL for several replicas. The DSN comes from the environment
// (it usually holds a password), never from this file.
type Store struct {
	Type             string        `yaml:"type"`              // sqlite (default) or postgres
	DSNEnv           string        `yaml:"dsn_env"`           // postgres: env var holding the DSN; default QBROKER_POSTGRES_DSN
	MaxOpenConns     int           `yaml:"max_open_conns"`    // postgres: pool size; default 10
	StatementTimeout time.Duration `yaml:"statement_timeout"` // postgres: per statement; default 5s
}

// Anomaly configures the streaming anomaly rules over the audit trail.
type Anomaly struct {
	Disabled   bool   `yaml:"disabled"`    // on by default
	RulesFile  string `yaml:"rules_file"`  // thresholds and actions (internal/anomaly/rules.example.yaml); default: built-in
	WebhookURL string `yaml:"webhook_url"` // alerts are POSTed here as JSON (best effort, never blocking a request)
}

// Audit configures the audit trail's file and its secondary sinks.
type Audit struct {
	MaxBytes       int64       `yaml:"max_bytes"`        // rotate audit.log past this size (0: never); the chain continues across files
	Sinks          []AuditSink `yaml:"sinks"`            // SIEM copies; a failing one buffers to disk and never blocks the file
	BufferDir      string      `yaml:"buffer_dir"`       // default <data_dir>/audit-spool
	MaxBufferBytes int64       `yaml:"max_buffer_bytes"` // per sink; default 64 MiB, then the oldest lines are dropped (counted, logged)
}

// AuditSink is a secondary copy of the trail.
type AuditSink struct {
	Type       string `yaml:"type"` // syslog (RFC 5424 over TCP/TLS) or http (SIEM collectors)
	Name       string `yaml:"name"`
	Address    string `yaml:"address"`     // syslog: host:port
	TLS        bool   `yaml:"tls"`         // syslog: TLS
	CAFile     string `yaml:"ca_file"`     // TLS: trust this CA (default: the system roots)
	ServerName string `yaml:"server_name"` // TLS: expected name
	Facility   string `yaml:"facility"`    // syslog: auth or authpriv (default)
	Format     string `yaml:"format"`      // http: splunk-hec or elastic-bulk
	URL        string `yaml:"url"`         // http: collector URL
	TokenEnv   string `yaml:"token_env"`   // http: env var holding the token (never in this file)
	Index      string `yaml:"index"`       // http, elastic-bulk: index
}

// Auth configures the auth methods beyond AppRole, and login protection.
type Auth struct {
	JWT         JWTAuth     `yaml:"jwt"`    // auth/jwt and auth/oidc: login with a JWT from an identity provider
	Device      DeviceAuth  `yaml:"device"` // auth/device: RFC 8628, the broker as the IdP's OAuth client
	SPIFFE      SPIFFEAuth  `yaml:"spiffe"` // auth/cert (X.509-SVIDs over mTLS) and auth/spiffe-jwt
	LoginLimits LoginLimits `yaml:"login_limits"`
}

// SPIFFEAuth trusts SPIFFE trust domains: bundles from a file or from the
// SPIFFE Workload API (a SPIRE agent's socket), and roles binding SPIFFE ID
// patterns to broker roles.
type SPIFFEAuth struct {
	TrustDomains      []string     `yaml:"trust_domains"`
	BundleFile        string       `yaml:"bundle_file"`         // SPIFFE bundle(s) or PEM; or
	WorkloadAPISocket string       `yaml:"workload_api_socket"` // e.g. /run/spire/agent.sock
	Roles             []SPIFFERole `yaml:"roles"`
}

// SPIFFERole binds SPIFFE IDs to a broker role.
type SPIFFERole struct {
	Name       string   `yaml:"name"`
	IDPatterns []string `yaml:"id_patterns"` // exact, or ending in /+ (one segment) or /* (one or more)
	Audiences  []string `yaml:"audiences"`   // for JWT-SVIDs; none: X.509 only
	BrokerRole string   `yaml:"broker_role"`
}

// TLS serves the broker API over TLS (required for auth/cert).
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// DeviceAuth configures the device authorization grant. The person's ID
// token is verified by the JWT role named at start (auth.jwt.roles), so
// that role must bind the audience ClientID.
type DeviceAuth struct {
	Issuer          string   `yaml:"issuer"`
	DiscoveryURL    string   `yaml:"discovery_url"`
	ClientID        string   `yaml:"client_id"`
	ClientSecretEnv string   `yaml:"client_secret_env"` // the client secret comes from this env var, never from the file
	Scopes          []string `yaml:"scopes"`            // default [openid]
}

// LoginLimits protect the login endpoints. Failed logins are limited per
// source address by default (10 a minute); overall rates are off unless set.
type LoginLimits struct {
	FailuresPerMinute  float64 `yaml:"failures_per_minute"`   // 0: default 10; negative: off
	PerSourcePerSecond float64 `yaml:"per_source_per_second"` // 0: unlimited
	PerRolePerSecond   float64 `yaml:"per_role_per_second"`   // 0: unlimited
}

// JWTAuth is Vault's JWT/OIDC method: trusted issuers, and roles binding
// their tokens to broker roles. See docs/auth.md.
type JWTAuth struct {
	Issuers []JWTIssuer `yaml:"issuers"`
	Roles   []JWTRole   `yaml:"roles"`
}

// JWTIssuer is one trusted identity provider.
type JWTIssuer struct {
	Name               string        `yaml:"name"`
	Issuer             string        `yaml:"issuer"`
	DiscoveryURL       string        `yaml:"discovery_url"`
	JWKSURL            string        `yaml:"jwks_url"`
	PublicKeys         []string      `yaml:"public_keys"`
	Algorithms         []string      `yaml:"algorithms"`
	Leeway             time.Duration `yaml:"leeway"`
	RefreshInterval    time.Duration `yaml:"refresh_interval"`
	MinRefreshInterval time.Duration `yaml:"min_refresh_interval"`
}

// JWTRole binds tokens of one issuer to a broker role.
type JWTRole struct {
	Name            string              `yaml:"name"`
	Issuer          string              `yaml:"issuer"`
	BoundAudiences  []string            `yaml:"bound_audiences"`
	BoundSubject    string              `yaml:"bound_subject"`
	BoundClaims     map[string][]string `yaml:"bound_claims"`
	BoundClaimsType string              `yaml:"bound_claims_type"`
	ClaimMappings   map[string]string   `yaml:"claim_mappings"`
	UserClaim       string              `yaml:"user_claim"`
	MaxAge          time.Duration       `yaml:"max_age"`
	BrokerRole      string              `yaml:"broker_role"`
}

// Seal chooses the key-encryption key provider.
type Seal struct {
	Type string `yaml:"type"` // "file" (default) or "env"
	Path string `yaml:"path"` // file: key file; default <data_dir>/seal.key
	Env  string `yaml:"env"`  // env: variable holding a base64 32-byte key; default QBROKER_SEAL_KEY
}

// Gateway configures the in-process gateway (optional).
type Gateway struct {
	Listen    string `yaml:"listen"`     // empty: no in-process gateway
	PublicURL string `yaml:"public_url"` // the job tokens' audience and what agents are told
}

// Providers configures upstreams.
type Providers struct {
	IonQ       IonQ       `yaml:"ionq"`
	AWS        AWS        `yaml:"aws"`
	IBM        IBM        `yaml:"ibm"`
	Rigetti    Rigetti    `yaml:"rigetti"`
	Azure      Azure      `yaml:"azure"`
	Quantinuum Quantinuum `yaml:"quantinuum"`
}

// Quantinuum configures Quantinuum: the broker keeps the account's refresh
// token (or email:password) sealed (`qbroker provider set quantinuum`) and
// mints id-tokens; the gateway serves the job API under /quantinuum and
// caps every job's max-cost.
type Quantinuum struct {
	Enabled    bool    `yaml:"enabled"`
	BaseURL    string  `yaml:"base_url"`     // default https://qapi.quantinuum.com
	MaxCostHQC float64 `yaml:"max_cost_hqc"` // the ceiling forced on every job (required when enabled)
	Group      string  `yaml:"group"`        // the only group jobs may bill to (optional)
}

// Azure configures Azure Quantum: the broker holds the service
// principal's credential sealed (`qbroker provider set azure`, as
// TENANT:CLIENT_ID:SECRET or JSON; docs/providers.md) and mints Entra
// tokens; the gateway serves the workspace's jobs API under /azure.
type Azure struct {
	Endpoint       string   `yaml:"endpoint"` // https://<location>.quantum.azure.com
	SubscriptionID string   `yaml:"subscription_id"`
	ResourceGroup  string   `yaml:"resource_group"`
	Workspace      string   `yaml:"workspace"`
	Storage        []string `yaml:"storage"`   // blob endpoints the workspace's SAS URIs name (https://<account>.blob.core.windows.net)
	Authority      string   `yaml:"authority"` // Entra; default https://login.microsoftonline.com
}

// Rigetti configures Rigetti QCS: the broker keeps the rotating OAuth
// refresh token sealed (`qbroker provider set rigetti`), stores each
// rotation before using it, and mints access tokens; the gateway serves
// QCS's gRPC execution API (translation and controller services).
type Rigetti struct {
	Enabled  bool   `yaml:"enabled"`
	Issuer   string `yaml:"issuer"`    // default: QCS's authorization server
	ClientID string `yaml:"client_id"` // default: QCS's public client
	GRPCURL  string `yaml:"grpc_url"`  // QCS gRPC endpoint; default https://grpc.qcs.rigetti.com
}

// IBM configures IBM Quantum (Qiskit Runtime on IBM Cloud): the broker
// exchanges the sealed API key (`qbroker provider set ibm`) for IAM bearer
// tokens, and the gateway serves the Runtime REST API under /ibm.
type IBM struct {
	InstanceCRN string `yaml:"instance_crn"` // the Qiskit Runtime instance (Service-CRN)
	BaseURL     string `yaml:"base_url"`     // Runtime service root; default https://quantum.cloud.ibm.com
	IAMURL      string `yaml:"iam_url"`      // default https://iam.cloud.ibm.com
}

// AWS configures dynamic AWS credentials (GET /v1/aws/creds/<role>). The
// broker's root access key is stored sealed with `qbroker provider set aws`
// (ACCESS_KEY_ID:SECRET_ACCESS_KEY), never in this file.
type AWS struct {
	Region      string `yaml:"region"`       // default us-east-1
	STSEndpoint string `yaml:"sts_endpoint"` // default: AWS's regional STS endpoint
	// BraketEndpoint is where the gateway's /braket front forwards
	// (default https://braket.<region>.amazonaws.com).
	BraketEndpoint string `yaml:"braket_endpoint"`
	// S3Endpoint is where task results are read, path style (default
	// https://s3.<region>.amazonaws.com).
	S3Endpoint string `yaml:"s3_endpoint"`
	// IAMEndpoint is where the broker writes the inline role policy that
	// cuts off revoked leases' sessions (default: IAM's global endpoint,
	// https://iam.amazonaws.com).
	IAMEndpoint string    `yaml:"iam_endpoint"`
	Roles       []AWSRole `yaml:"roles"`
}

// AWSRole is one credential role.
type AWSRole struct {
	Name        string        `yaml:"name"`
	RoleARN     string        `yaml:"role_arn"`     // the IAM role the broker assumes
	DeviceARNs  []string      `yaml:"device_arns"`  // the only devices the session may use
	S3Bucket    string        `yaml:"s3_bucket"`    // results bucket
	S3Prefix    string        `yaml:"s3_prefix"`    // the session's only S3 space
	Duration    time.Duration `yaml:"duration"`     // default and minimum 15m (STS)
	BrokerRoles []string      `yaml:"broker_roles"` // broker roles whose agents may ask
}

// IonQ is the IonQ upstream.
type IonQ struct {
	BaseURL string `yaml:"base_url"` // default https://api.ionq.co
}

// Device is a catalogue entry.
type Device struct {
	Provider string `yaml:"provider"`
	Name     string `yaml:"name"`
	Kind     string `yaml:"kind"`
	Vendor   string `yaml:"vendor"` // hardware maker; default: the provider
	ARN      string `yaml:"arn"`    // the provider's id or ARN for the device, when it has one
	Qubits   int    `yaml:"qubits"`
	MaxShots int    `yaml:"max_shots"`
	Price    Price  `yaml:"price"`
	// QPU time estimate for qpu_seconds budgets (reserved before a job
	// runs, settled on what the provider reports); 0: none.
	QPUSecondsPerTask float64 `yaml:"qpu_seconds_per_task"`
	QPUSecondsPerShot float64 `yaml:"qpu_seconds_per_shot"`
}

// Price is a device's list price, used to estimate a job's cost before it
// runs: per_task_usd + shots × per_shot_usd (+ per_minute_usd × estimated
// minutes, for simulators billed by time, at least min_minutes).
type Price struct {
	PerTaskUSD   float64 `yaml:"per_task_usd"`
	PerShotUSD   float64 `yaml:"per_shot_usd"`
	PerMinuteUSD float64 `yaml:"per_minute_usd"`
	MinMinutes   float64 `yaml:"min_minutes"`
	// PerSecondUSD prices QPU time (IBM): a finished job's cost is the QPU
	// seconds its provider reports times this, when it reports no cost.
	PerSecondUSD float64 `yaml:"per_second_usd"`
}

// LogOptions configures logging.
type LogOptions struct {
	Level string `yaml:"level"` // debug, info (default), warn, error
}

// DefaultDevices is the built-in catalogue (see docs/providers.md), with
// list prices from the embedded price catalogue (internal/pricing, with
// its date and sources). IonQ does not publish direct per-job prices; the
// QPU estimate uses the AWS Braket list price for IonQ Forte-1, and IonQ's
// ideal simulator is free.
func DefaultDevices() []Device {
	ds := defaultDevices()
	cat, err := pricing.Load()
	if err != nil {
		return ds // the embedded catalogue is checked by its tests; without it, no prices
	}
	for i, d := range ds {
		if e, ok := pricingEntry(cat, d); ok {
			ds[i].Price = priceOf(e.Price)
		}
	}
	return ds
}

// pricingEntry finds d in the price catalogue: by ARN for Braket, by name
// for the others; IonQ's direct QPU by the same machine on Braket.
func pricingEntry(cat *pricing.Catalogue, d Device) (pricing.Device, bool) {
	switch {
	case d.Provider == "aws":
		return cat.LookupARN(d.ARN)
	case d.Provider == "ionq" && d.Name == "qpu.forte-1":
		return cat.LookupARN("arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1")
	case d.Provider == "ibm":
		return cat.Lookup(pricing.ProviderIBM, d.ARN)
	}
	return cat.Lookup(d.Provider, d.Name)
}

// priceOf is the part of a catalogue price an estimate before the job can
// use: task and shot fees, minimum billed minutes, and QPU-time price.
// Quantinuum credits (HQC) have no USD price in the catalogue.
func priceOf(p pricing.Price) Price {
	switch p.Model {
	case pricing.ModelTaskShot:
		return Price{PerTaskUSD: p.PerTaskUSD, PerShotUSD: p.PerShotUSD}
	case pricing.ModelPerMinute:
		return Price{PerMinuteUSD: p.PerMinuteUSD, MinMinutes: p.MinMinutes}
	case pricing.ModelPerSecond:
		return Price{PerSecondUSD: p.PerSecondUSD}
	}
	return Price{}
}

func defaultDevices() []Device {
	return []Device{
		{Provider: "ionq", Name: "simulator", Kind: "simulator", Vendor: "ionq", Qubits: 29, MaxShots: 1_000_000},
		{Provider: "ionq", Name: "qpu.forte-1", Kind: "qpu", Vendor: "ionq", Qubits: 36, MaxShots: 10_000},
		// AWS Braket (ARNs and prices: docs/providers.md; SV1 is billed per
		// minute with a 3 s minimum).
		{Provider: "aws", Name: "sv1", Kind: "simulator", Vendor: "amazon", ARN: "arn:aws:braket:::device/quantum-simulator/amazon/sv1",
			Qubits: 34, MaxShots: 100_000},
		{Provider: "aws", Name: "forte-1", Kind: "qpu", Vendor: "ionq", ARN: "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1",
			Qubits: 36, MaxShots: 10_000},
		// Quantinuum: the ARN field holds the machine name.
		{Provider: "quantinuum", Name: "h1-1e", Kind: "simulator", Vendor: "quantinuum", ARN: "H1-1E", Qubits: 20, MaxShots: 10_000},
		// Azure Quantum: the ARN field holds the target id.
		{Provider: "azure", Name: "ionq.simulator", Kind: "simulator", Vendor: "ionq", ARN: "ionq.simulator", Qubits: 29, MaxShots: 10_000},
		// IBM Quantum: the device's ARN field holds the backend name.
		{Provider: "ibm", Name: "kingston", Kind: "qpu", Vendor: "ibm", ARN: "ibm_kingston", Qubits: 156, MaxShots: 100_000},
		// Rigetti QCS: the ARN field holds the quantum_processor_id. No
		// direct QCS price is known (docs/providers.md); max shots UNCERTAIN.
		{Provider: "rigetti", Name: "ankaa-3", Kind: "qpu", Vendor: "rigetti", ARN: "Ankaa-3", Qubits: 84, MaxShots: 10_000},
	}
}

// Load reads a config file strictly, without defaults: call Finish after
// applying any overrides.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes YAML strictly, applies defaults and validates.
func Parse(b []byte) (*Config, error) {
	c, err := Decode(b)
	if err != nil {
		return nil, err
	}
	return c, c.Finish()
}

// Decode decodes YAML strictly without applying defaults, so that command
// line overrides can be applied before defaults derived from them.
func Decode(b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return &c, nil
}

// Finish applies defaults and validates.
func (c *Config) Finish() error {
	c.ApplyDefaults()
	return c.Validate()
}

// ApplyDefaults fills unset fields.
func (c *Config) ApplyDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8200"
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.Listen
	}
	if c.DataDir == "" {
		c.DataDir = "./qbroker-data"
	}
	if c.Seal.Type == "" {
		c.Seal.Type = "file"
	}
	if c.Seal.Type == "file" && c.Seal.Path == "" {
		c.Seal.Path = c.DataDir + "/seal.key"
	}
	if c.Seal.Type == "env" && c.Seal.Env == "" {
		c.Seal.Env = "QBROKER_SEAL_KEY"
	}
	if c.Gateway.Listen != "" && c.Gateway.PublicURL == "" {
		c.Gateway.PublicURL = "http://" + c.Gateway.Listen
	}
	if c.Providers.IonQ.BaseURL == "" {
		c.Providers.IonQ.BaseURL = "https://api.ionq.co"
	}
	if len(c.Devices) == 0 {
		c.Devices = DefaultDevices()
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.TimeZone == "" {
		c.TimeZone = "UTC"
	}
	if c.WatchPolicies == nil {
		watch := true
		c.WatchPolicies = &watch
	}
	c.Approvals.applyDefaults()
	if c.Store.Type == "" {
		c.Store.Type = "sqlite"
	}
	if c.Store.Type == "postgres" && c.Store.DSNEnv == "" {
		c.Store.DSNEnv = "QBROKER_POSTGRES_DSN"
	}
	if len(c.Providers.AWS.Roles) > 0 && c.Providers.AWS.Region == "" {
		c.Providers.AWS.Region = "us-east-1"
	}
	for i := range c.Devices {
		if c.Devices[i].Vendor == "" {
			c.Devices[i].Vendor = c.Devices[i].Provider
		}
	}
}

// Location returns the configured time zone (validated by Validate).
func (c *Config) Location() *time.Location {
	loc, err := time.LoadLocation(c.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	for _, u := range []struct{ name, v string }{{"public_url", c.PublicURL}, {"gateway.public_url", c.Gateway.PublicURL}, {"providers.ionq.base_url", c.Providers.IonQ.BaseURL}} {
		if u.v == "" {
			continue
		}
		p, err := url.Parse(u.v)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			bad("%s: %q is not an http(s) URL", u.name, u.v)
		}
	}
	switch c.Seal.Type {
	case "file", "env":
	default:
		bad("seal.type: %q is not one of file, env", c.Seal.Type)
	}
	seen := map[string]bool{}
	for i, d := range c.Devices {
		if d.Provider == "" || d.Name == "" {
			bad("devices[%d]: provider and name are required", i)
		}
		if d.Kind != "qpu" && d.Kind != "simulator" {
			bad("devices[%d]: kind %q is not qpu or simulator", i, d.Kind)
		}
		if d.Qubits <= 0 {
			bad("devices[%d]: qubits must be positive", i)
		}
		if d.Price.PerTaskUSD < 0 || d.Price.PerShotUSD < 0 || d.Price.PerMinuteUSD < 0 || d.Price.MinMinutes < 0 {
			bad("devices[%d]: prices must not be negative", i)
		}
		k := d.Provider + "/" + d.Name
		if seen[k] {
			bad("devices[%d]: %s listed twice", i, k)
		}
		seen[k] = true
	}
	c.Approvals.validate(bad)
	switch c.Store.Type {
	case "sqlite", "postgres":
	default:
		bad("store.type: %q is not one of sqlite, postgres", c.Store.Type)
	}
	if c.Store.MaxOpenConns < 0 || c.Store.StatementTimeout < 0 {
		bad("store: max_open_conns and statement_timeout must not be negative")
	}
	c.Providers.AWS.validate(bad)
	c.Budgets.validate(bad)
	c.SigningKeys.validate(bad)
	c.validateProxies(bad)
	c.APILimits.validate(bad)
	for name, v := range map[string]string{"providers.ibm.base_url": c.Providers.IBM.BaseURL, "providers.ibm.iam_url": c.Providers.IBM.IAMURL} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			bad("%s: %q is not an http(s) URL", name, v)
		}
	}
	if q := c.Providers.Quantinuum; q.Enabled && q.MaxCostHQC <= 0 {
		bad("providers.quantinuum.max_cost_hqc: a positive ceiling is required (every job's max-cost is capped at it)")
	}
	if c.Providers.IBM.InstanceCRN != "" && !strings.HasPrefix(c.Providers.IBM.InstanceCRN, "crn:") {
		bad("providers.ibm.instance_crn: %q is not a CRN", c.Providers.IBM.InstanceCRN)
	}
	if _, err := time.LoadLocation(c.TimeZone); err != nil {
		bad("time_zone: %q is not a known IANA time zone", c.TimeZone)
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level: %q is not one of debug, info, warn, error", c.Log.Level)
	}
	return errors.Join(errs...)
}

func (a *AWS) validate(bad func(string, ...any)) {
	for name, v := range map[string]string{"sts_endpoint": a.STSEndpoint, "braket_endpoint": a.BraketEndpoint, "s3_endpoint": a.S3Endpoint, "iam_endpoint": a.IAMEndpoint} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			bad("providers.aws.%s: %q is not an http(s) URL", name, v)
		}
	}
	seen := map[string]bool{}
	for i, r := range a.Roles {
		where := fmt.Sprintf("providers.aws.roles[%d]", i)
		switch {
		case r.Name == "":
			bad("%s: name is required", where)
		case seen[r.Name]:
			bad("%s: role %q defined twice", where, r.Name)
		}
		seen[r.Name] = true
		if !strings.HasPrefix(r.RoleARN, "arn:aws:iam::") || !strings.Contains(r.RoleARN, ":role/") {
			bad("%s: role_arn %q is not an IAM role ARN", where, r.RoleARN)
		}
		if len(r.DeviceARNs) == 0 {
			bad("%s: device_arns: at least one Braket device ARN is required", where)
		}
		for _, d := range r.DeviceARNs {
			if !strings.HasPrefix(d, "arn:aws:braket:") || !strings.Contains(d, ":device/") || strings.ContainsAny(d, "*?") {
				bad("%s: %q is not a Braket device ARN (no wildcards)", where, d)
			}
		}
		if r.S3Bucket == "" || strings.ContainsAny(r.S3Bucket+r.S3Prefix, "*?") {
			bad("%s: s3_bucket is required, and bucket and prefix take no wildcards", where)
		}
		if r.Duration != 0 && (r.Duration < 15*time.Minute || r.Duration > 12*time.Hour) {
			bad("%s: duration must be from 15m (STS's minimum) to 12h", where)
		}
		if len(r.BrokerRoles) == 0 {
			bad("%s: broker_roles: name the broker roles whose agents may ask for it", where)
		}
	}
}
