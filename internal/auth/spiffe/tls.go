package spiffe

import (
	"crypto/tls"
	"errors"
)

// ServerTLSConfig returns a copy of base (nil: a new config) that asks every
// client for a certificate and, when one is given, verifies it as an
// X.509-SVID of an accepted trust domain against the bundle source; a client
// that sends no certificate still connects (VerifyClientCertIfGiven
// semantics), so the same listener serves token-authenticated clients.
//
// Verification runs in VerifyConnection, which Go calls on every handshake
// including resumed sessions. Handlers must still call LoginX509 (or
// LoginTLS) to get the Identity: it re-verifies against the current bundle.
// base's own VerifyConnection, if any, runs afterwards. If base requires a
// client certificate (RequireAnyClientCert or RequireAndVerifyClientCert), a
// certificate stays required. base's ClientCAs are ignored: trust comes only
// from the SPIFFE bundles.
func (a *Authenticator) ServerTLSConfig(base *tls.Config) *tls.Config {
	var cfg *tls.Config
	if base != nil {
		cfg = base.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	switch cfg.ClientAuth {
	case tls.RequireAnyClientCert, tls.RequireAndVerifyClientCert:
		cfg.ClientAuth = tls.RequireAnyClientCert
	default:
		cfg.ClientAuth = tls.RequestClientCert
	}
	// Go's own chain verification is off (Request/RequireAny); the SVID
	// check below replaces it.
	cfg.ClientCAs = nil
	next := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) > 0 {
			if _, lerr := a.verifyChain(cs.PeerCertificates); lerr != nil {
				return errors.New("spiffe: client certificate refused: " + lerr.Reason)
			}
		}
		if next != nil {
			return next(cs)
		}
		return nil
	}
	return cfg
}
