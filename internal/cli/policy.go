package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/policy"
)

// errFailed makes a command exit 1 after it has printed its own report.
var errFailed = errors.New("failed")

// policyCmd: validate, test, explain and start policies from templates.
// These run locally on files, so that users can check their policies in CI
// before a broker loads them; `explain --remote` asks the running broker.
func policyCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Validate, test and explain Cedar policies; start a role from a template"}
	cmd.AddCommand(policyValidateCmd(env), policyTestCmd(env), policyExplainCmd(env), policyTemplateCmd(env))
	return cmd
}

func loadEngine(files []string) (*policy.Engine, error) {
	if len(files) == 0 {
		return policy.New(policy.DefaultFiles())
	}
	return policy.LoadFiles(files)
}

func printWarnings(w io.Writer, e *policy.Engine) {
	for _, warn := range e.Warnings() {
		fmt.Fprintln(w, "warning:", warn.String())
	}
}

func policyValidateCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check syntax and the schema (file:line errors) and lint for overbroad policies",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := policy.LoadFiles(args)
			if err != nil {
				return err
			}
			printWarnings(env.Stderr, e)
			fmt.Fprintf(env.Stdout, "ok: %d policies in %d files\n", len(e.PolicyIDs()), len(args))
			return nil
		},
	}
}

func policyTestCmd(env Env) *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "test CASES.yaml",
		Short: "Run a suite of expected decisions against policy files; exit 1 on any mismatch",
		Long:  "Each case names a principal, action, resource and context and the expected decision\n(and optionally the determining policies). Format: docs/policies.md, \"Testing policies\".",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := loadEngine(files)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			cases, err := policy.LoadCases(data)
			if err != nil {
				return err
			}
			failed := 0
			for _, r := range policy.RunCases(e, cases) {
				if r.Pass {
					fmt.Fprintf(env.Stdout, "ok    %s\n", r.Name)
					continue
				}
				failed++
				fmt.Fprintf(env.Stdout, "FAIL  %s\n      %s\n", r.Name, r.Diff)
			}
			fmt.Fprintf(env.Stdout, "%d cases, %d failed\n", len(cases), failed)
			if failed > 0 {
				return errFailed
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&files, "policy", nil, "policy file(s) (default: the built-in demo policies)")
	return cmd
}

func policyExplainCmd(env Env) *cobra.Command {
	var files []string
	var remote bool
	cmd := &cobra.Command{
		Use:   "explain REQUEST.yaml|-",
		Short: "Show the decision for one request, the determining policies, and each policy's result",
		Long: "The request uses the test-case format without name and expect (YAML or JSON):\n" +
			"  principal: {id: a1, role: demo}\n  action: SubmitJob\n  resource: {device: ionq/qpu.forte-1, kind: qpu, qubits: 36}\n  context: {shots: 100}\n" +
			"With --remote it asks the running broker (QBROKER_ADDR, a root QBROKER_TOKEN) about the policies in force.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var data []byte
			var err error
			if args[0] == "-" {
				data, err = io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
			} else {
				data, err = os.ReadFile(args[0])
			}
			if err != nil {
				return err
			}
			if remote {
				c, err := apiClient(env)
				if err != nil {
					return err
				}
				var out any
				var body any // YAML or JSON in, JSON on the wire
				if err := yaml.Unmarshal(data, &body); err != nil {
					return fmt.Errorf("request: %w", err)
				}
				if err := c.Do(cmd.Context(), "POST", "/v1/sys/policy/explain", body, &api.Response{Data: &out}); err != nil {
					return err
				}
				return printJSON(env.Stdout, out)
			}
			e, err := loadEngine(files)
			if err != nil {
				return err
			}
			req, err := policy.ParseRequest(data)
			if err != nil {
				return err
			}
			return printJSON(env.Stdout, e.Explain(req))
		},
	}
	cmd.Flags().StringSliceVar(&files, "policy", nil, "policy file(s) (default: the built-in demo policies)")
	cmd.Flags().BoolVar(&remote, "remote", false, "ask the running broker instead of reading policy files")
	return cmd
}

func policyTemplateCmd(env Env) *cobra.Command {
	var p policy.TemplateParams
	cmd := &cobra.Command{
		Use:   "template NAME",
		Short: "Print a role's policies rendered from a template: " + strings.Join(policy.TemplateNames(), ", "),
		Long:  "A new role starts from a template: render it, review it, add it to the config's policies.\nExample: qbroker policy template submit-only --role nightly --devices ionq/simulator > policies/nightly.cedar",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := policy.Template(args[0], p)
			if err != nil {
				return err
			}
			_, err = env.Stdout.Write(out)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&p.Role, "role", "", "role name the policies apply to (required)")
	f.StringSliceVar(&p.Devices, "devices", nil, "devices as provider/name (required by submit-only)")
	f.BoolVar(&p.NoResults, "no-results", false, "submit-only: the role may not read results")
	return cmd
}
