package cli

import "github.com/spf13/cobra"

// auditCmd is filled in by the audit-trail work (issue 8).
func auditCmd(env Env) *cobra.Command {
	return &cobra.Command{Use: "audit", Short: "Audit trail tools", Hidden: true}
}
