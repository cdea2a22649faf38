package cli

import "github.com/spf13/cobra"

// policyCmd: validate, test and explain Cedar policies (issue 4).
func policyCmd(env Env) *cobra.Command {
	return &cobra.Command{Use: "policy", Short: "Validate, test and explain Cedar policies", Hidden: true}
}
