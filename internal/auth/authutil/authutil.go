// Package authutil holds what the auth methods (jwtauth, device, spiffe)
// share. It is pure: no I/O.
package authutil

import (
	"errors"
	"net/url"
)

// CheckIdPURL validates an identity provider's URL from configuration: an
// absolute http(s) URL with a host and no embedded credentials.
func CheckIdPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return errors.New("scheme must be https (or http)")
	}
	if u.Host == "" {
		return errors.New("host is required")
	}
	if u.User != nil {
		return errors.New("must not contain credentials")
	}
	return nil
}
