// Package rigettisim is an in-process emulator of Rigetti QCS token
// custody: the Okta OAuth 2.0 authorization server QCS uses, and the
// slice of the QCS REST API that checks an access token. It is an
// http.Handler for tests and local runs. Facts come from the project's
// provider reference (section 5.2, source rigetti/qcs-api-client-rust:
// configuration/{tokens.rs,oidc.rs,settings.rs} and the generated REST
// client); what the reference does not settle is marked UNCERTAIN here
// and at the code.
//
// It is strict where a broker holding a QCS refresh token can get hurt:
//
//   - Discovery: GET {IssuerPath}/.well-known/openid-configuration (the
//     SDK's path; oauth-authorization-server answers the same) gives
//     issuer, authorization_endpoint, token_endpoint {issuer}/v1/token,
//     jwks_uri {issuer}/v1/keys and scopes_supported including "openid",
//     as the SDK requires. The issuer is Config.Issuer or the request's
//     scheme://Host + IssuerPath (default /oauth2/aus8jcovzG0gW2TUG355).
//     The interactive (PKCE) login behind authorization_endpoint is not
//     served; IssueRefreshToken stands in for it.
//   - POST {issuer}/v1/token takes only application/x-www-form-urlencoded
//     (no parameter twice, at most 64 KiB).
//     grant_type=refresh_token (form client_id + refresh_token, as the SDK
//     sends; HTTP Basic also accepted) ROTATES the refresh token on every
//     use: the answer carries a new refresh_token and the presented one
//     stops working at once. Reusing it — later or concurrently — is 400
//     invalid_grant, so exactly one of several concurrent refreshes with
//     one token succeeds, and a client that loses the new token is locked
//     out until a new login (the SDK persists rotated tokens for this
//     reason). The reference does not say QCS detects reuse, so the newer
//     tokens are not revoked on reuse. UNCERTAIN: whether QCS rotates on
//     every use and whether Okta's optional grace period for the old token
//     is on (the emulator has none). An unknown, expired or used refresh
//     token is invalid_grant; a wrong or missing client_id, or wrong Basic
//     credentials, is 401 invalid_client and does not consume the token.
//     grant_type=client_credentials needs HTTP Basic client_id:secret
//     (Config.ClientSecret; refused when empty) and returns no refresh
//     token. Other grants are unsupported_grant_type; a scope beyond
//     "openid offline_access" is invalid_scope. Answers carry Cache-Control:
//     no-store.
//   - Access tokens are RS256 JWTs (the SDK reads exp, with 60 s leeway,
//     to decide when to refresh) signed by Config.SigningKey or a fresh
//     2048-bit key, published at {issuer}/v1/keys. Claims: ver, jti, iss,
//     aud "api://qcs" (UNCERTAIN), iat, exp = iat + AccessTokenTTL
//     (default 1h, UNCERTAIN), cid, uid, scp, sub. Refresh tokens are
//     opaque; each stays valid RefreshTokenTTL (default 30 days,
//     UNCERTAIN) from its issue. Only token hashes are stored.
//   - REST (the QCS API host, served by the same handler): GET
//     /v1/auth:getUser (the User model), GET
//     /v1/quantumProcessors?pageSize=&pageToken= and GET
//     /v1/quantumProcessors/{id}. Each needs exactly one "Authorization:
//     Bearer <access token>" that this emulator signed and whose exp is
//     after Config.Now, with no leeway; otherwise 401 with
//     WWW-Authenticate: Bearer error="invalid_token". REST errors use the
//     QCS Error model {code, message, requestId}; the code strings are the
//     emulator's (UNCERTAIN).
//
// Not emulated: execution. QCS executes over gRPC
// (Translation/TranslateQuilToEncryptedControllerJob, then
// Controller/ExecuteControllerJob, GetControllerJobStatus,
// GetControllerJobResults, CancelControllerJobs at grpc.qcs.rigetti.com),
// which this package does not serve; nor the PKCE login, ID tokens, token
// revocation and introspection, engagements, reservations or the ISA.
package rigettisim
