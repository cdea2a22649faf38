package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/qbroker/qbroker/internal/localagent"
)

// execCmd is `qbroker exec --role R -- cmd args…`: the child gets exactly
// the variables its SDK needs from the local agent (the AWS
// container-credentials pair, or a passthrough base URL and per-process
// key), nothing is written to disk, and the session ends with the child.
func execCmd(env Env) *cobra.Command {
	var role, provider, device, socket string
	cmd := &cobra.Command{
		Use:   "exec --role R [--provider aws|braket|ibm|ionq|quantinuum] [--device D] -- COMMAND [ARGS…]",
		Short: "Run a command with short-lived credentials from the local agent, revoked when it exits",
		Long: "aws: AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_CONTAINER_AUTHORIZATION_TOKEN (the SDKs' default chain\n" +
			"reads them; --role is the AWS role of /v1/aws/creds/<role>). ionq: IONQ_BASE_URL (the local passthrough)\n" +
			"and IONQ_API_KEY (a key for this process only; --role is the broker role). braket: AWS_ENDPOINT_URL_BRAKET\n" +
			"(the local passthrough) and a per-process AWS_ACCESS_KEY_ID; --device names the one device its jobs\n" +
			"may use. ibm: IBM_QUANTUM_BASE_URL and IBM_QUANTUM_TOKEN (a bearer key for this process; --device\n" +
			"required). quantinuum: QUANTINUUM_BASE_URL and QUANTINUUM_TOKEN (sent raw, where an id-token goes;\n" +
			"--device required). Inherited credential variables (AWS_ACCESS_KEY_ID, AWS_PROFILE, IONQ_API_KEY, QBROKER_TOKEN…)\n" +
			"are removed. The command's exit status is qbroker's.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if role == "" {
				return fmt.Errorf("--role is required")
			}
			if socket == "" {
				socket = localagent.DefaultSocketPath(env.Getenv)
			}
			code, err := localagent.Exec(cmd.Context(), localagent.NewSocketClient(socket),
				localagent.SessionRequest{Role: role, Provider: provider, Device: device}, args, os.Environ(), os.Stdin, env.Stdout, env.Stderr)
			if err != nil {
				return err
			}
			if code != 0 {
				return &childExit{name: args[0], code: code}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "the AWS role (aws) or broker role (ionq)")
	cmd.Flags().StringVar(&provider, "provider", "aws", "aws (dynamic credentials); braket, ibm, ionq or quantinuum (the passthrough)")
	cmd.Flags().StringVar(&device, "device", "", "the only device the child's jobs may use (required for braket, ibm and quantinuum, e.g. sv1, kingston, h1-1e)")
	cmd.Flags().StringVar(&socket, "socket", "", "the local agent's socket")
	return cmd
}

// childExit makes `qbroker exec` exit with its child's status, as
// aws-vault does: scripts see the agent's own result.
type childExit struct {
	name string
	code int
}

func (e *childExit) Error() string { return fmt.Sprintf("%s exited with status %d", e.name, e.code) }
