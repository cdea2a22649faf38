package config

import "time"

// SigningKeys configures the job-token signing keys.
type SigningKeys struct {
	// RotateEvery rotates the active key when it is older than this (the
	// replica that runs the background sweeps does it; the retired key
	// verifies for the longest job-token life after). 0: only on request
	// (POST /v1/sys/keys/rotate).
	RotateEvery time.Duration `yaml:"rotate_every"`
}

func (k *SigningKeys) validate(bad func(string, ...any)) {
	switch {
	case k.RotateEvery < 0:
		bad("signing_keys.rotate_every: %s is negative", k.RotateEvery)
	case k.RotateEvery > 0 && k.RotateEvery < 10*time.Minute:
		bad("signing_keys.rotate_every: %s is shorter than 10m (a retired key verifies for about 5.5 minutes; rotating faster only churns the JWKS)", k.RotateEvery)
	}
}
