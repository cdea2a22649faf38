package spiffe

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// LoadBundleFile reads trust bundles for one or more trust domains from a
// JSON file mapping each trust domain to its bundle:
//
//	{
//	  "broker.test": {"keys": [...], "spiffe_sequence": 3},  // a SPIFFE bundle (JWKS: "use" x509-svid and/or jwt-svid)
//	  "legacy.test": "-----BEGIN CERTIFICATE-----\n..."     // or PEM X.509 CA certificates (X.509-SVIDs only)
//	}
//
// Keys may also be written "spiffe://broker.test". The SPIFFE bundle form
// is what `spire-server bundle show -format spiffe` prints. The returned
// sources are the same immutable set; the file is read once.
func LoadBundleFile(path string) (x509bundle.Source, jwtbundle.Source, error) {
	set, err := loadBundleFile(path, spiffeid.TrustDomain{})
	if err != nil {
		return nil, nil, err
	}
	return set, set, nil
}

// loadBundleFile is LoadBundleFile; with a non-zero single, a file holding
// one bare bundle (a SPIFFE bundle JWKS or PEM certificates) is accepted as
// that trust domain's bundle.
func loadBundleFile(path string, single spiffeid.TrustDomain) (*spiffebundle.Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("spiffe bundle file: %w", err)
	}
	trimmed := bytes.TrimSpace(data)
	if bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		if single.IsZero() {
			return nil, fmt.Errorf("spiffe bundle file %s: a bare PEM bundle needs exactly one configured trust domain", path)
		}
		b, err := parsePEMBundle(single, trimmed)
		if err != nil {
			return nil, fmt.Errorf("spiffe bundle file %s: %w", path, err)
		}
		return spiffebundle.NewSet(b), nil
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &doc); err != nil {
		return nil, fmt.Errorf("spiffe bundle file %s: not JSON or PEM: %w", path, err)
	}
	if _, bare := doc["keys"]; bare {
		if single.IsZero() {
			return nil, fmt.Errorf("spiffe bundle file %s: a bare SPIFFE bundle needs exactly one configured trust domain; map trust domains to bundles instead", path)
		}
		b, err := spiffebundle.Parse(single, trimmed)
		if err != nil {
			return nil, fmt.Errorf("spiffe bundle file %s: %w", path, err)
		}
		return spiffebundle.NewSet(b), nil
	}
	if len(doc) == 0 {
		return nil, fmt.Errorf("spiffe bundle file %s: no trust domains", path)
	}
	set := spiffebundle.NewSet()
	for name, raw := range doc {
		td, err := parseTrustDomain(name)
		if err != nil {
			return nil, fmt.Errorf("spiffe bundle file %s: %w", path, err)
		}
		if set.Has(td) {
			return nil, fmt.Errorf("spiffe bundle file %s: trust domain %q given twice", path, td)
		}
		var b *spiffebundle.Bundle
		var pemText string
		if json.Unmarshal(raw, &pemText) == nil {
			b, err = parsePEMBundle(td, []byte(pemText))
		} else {
			b, err = spiffebundle.Parse(td, raw)
		}
		if err != nil {
			return nil, fmt.Errorf("spiffe bundle file %s: trust domain %q: %w", path, td, err)
		}
		set.Add(b)
	}
	return set, nil
}

func parsePEMBundle(td spiffeid.TrustDomain, data []byte) (*spiffebundle.Bundle, error) {
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if len(bytes.TrimSpace(rest)) != 0 {
				return nil, errors.New("trailing data that is not PEM")
			}
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q (want CERTIFICATE)", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificates in PEM bundle")
	}
	return spiffebundle.FromX509Authorities(td, certs), nil
}

// parseTrustDomain accepts "broker.test" or "spiffe://broker.test".
func parseTrustDomain(s string) (spiffeid.TrustDomain, error) {
	if strings.HasPrefix(s, "spiffe://") {
		id, err := spiffeid.FromString(s)
		if err != nil {
			return spiffeid.TrustDomain{}, fmt.Errorf("trust domain %q: %w", s, err)
		}
		if id.Path() != "" {
			return spiffeid.TrustDomain{}, fmt.Errorf("trust domain %q: has a path", s)
		}
		return id.TrustDomain(), nil
	}
	td, err := spiffeid.TrustDomainFromString(s)
	if err != nil {
		return spiffeid.TrustDomain{}, fmt.Errorf("trust domain %q: %w", s, err)
	}
	return td, nil
}
