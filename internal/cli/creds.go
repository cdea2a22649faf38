package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/qbroker/qbroker/internal/localagent"
)

// credsCmd is `qbroker creds aws --role R --format credential-process`:
// what an AWS config file's credential_process runs. The credentials come
// from the local agent (with consent, as its rules say) and go to stdout
// only, in the JSON the AWS SDKs read.
func credsCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "creds", Short: "Credentials from the local agent, in the formats SDKs read"}
	var role, format, socket string
	aws := &cobra.Command{
		Use:   "aws --role R --format credential-process",
		Short: "AWS STS credentials for credential_process (Version 1 JSON with Expiration)",
		Long:  "In ~/.aws/config:\n  [profile quantum]\n  credential_process = qbroker creds aws --role braket-lab --format credential-process",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if role == "" {
				return fmt.Errorf("--role is required")
			}
			if format != "credential-process" {
				return fmt.Errorf("--format %q: only credential-process is supported", format)
			}
			if socket == "" {
				socket = localagent.DefaultSocketPath(env.Getenv)
			}
			c, err := localagent.NewSocketClient(socket).AWSCreds(cmd.Context(), role)
			if err != nil {
				return err
			}
			return json.NewEncoder(env.Stdout).Encode(localagent.CredentialProcess{
				Version: 1, AccessKeyID: c.AccessKey, SecretAccessKey: c.SecretKey, SessionToken: c.SecurityToken, Expiration: c.Expiration,
			})
		},
	}
	aws.Flags().StringVar(&role, "role", "", "the AWS role (/v1/aws/creds/<role>)")
	aws.Flags().StringVar(&format, "format", "credential-process", "credential-process")
	aws.Flags().StringVar(&socket, "socket", "", "the local agent's socket")
	cmd.AddCommand(aws)
	return cmd
}
