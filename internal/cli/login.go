package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

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
			hc, err := httpClient(env)
			if err != nil {
				return err
			}
			c := client.New(addr, hc)
			var auth *api.Auth
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
			case "device":
				if role == "" {
					return fmt.Errorf("--role is required for device (the JWT role that verifies your identity)")
				}
				auth, err = deviceLogin(cmd.Context(), env, c, role)
			default:
				return fmt.Errorf("--method %q: want approle, jwt, oidc or device", method)
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
	f.StringVar(&method, "method", "approle", "approle, jwt, oidc or device")
	f.StringVar(&role, "role", "", "JWT role (jwt, oidc, device)")
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

// deviceLogin runs the device flow: show the person where to approve, then
// poll at the interval the broker gives (slower when told to).
func deviceLogin(ctx context.Context, env Env, c *client.Client, role string) (*api.Auth, error) {
	s, err := c.DeviceStart(ctx, role)
	if err != nil {
		return nil, err
	}
	where := s.VerificationURIComplete
	if where == "" {
		where = s.VerificationURI
	}
	fmt.Fprintf(env.Stderr, "To sign in, open %s and enter the code %s (expires in %ds).\n", where, s.UserCode, s.ExpiresIn)
	interval := time.Duration(max(s.Interval, 1)) * time.Second
	deadline := time.Now().Add(time.Duration(s.ExpiresIn) * time.Second)
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(interval):
		}
		auth, err := c.DevicePoll(ctx, s.Handle)
		if err == nil {
			return auth, nil
		}
		var ce *client.Error
		if !errors.As(err, &ce) || len(ce.Errors) == 0 {
			return nil, err
		}
		switch {
		case strings.HasPrefix(ce.Errors[0], "authorization_pending"):
		case strings.HasPrefix(ce.Errors[0], "slow_down"):
			interval += 5 * time.Second
		default:
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the device login expired before it was approved")
		}
	}
}
