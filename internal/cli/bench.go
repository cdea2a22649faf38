package cli

import (
	"github.com/spf13/cobra"
)

func benchCmd(env Env) *cobra.Command {
	return &cobra.Command{Use: "bench", Short: "Load generator (see docs/benchmarks.md)"}
}
