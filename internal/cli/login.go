package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
)

// loginCmd logs in with any auth method. The broker token is printed only
// with --print and is never written to disk; without it, the command shows
// who logged in and for how long (handing the token to the local broker
// comes with the desktop agent).
func loginCmd(env Env) *cobra.Command {
	var method, role, jwtFile, jwtEnv string
	var print bool
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in (approle, jwt/oidc) and get a broker token; --print to see it",
		Long: "approle reads QBROKER_ROLE_ID and QBROKER_SECRET_ID. jwt and oidc send --role and a JWT read from\n" +
			"--jwt-file (or - for stdin) or --jwt-env. The token goes to stdout only with --print.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			addr := env.Getenv(EnvAddr)
			if addr == "" {
				return fmt.Errorf("%s is not set", EnvAddr)
			}
			c := client.New(addr, nil)
			var auth *api.Auth
			var err error
			switch method {
			case "approle":
				rid, sid := env.Getenv(EnvRoleID), env.Getenv(EnvSecretID)
				if rid == "" || sid == "" {
					return fmt.Errorf("%s and %s must be set for approle", EnvRoleID, EnvSecretID)
				}
				auth, err = c.AppRoleLogin(cmd.Context(), rid, sid)
			case "jwt", "oidc":
				if role == "" {
					return fmt.Errorf("--role is required for %s", method)
				}
				var raw string
				if raw, err = readJWT(env, jwtFile, jwtEnv); err != nil {
					return err
				}
				auth, err = c.JWTLogin(cmd.Context(), method, role, raw)
			default:
				return fmt.Errorf("--method %q: want approle, jwt or oidc", method)
			}
			if err != nil {
				return err
			}
			if print {
				fmt.Fprintln(env.Stdout, auth.ClientToken)
				return nil
			}
			fmt.Fprintf(env.Stderr, "logged in as %s (policies %v, accessor %s, ttl %ds); the token was not printed: use --print\n",
				auth.EntityID, auth.Policies, auth.Accessor, auth.LeaseDuration)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&method, "method", "approle", "approle, jwt or oidc")
	f.StringVar(&role, "role", "", "JWT role (jwt, oidc)")
	f.StringVar(&jwtFile, "jwt-file", "", "file holding the JWT, or - for stdin (jwt, oidc)")
	f.StringVar(&jwtEnv, "jwt-env", "", "environment variable holding the JWT (jwt, oidc)")
	f.BoolVar(&print, "print", false, "print the broker token to stdout")
	return cmd
}

func readJWT(env Env, file, envVar string) (string, error) {
	switch {
	case envVar != "":
		if v := env.Getenv(envVar); v != "" {
			return strings.TrimSpace(v), nil
		}
		return "", fmt.Errorf("%s is empty", envVar)
	case file == "-":
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && err != io.EOF {
			return "", err
		}
		return strings.TrimSpace(line), nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", fmt.Errorf("a JWT is required: --jwt-file or --jwt-env")
}
