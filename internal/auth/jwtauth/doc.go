// Package jwtauth is qbroker's JWT/OIDC login method, with the semantics of
// Vault's JWT auth method: an agent presents a JWT from a trusted issuer and a
// role name; the token is verified and checked against the role's bindings, and
// the result is an Identity carrying the role's broker role and mapped claims.
//
// # Verification
//
// Each IssuerConfig supplies keys by OIDC discovery, a JWKS URL, or PEM public
// keys. Signatures are verified with github.com/coreos/go-oidc/v3 (oidc.NewVerifier)
// over this package's own oidc.KeySet, which differs from go-oidc's RemoteKeySet:
// keys are fetched lazily (the broker starts before its IdP), refreshed every
// RefreshInterval, and refreshed on an unknown kid at most once per
// MinRefreshInterval with concurrent callers sharing the one fetch — so a flood of
// forged kids cannot drive traffic to the IdP, and a rotated IdP key needs no
// restart.
//
// Login checks, in order, each with its own LoginError reason: the role exists;
// the header's alg is in the issuer's allow-list ("none" and HS* are refused before
// any key lookup, and are configuration errors when listed); iss is the role's
// issuer (another configured issuer's iss is a role/issuer mismatch); the
// signature (unknown kid after the one allowed refresh, or a bad signature /
// tampered payload); exp (required), nbf and iat (not in the future) within the
// issuer's leeway (default 10 s, at most 2 min); max_age; bound_audiences;
// bound_subject; bound_claims; the user claim; claim_mappings.
//
// Claims in bound_claims, claim_mappings and user_claim are top-level names or
// JSON pointers (RFC 6901) such as "/kubernetes.io/namespace". A claim that is an
// array matches when any element matches; bound_claims_type "glob" allows '*'
// wildcards. Mapped values must be strings, numbers or booleans.
//
// # Workload identity federation
//
// Kubernetes service-account tokens (projected, with an audience of your choice):
//
//	issuers:
//	  - name: kubernetes
//	    issuer: https://kubernetes.default.svc.cluster.local   # the cluster's --service-account-issuer
//	    jwks_url: https://kubernetes.default.svc/openid/v1/jwks # or discovery_url: the issuer URL
//	    algorithms: [RS256]
//	roles:
//	  - name: quantum-workers
//	    issuer: kubernetes
//	    bound_audiences: [qbroker]
//	    bound_claims_type: glob
//	    bound_claims:
//	      /kubernetes.io/namespace: [quantum]
//	      /kubernetes.io/serviceaccount/name: ["runner-*"]
//	    claim_mappings:
//	      /kubernetes.io/namespace: namespace
//	      /kubernetes.io/serviceaccount/name: service_account
//	      /kubernetes.io/pod/name: pod
//	    # sub is system:serviceaccount:<namespace>:<name>; bound_subject pins one account
//	    broker_role: submit-only
//
// GitHub Actions (request the token with the audience you bind, e.g.
// core.getIDToken('qbroker') or ACTIONS_ID_TOKEN_REQUEST_URL&audience=qbroker):
//
//	issuers:
//	  - name: github-actions
//	    issuer: https://token.actions.githubusercontent.com
//	    discovery_url: https://token.actions.githubusercontent.com
//	roles:
//	  - name: ci-release
//	    issuer: github-actions
//	    bound_audiences: [qbroker]
//	    bound_claims:
//	      repository: [acme/quantum-pipelines]
//	      ref: [refs/heads/main]
//	      environment: [production]
//	    claim_mappings: {repository: repository, ref: ref, run_id: run_id, actor: actor}
//	    user_claim: sub          # repo:acme/quantum-pipelines:environment:production
//	    max_age: 10m
//	    broker_role: submit-only
//
// The field names above are those the broker's YAML config is expected to map
// onto IssuerConfig and RoleConfig; README.md in this directory has the same
// examples with more explanation.
package jwtauth
