package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
)

func approvalsCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "approvals", Short: "Review and decide requests held for human approval (QBROKER_TOKEN: an approver's or root token)"}
	var state string
	list := &cobra.Command{
		Use: "list", Short: "List requests (approvers see all; agents their own)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			as, err := c.Approvals(cmd.Context(), state)
			if err != nil {
				return err
			}
			if len(as) == 0 {
				fmt.Fprintln(env.Stdout, "No requests"+map[bool]string{true: " in state " + state, false: ""}[state != ""]+".")
				return nil
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tREQUESTER\tDEVICE\tSHOTS\tEST. USD\tAPPROVALS\tEXPIRES")
			for _, a := range as {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s/%s\t%d\t%.2f\t%d of %d\t%s\n", a.ID, a.State, a.Requester, a.Provider, a.Device, a.Shots,
					a.EstimatedCostUSD, a.Approved, a.Required, a.ExpiresAt.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&state, "state", "pending", "pending, approved, denied, expired, issued, or empty for all")
	show := &cobra.Command{
		Use: "show ID", Short: "Show one request in full (JSON)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			a, err := c.Approval(cmd.Context(), args[0], 0)
			if err != nil {
				return err
			}
			return printJSON(env.Stdout, a)
		},
	}
	var reason string
	decide := func(approve bool) *cobra.Command {
		verb := map[bool]string{true: "approve", false: "deny"}[approve]
		c := &cobra.Command{
			Use: verb + " ID", Short: strings.ToUpper(verb[:1]) + verb[1:] + " a request", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := apiClient(env)
				if err != nil {
					return err
				}
				var a api.Approval
				if approve {
					a, err = c.Approve(cmd.Context(), args[0], reason)
				} else {
					a, err = c.Deny(cmd.Context(), args[0], reason)
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "%s: %s (%d of %d approvals)\n", a.ID, a.State, a.Approved, a.Required)
				return nil
			},
		}
		c.Flags().StringVar(&reason, "reason", "", "why (required to deny; the agent sees it)")
		return c
	}
	wait := &cobra.Command{
		Use: "wait ID", Short: "Wait until a request is decided", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			a, err := c.Approval(cmd.Context(), args[0], 0)
			if err != nil {
				return err
			}
			a, err = waitForApproval(cmd.Context(), c, a, env.Stdout)
			if err != nil {
				return err
			}
			return approvalOutcome(a)
		},
	}
	cmd.AddCommand(list, show, decide(true), decide(false), wait)
	return cmd
}

// waitForApproval shows a live "waiting for approval" line (elapsed time,
// votes, console URL) until the request is decided.
func waitForApproval(ctx context.Context, c *client.Client, a api.Approval, out io.Writer) (api.Approval, error) {
	start := time.Now()
	fmt.Fprintf(out, "   needs approval: %s\n   review it at %s\n", strings.Join(a.Reasons, "; "), a.ConsoleURL)
	line := func(a api.Approval) {
		fmt.Fprintf(out, "\r   waiting for approval %s: %d of %d from %s, %s elapsed ", a.ID, a.Approved, a.Required, a.Group, time.Since(start).Round(time.Second))
	}
	line(a)
	for a.State == api.ApprovalPending {
		next, err := c.Approval(ctx, a.ID, time.Second)
		if err != nil {
			fmt.Fprintln(out)
			return a, err
		}
		a = next
		line(a)
	}
	fmt.Fprintf(out, "\n   %s after %s", a.State, time.Since(start).Round(time.Second))
	if len(a.Votes) > 0 {
		v := a.Votes[len(a.Votes)-1]
		fmt.Fprintf(out, " (%s by %s", v.Decision, v.Approver)
		if v.Reason != "" {
			fmt.Fprintf(out, ": %s", v.Reason)
		}
		fmt.Fprint(out, ")")
	}
	fmt.Fprintln(out)
	return a, nil
}

// approvalOutcome turns a decided request into nil (approved) or an error
// that says why not.
func approvalOutcome(a api.Approval) error {
	switch a.State {
	case api.ApprovalApproved:
		return nil
	case api.ApprovalIssued:
		return fmt.Errorf("approval %s was already used (job token %s)", a.ID, a.JTI)
	default:
		return errors.New("approval " + a.ID + " " + a.State + ": " + a.Reason)
	}
}

func budgetCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "budget", Short: "Spend and rate limits, and what is used"}
	var agent string
	show := &cobra.Command{
		Use: "show", Short: "Usage against every limit that applies (root: --agent ID)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			us, err := c.Budgets(cmd.Context(), agent)
			if err != nil {
				return err
			}
			if len(us) == 0 {
				fmt.Fprintln(env.Stdout, "No limits apply.")
				return nil
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "LIMIT\tSCOPE\tCLASS\tUSED\tMAX\tRESETS")
			for _, u := range us {
				reset := "as jobs finish"
				if u.ResetsAt != nil {
					reset = u.ResetsAt.Format(time.RFC3339)
				}
				class := u.Class
				if class == "" {
					class = "all"
				}
				fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\t%s\t%s\n", u.Limit, u.Scope, u.ScopeID, class, fmtNum(u.Used), fmtNum(u.Max), reset)
			}
			return tw.Flush()
		},
	}
	show.Flags().StringVar(&agent, "agent", "", "agent id (root only)")
	cmd.AddCommand(show)
	return cmd
}

func fmtNum(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.2f", v)
}
