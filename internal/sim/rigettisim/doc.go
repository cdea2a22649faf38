// Package rigettisim is an in-process emulator of Rigetti QCS: the Okta
// OAuth 2.0 authorization server QCS uses, the slice of the QCS REST API
// that checks an access token, and gRPC execution of Quil programs. It is an
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
//
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
//
//   - Access tokens are RS256 JWTs (the SDK reads exp, with 60 s leeway,
//     to decide when to refresh) signed by Config.SigningKey or a fresh
//     2048-bit key, published at {issuer}/v1/keys. Claims: ver, jti, iss,
//     aud "api://qcs" (UNCERTAIN), iat, exp = iat + AccessTokenTTL
//     (default 1h, UNCERTAIN), cid, uid, scp, sub. Refresh tokens are
//     opaque; each stays valid RefreshTokenTTL (default 30 days,
//     UNCERTAIN) from its issue. Only token hashes are stored.
//
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
//   - gRPC execution ([Emulator.GRPC]; ServeHTTP also hands it gRPC calls
//     that arrive over HTTP/2, h2c included), with the method names and
//     field numbers of qcs-api-client-grpc's translation/service.proto and
//     controller/{service,job,readout}.proto, messages encoded with
//     protowire. Every call needs exactly one "authorization: Bearer
//     <access token>" metadata entry with a token this emulator signed and
//     that has not expired (else UNAUTHENTICATED).
//     Translation/TranslateQuilToEncryptedControllerJob{quantum_processor_id
//     1, quil_program 2, num_shots_value 3}: an unknown processor is
//     NOT_FOUND; num_shots_value must be set, positive and at most
//     Config.MaxShots (default 10,000, UNCERTAIN); the program must parse
//     as the Quil subset of package quil and use qubits the processor has
//     (Ankaa-3 84, Cepheus-1-108Q 108; UNCERTAIN for others) and at most
//     sim.MaxQubits of them; otherwise INVALID_ARGUMENT. The answer's
//     EncryptedControllerJob{job 1, encryption 2 {key_id 1, nonce 2}} is
//     the processor, shots and program sealed with AES-256-GCM under a key
//     only the emulator holds; metadata.readout_mappings maps "ro[i]" to
//     the stream "q<qubit>" (UNCERTAIN: QCS's stream names).
//     Controller/ExecuteControllerJob{execution_configurations 3,
//     encrypted 201, quantum_processor_id 101 | endpoint_id 102} runs only
//     a job this emulator sealed, on the processor it was translated for,
//     once per configuration (at least one; memory_values refused, since
//     the subset declares no parameters) and returns job_execution_ids.
//     Like QCS, the same encrypted job may be executed again: limiting an
//     approval to one execution is the gateway's job. An execution is
//     QUEUED for the first half of Config.ExecutionDelay (default 200 ms),
//     RUNNING for the second, then SUCCEEDED, on the state-vector
//     simulator. GetControllerJobStatus{job_id 1} answers {status 1};
//     GetControllerJobResults{job_execution_id 1, quantum_processor_id
//     101} waits for the execution to finish (UNCERTAIN: QCS may refuse
//     instead) and answers {result 1: {readout_values 2: stream →
//     {integer_values 1: {values 1}}, one value per shot, status 3,
//     execution_duration_microseconds 5}}; CancelControllerJobs{job_ids 1}
//     cancels queued executions, best effort, ignoring unknown ids
//     (UNCERTAIN), as the proto documents. BatchExecuteControllerJobs runs
//     each inner request. Other methods are UNIMPLEMENTED; unknown fields
//     are skipped, as a proto3 server does.
//
// Not emulated: the PKCE login, ID tokens, token revocation and
// introspection, engagements (endpoint_id targets are NOT_FOUND),
// reservations, the ISA, parametric programs and Quil-T.
package rigettisim
