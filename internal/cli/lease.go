package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func leaseCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "lease", Short: "Dynamic credential leases (aws/creds/<role>/<id>)"}
	var prefix bool
	revoke := &cobra.Command{
		Use:   "revoke LEASE_ID | revoke --prefix aws/creds/ROLE",
		Short: "Revoke a lease: its AWS STS session is denied at AWS from now on (an inline Deny on the IAM role); --prefix: every session of an AWS role (root only)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			if prefix {
				out, err := c.RevokeLeasePrefix(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return printJSON(env.Stdout, out)
			}
			if args[0] == "" {
				return fmt.Errorf("a lease id is required, e.g. aws/creds/braket-sv1/<id>")
			}
			out, err := c.RevokeLease(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(env.Stdout, out)
		},
	}
	revoke.Flags().BoolVar(&prefix, "prefix", false, "the argument is a prefix, aws/creds/<role>: revoke every session of that AWS role")
	cmd.AddCommand(revoke)
	return cmd
}
