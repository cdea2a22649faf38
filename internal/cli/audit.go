package cli

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
)

// Broker endpoints used by the audit commands (see docs/audit.md).
const (
	pathAuditHash      = "/v1/sys/audit/hash"
	pathAuditPublicKey = "/v1/sys/audit/public-key"
)

func auditCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Audit trail tools: offline verification, secret digests, the signing key"}
	cmd.AddCommand(auditVerifyCmd(env), auditHashCmd(env), auditPublicKeyCmd(env), auditTailCmd(env))
	return cmd
}

func auditVerifyCmd(env Env) *cobra.Command {
	var keyFile, keyB64 string
	var previous []string
	var opts audit.VerifyOptions
	cmd := &cobra.Command{
		Use:   "verify FILE...",
		Short: "Verify audit files offline: hash chain, seq, signed checkpoints",
		Long: "Verify audit log files, oldest first (rotated audit-<first>-<last>.log files, then audit.log),\n" +
			"with only the audit public key. Exit 0 with a summary, or 1 naming the first bad line.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := loadPublicKey(keyFile, keyB64)
			if err != nil {
				return err
			}
			for _, p := range previous {
				k, err := parsePublicKey([]byte(p))
				if err != nil {
					return fmt.Errorf("--previous-key-b64: %w", err)
				}
				opts.PreviousKeys = append(opts.PreviousKeys, k)
			}
			rep, err := audit.VerifyFiles(cmd.Context(), args, pub, opts)
			for _, w := range rep.Warnings {
				fmt.Fprintln(env.Stderr, "warning:", w)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "OK: %d file(s), %d line(s), %d event(s), %d checkpoint(s), seq %d-%d, head %s, key %s\n",
				rep.Files, rep.Lines, rep.Events, rep.Checkpoints, rep.FirstSeq, rep.LastSeq, rep.Head, rep.KeyID)
			if rep.Unprotected > 0 {
				fmt.Fprintf(env.Stdout, "unprotected: %d event(s) after the last checkpoint (seq %d)\n", rep.Unprotected, rep.LastCheckpointSeq)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "public-key", "", "file holding the audit public key (PEM, base64 or raw 32 bytes)")
	f.StringVar(&keyB64, "public-key-b64", "", "the audit public key, base64")
	f.StringArrayVar(&previous, "previous-key-b64", nil, "an earlier audit public key (base64) whose checkpoints are also accepted; repeatable")
	f.BoolVar(&opts.Strict, "strict", false, "fail on events after the last checkpoint, a trail not starting at seq 1, or a torn last line")
	f.Uint64Var(&opts.MinSeq, "min-seq", 0, "fail if the trail ends before this seq (e.g. the seq from `qbroker audit public-key`)")
	return cmd
}

func auditHashCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "hash VALUE|-",
		Short: "Print the audit HMAC of a secret value (computed by the broker), to search the trail",
		Long: "Ask the broker (QBROKER_ADDR, QBROKER_TOKEN) for the hmac-sha256 digest under which the audit\n" +
			"trail records VALUE. Pass - to read the value from standard input (keeps it out of shell history).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			value := args[0]
			if value == "-" {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return fmt.Errorf("read value: %w", err)
				}
				value = strings.TrimRight(line, "\r\n")
			}
			if value == "" {
				return errors.New("empty value")
			}
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			var out api.AuditHashData
			if err := c.Do(cmd.Context(), http.MethodPost, pathAuditHash, api.AuditHashRequest{Value: value}, &api.Response{Data: &out}); err != nil {
				return err
			}
			if !strings.HasPrefix(out.Hash, audit.HashPrefix) {
				return fmt.Errorf("broker returned no %s digest", audit.HashPrefix)
			}
			fmt.Fprintln(env.Stdout, out.Hash)
			return nil
		},
	}
}

func auditPublicKeyCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "public-key",
		Short: "Print the broker's audit checkpoint public key (and the trail's current seq)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			var out api.AuditPublicKeyData
			if err := c.Do(cmd.Context(), http.MethodGet, pathAuditPublicKey, nil, &api.Response{Data: &out}); err != nil {
				return err
			}
			pub, err := parsePublicKey([]byte(out.PublicKey))
			if err != nil {
				return fmt.Errorf("broker's public key: %w", err)
			}
			if id := audit.KeyID(pub); out.KeyID != id {
				return fmt.Errorf("broker's key_id %q does not match its public key (%s)", out.KeyID, id)
			}
			return printJSON(env.Stdout, out)
		},
	}
}

func loadPublicKey(file, b64 string) (ed25519.PublicKey, error) {
	switch {
	case file != "" && b64 != "":
		return nil, errors.New("give --public-key or --public-key-b64, not both")
	case b64 != "":
		return parsePublicKey([]byte(b64))
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read public key: %w", err)
		}
		return parsePublicKey(data)
	}
	return nil, errors.New("the audit public key is required: --public-key FILE or --public-key-b64 KEY (see `qbroker audit public-key`)")
}

// parsePublicKey accepts a PEM "PUBLIC KEY" (PKIX), base64 (std or URL, of
// the raw key) or the raw 32 bytes.
func parsePublicKey(data []byte) (ed25519.PublicKey, error) {
	if block, _ := pem.Decode(data); block != nil {
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse PEM public key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("PEM public key is %T, not Ed25519", k)
		}
		return pub, nil
	}
	if len(data) == ed25519.PublicKeySize {
		return ed25519.PublicKey(bytes.Clone(data)), nil
	}
	s := strings.TrimSpace(string(data))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == ed25519.PublicKeySize {
			return ed25519.PublicKey(b), nil
		}
	}
	return nil, errors.New("not an Ed25519 public key (want PEM, base64 of 32 bytes, or 32 raw bytes)")
}

// auditTailCmd prints recent audit events from the running broker (root
// token), optionally following new ones.
func auditTailCmd(env Env) *cobra.Command {
	var agent, typ string
	var n int
	var follow bool
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Show recent audit events (JSON lines) from the running broker; --follow for new ones",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			var after uint64
			enc := json.NewEncoder(env.Stdout)
			for {
				q := url.Values{"limit": {strconv.Itoa(n)}}
				if agent != "" {
					q.Set("agent", agent)
				}
				if typ != "" {
					q.Set("type", typ)
				}
				if after > 0 {
					q.Set("after_seq", strconv.FormatUint(after, 10))
				}
				var out struct {
					Events []audit.Event `json:"events"`
				}
				if err := c.Do(cmd.Context(), http.MethodGet, "/v1/sys/audit/events?"+q.Encode(), nil, &api.Response{Data: &out}); err != nil {
					return err
				}
				for _, e := range out.Events {
					if err := enc.Encode(e); err != nil {
						return err
					}
					after = max(after, e.Seq)
				}
				if !follow {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(time.Second):
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&agent, "agent", "", "only this agent's events")
	f.StringVar(&typ, "type", "", "only events of this type (login, issue, redeem, submit, revoke, anomaly, ...)")
	f.IntVarP(&n, "lines", "n", 20, "how many recent events")
	f.BoolVar(&follow, "follow", false, "keep printing new events")
	return cmd
}
