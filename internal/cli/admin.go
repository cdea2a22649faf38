package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/qbroker/qbroker/api"
)

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func roleCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "role", Short: "Manage roles (needs a root QBROKER_TOKEN)"}
	var r api.Role
	var devices string
	var tokenTTL, tokenMaxTTL, jobTTL time.Duration
	write := &cobra.Command{
		Use: "write NAME", Short: "Create or replace a role", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			r.Devices = splitList(devices)
			r.TokenTTL, r.TokenMaxTTL, r.JobTokenTTL = api.Duration(tokenTTL), api.Duration(tokenMaxTTL), api.Duration(jobTTL)
			out, err := c.PutRole(cmd.Context(), args[0], r)
			if err != nil {
				return err
			}
			return printJSON(env.Stdout, out)
		},
	}
	f := write.Flags()
	f.StringVar(&r.Provider, "provider", "ionq", "provider")
	f.StringVar(&devices, "devices", "simulator", "comma-separated device names")
	f.IntVar(&r.MaxShots, "max-shots", 1000, "ceiling on shots per job token")
	f.DurationVar(&tokenTTL, "token-ttl", time.Hour, "broker token TTL")
	f.DurationVar(&tokenMaxTTL, "token-max-ttl", 24*time.Hour, "broker token max TTL")
	f.DurationVar(&jobTTL, "job-token-ttl", 5*time.Minute, "job token TTL (at most 5m)")
	f.StringVar(&r.Owner, "owner", "", "accountable person or team")
	f.StringVar(&r.Team, "team", "", "team")
	read := &cobra.Command{
		Use: "read NAME", Short: "Show a role", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			out, err := c.GetRole(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(env.Stdout, out)
		},
	}
	list := &cobra.Command{
		Use: "list", Short: "List roles", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			names, err := c.ListRoles(cmd.Context())
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintln(env.Stdout, n)
			}
			return nil
		},
	}
	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete a role", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			return c.DeleteRole(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(write, read, list, del)
	return cmd
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func approleCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "approle", Short: "AppRole credentials for agents (needs a root QBROKER_TOKEN)"}
	roleID := &cobra.Command{
		Use: "role-id ROLE", Short: "Print a role's role_id", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			id, err := c.RoleID(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(env.Stdout, id)
			return nil
		},
	}
	var agent string
	var ttl time.Duration
	var uses int
	secretID := &cobra.Command{
		Use: "secret-id ROLE", Short: "Mint a secret_id (printed once, stored only hashed)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			req := api.SecretIDRequest{Agent: agent}
			if cmd.Flags().Changed("ttl") {
				d := api.Duration(ttl)
				req.TTL = &d
			}
			if cmd.Flags().Changed("num-uses") {
				req.NumUses = &uses
			}
			out, err := c.NewSecretID(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			return printJSON(env.Stdout, out)
		},
	}
	secretID.Flags().StringVar(&agent, "agent", "", "agent name this secret logs in as")
	secretID.Flags().DurationVar(&ttl, "ttl", 0, "secret_id TTL (default: the role's)")
	secretID.Flags().IntVar(&uses, "num-uses", 0, "secret_id use limit, 0 = unlimited (default: the role's)")
	cmd.AddCommand(roleID, secretID)
	return cmd
}

func keysCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Job-token signing keys"}
	cmd.AddCommand(&cobra.Command{
		Use: "rotate", Short: "Make a new signing key active; the old one verifies until its tokens expire", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			out, err := c.RotateKeys(cmd.Context())
			if err != nil {
				return err
			}
			return printJSON(env.Stdout, out)
		},
	})
	return cmd
}

func providerCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "provider", Short: "Provider root credentials (kept sealed in the broker)"}
	var keyFile string
	set := &cobra.Command{
		Use: "set PROVIDER", Aliases: []string{"set-credential"}, Args: cobra.ExactArgs(1),
		Short: "Store a provider's root credential, from --key-file or stdin (never from the command line)",
		Long: "The credential is sealed in the broker and never returned by any API.\n" +
			"ionq: the API key. aws: ACCESS_KEY_ID:SECRET_ACCESS_KEY of the key that assumes the Braket roles.",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			var line string
			if keyFile != "" {
				b, err := os.ReadFile(keyFile)
				if err != nil {
					return err
				}
				line = string(b)
			} else {
				if line, err = bufio.NewReader(cmd.InOrStdin()).ReadString('\n'); err != nil && err != io.EOF {
					return err
				}
			}
			key := strings.TrimSpace(line)
			if key == "" {
				return fmt.Errorf("no credential in %s", map[bool]string{true: keyFile, false: "stdin"}[keyFile != ""])
			}
			return c.SetProviderCredential(cmd.Context(), args[0], key)
		},
	}
	set.Flags().StringVar(&keyFile, "key-file", "", "read the credential from this file (first line)")
	cmd.AddCommand(set)
	return cmd
}

func tokenCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Broker tokens"}
	var ttl time.Duration
	create := &cobra.Command{
		Use: "create-gateway", Short: "Mint a token for a standalone gateway (root only)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			t, err := c.CreateGatewayToken(cmd.Context(), ttl)
			if err != nil {
				return err
			}
			fmt.Fprintln(env.Stdout, t)
			return nil
		},
	}
	create.Flags().DurationVar(&ttl, "ttl", 30*24*time.Hour, "token TTL")
	lookup := &cobra.Command{
		Use: "lookup", Short: "Describe QBROKER_TOKEN", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			info, err := c.LookupSelf(cmd.Context())
			if err != nil {
				return err
			}
			info.ID = "" // never echo the token
			return printJSON(env.Stdout, info)
		},
	}
	revoke := &cobra.Command{
		Use: "revoke-accessor ACCESSOR", Short: "Revoke a token by accessor", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			return c.RevokeAccessor(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(create, lookup, revoke)
	return cmd
}

func revokeCmd(env Env) *cobra.Command {
	var agent, reason string
	var suspend, cancelJobs bool
	cmd := &cobra.Command{
		Use: "revoke --agent ID", Short: "Revoke every token of an agent (its unredeemed job tokens stop working too); --suspend also blocks new logins", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if agent == "" {
				return fmt.Errorf("--agent is required")
			}
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			out, err := c.RevokeAgent(cmd.Context(), agent, api.RevokeAgentRequest{Suspend: suspend, CancelJobs: cancelJobs, Reason: reason})
			if err != nil {
				return err
			}
			return printJSON(env.Stdout, out)
		},
	}
	cmd.Flags().StringVar(&agent, "agent", "", "agent id, e.g. approle:demo:demo-agent")
	cmd.Flags().BoolVar(&suspend, "suspend", false, "also refuse the agent's logins until `qbroker agent resume`")
	cmd.Flags().StringVar(&reason, "reason", "", "recorded in the audit trail")
	cmd.Flags().BoolVar(&cancelJobs, "cancel-jobs", false, "also cancel the agent's jobs at the provider (each cancellation audited)")
	return cmd
}

func freezeCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "freeze", Short: "The global switch that refuses all QPU work until lifted"}
	var reason string
	set := func(on bool) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			out, err := c.SetHardwareFreeze(cmd.Context(), on, reason)
			if err != nil {
				return err
			}
			return printJSON(env.Stdout, out)
		}
	}
	hw := &cobra.Command{Use: "hardware", Short: "Refuse every QPU job token and redemption", Args: cobra.NoArgs, RunE: set(true)}
	hw.Flags().StringVar(&reason, "reason", "", "shown in refusals and the audit trail")
	cmd.AddCommand(hw, &cobra.Command{Use: "lift", Short: "Allow QPU work again", Args: cobra.NoArgs, RunE: set(false)})
	return cmd
}
