package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/qbroker/qbroker/internal/bench"
)

func benchCmd(env Env) *cobra.Command {
	var o bench.Options
	var steps []string
	var concs []int
	var directKeyEnv, jwtEnv string
	var table bool
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Drive the agent flow (or one step of it) with N workers for D seconds; print ops/s and latency percentiles",
		Long: "Steps: " + fmt.Sprint(bench.Steps()) + ".\n" +
			"Reads QBROKER_ADDR, QBROKER_GATEWAY_ADDR, QBROKER_ROLE_ID and QBROKER_SECRET_ID. The *-direct steps call the\n" +
			"IonQ emulator directly (--direct-addr, key from --direct-key-env) as the baseline for the gateway.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.BrokerAddr, o.GatewayAddr = env.Getenv(EnvAddr), env.Getenv(EnvGatewayAddr)
			o.RoleID, o.SecretID = env.Getenv(EnvRoleID), env.Getenv(EnvSecretID)
			if directKeyEnv != "" {
				o.DirectKey = env.Getenv(directKeyEnv)
			}
			if jwtEnv != "" {
				o.JWT = env.Getenv(jwtEnv)
			}
			var results []bench.Result
			for _, step := range steps {
				for _, c := range concs {
					o.Step, o.Concurrency = step, c
					r, err := bench.Run(cmd.Context(), o)
					if err != nil {
						return fmt.Errorf("%s at concurrency %d: %w", step, c, err)
					}
					fmt.Fprintln(env.Stderr, r.String())
					results = append(results, r)
				}
			}
			if table {
				bench.WriteTable(env.Stdout, results)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&steps, "step", []string{"flow"}, "step(s) to measure: "+fmt.Sprint(bench.Steps()))
	f.IntSliceVar(&concs, "concurrency", []int{8}, "worker count(s)")
	f.DurationVar(&o.Duration, "duration", 10*time.Second, "measured time per run")
	f.DurationVar(&o.Warmup, "warmup", time.Second, "unmeasured warm-up per run")
	f.StringVar(&o.Role, "role", "demo", "role")
	f.StringVar(&o.Device, "device", "simulator", "device")
	f.IntVar(&o.Shots, "shots", 100, "shots per job")
	f.StringVar(&o.DirectAddr, "direct-addr", "", "IonQ emulator base URL for the *-direct baselines")
	f.StringVar(&directKeyEnv, "direct-key-env", "", "env var holding the emulator's API key")
	f.StringSliceVar(&o.Targets, "target", nil, "extra broker/gateway addresses to spread load over")
	f.StringVar(&jwtEnv, "jwt-env", "", "env var holding the JWT for the jwt-login step")
	f.StringVar(&o.JWTRole, "jwt-role", "", "JWT role for the jwt-login step")
	f.BoolVar(&table, "table", true, "print a markdown table at the end")
	return cmd
}
