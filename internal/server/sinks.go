package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/config"
)

// auditSecondaries builds the configured SIEM sinks.
func auditSecondaries(cfg *config.Config, log *slog.Logger, getenv func(string) string) ([]*audit.Secondary, error) {
	var out []*audit.Secondary
	dir := cfg.Audit.BufferDir
	if dir == "" {
		dir = filepath.Join(cfg.DataDir, "audit-spool")
	}
	for i, s := range cfg.Audit.Sinks {
		name := s.Name
		if name == "" {
			name = fmt.Sprintf("%s-%d", s.Type, i)
		}
		var tc *tls.Config
		if s.TLS || s.CAFile != "" {
			tc = &tls.Config{ServerName: s.ServerName, MinVersion: tls.VersionTLS12}
			if s.CAFile != "" {
				pem, err := os.ReadFile(s.CAFile)
				if err != nil {
					return nil, fmt.Errorf("audit.sinks[%d]: %w", i, err)
				}
				tc.RootCAs = x509.NewCertPool()
				if !tc.RootCAs.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("audit.sinks[%d]: %s holds no certificate", i, s.CAFile)
				}
			}
		}
		var exp audit.Exporter
		var err error
		switch s.Type {
		case "syslog":
			exp, err = audit.NewSyslogExporter(audit.SyslogOptions{Address: s.Address, TLS: tc, Facility: s.Facility, AppName: "qbroker"})
		case "http":
			token := ""
			if s.TokenEnv != "" {
				if token = getenv(s.TokenEnv); token == "" {
					return nil, fmt.Errorf("audit.sinks[%d]: %s is empty", i, s.TokenEnv)
				}
			}
			exp, err = audit.NewHTTPExporter(audit.HTTPOptions{Format: s.Format, URL: s.URL, Token: token, Index: s.Index, TLS: tc})
		default:
			err = fmt.Errorf("type %q is not syslog or http", s.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("audit.sinks[%d]: %w", i, err)
		}
		sec, err := audit.NewSecondary(exp, audit.SecondaryOptions{Name: name, Dir: dir, MaxBufferBytes: cfg.Audit.MaxBufferBytes, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("audit.sinks[%d]: %w", i, err)
		}
		out = append(out, sec)
	}
	return out, nil
}

func closeSecondaries(ctx context.Context, secs []*audit.Secondary) error {
	var errs []error
	for _, s := range secs {
		errs = append(errs, s.Close(ctx))
	}
	return errors.Join(errs...)
}
