package server

import (
	"github.com/qbroker/qbroker/internal/broker"
	"github.com/qbroker/qbroker/internal/config"
)

// apiGuard builds the API rate limits (api_limits) for the broker API and
// the console; nil when none is on. The gateway's own listener is never
// limited here: its traffic reaches the broker in process (qbroker dev,
// gateway.listen), and a remote gateway's calls carry a gateway token,
// which is exempt from the per-identity limit.
func apiGuard(b *broker.Broker, l config.APILimits) *broker.APIGuard {
	return broker.NewAPIGuard(b, broker.APILimits{
		PerSource: l.PerSourcePerSecond, PerSourceBurst: l.PerSourceBurst,
		PerIdentity: l.PerIdentityPerSecond, PerIdentityBurst: l.PerIdentityBurst,
		ExemptSources: l.ExemptPrefixes(),
	})
}

// DevAPILimits are qbroker dev's API rate limits: far above what the demo,
// the CLI or an MCP client does, low enough that a runaway loop is seen to
// be refused. `qbroker dev --no-budgets` (benchmarks) turns them off with
// the budgets.
func DevAPILimits() config.APILimits {
	return config.APILimits{PerSourcePerSecond: 200, PerSourceBurst: 400, PerIdentityPerSecond: 100, PerIdentityBurst: 200}
}
