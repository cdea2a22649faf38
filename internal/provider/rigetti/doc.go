// Package rigetti is qbroker's Rigetti QCS provider: custody of the QCS
// refresh token and minting of short-lived QCS access tokens from it.
//
// # Token custody
//
// QCS signs users in through an Okta authorization server (issuer
// [DefaultIssuer], public client [DefaultClientID]); the QCS SDK keeps the
// resulting refresh token in ~/.qcs/secrets.toml. qbroker keeps that
// refresh token instead, sealed, as the provider root credential (see
// [ParseRoot] for its format), and [Minter] exchanges it for a bearer
// access token with the OAuth 2.0 refresh_token grant (form grant_type,
// client_id, refresh_token; no client secret, as the SDK sends it).
//
// The authorization server ROTATES the refresh token on use: the answer
// carries a new one and the presented one dies at once. So:
//
//   - Mint returns the new refresh token as its rotated result, also when
//     the rest of the answer is unusable, and the broker must persist it,
//     sealed, before anything else (broker.Upstream does). A lost rotation
//     locks the account out until an operator enrols a fresh refresh
//     token with `qbroker provider set rigetti`.
//   - Two exchanges with one refresh token cannot both succeed: the second
//     gets invalid_grant ([ErrRefreshRejected]). Mints must therefore be
//     serialised and each must read the root the previous one stored; the
//     broker does this under its upstream-cache lock. Brokers on a shared
//     store (replicas) do not share that lock, and neither does any other
//     QCS client given the same refresh token: a mint that loses such a
//     race sees ErrRefreshRejected although the stored root may already
//     have been replaced by the winner, so a caller should re-read the
//     stored root once before asking an operator to re-enrol.
//   - Once the request is sent, the exchange is not cancelled with the
//     caller's context (only by its own timeout): a caller that gave up
//     must not throw away a rotation QCS already made.
//   - Redirects are never followed, and the token URL must be https (or
//     http to a loopback emulator), so the refresh token is sent to the
//     configured host only. No error text holds a token.
//
// QCS access tokens cannot be narrowed: a token may do whatever the QCS
// user behind the refresh token may do. Mint's role argument therefore
// selects nothing and the scope is empty.
//
// UNCERTAIN (from the reference, not confirmed against the live service):
// that QCS rotates on every use without a grace period (the SDK stores a
// new refresh token "if the authorization server returns one"; Mint
// handles both), the access-token lifetime (the SDK's fixture says 3600 s;
// tokens from the web console last 24 h, the longest Mint believes), and
// that the token endpoint is Okta's fixed {issuer}/v1/token (the SDK reads
// it from OIDC discovery; Mint does not, so a discovery document cannot
// send the refresh token elsewhere).
//
// # Gateway front (not implemented)
//
// This package has no provider.Adapter. QCS executes over gRPC (HTTP/2,
// protobuf, grpc-status trailers) at https://grpc.qcs.rigetti.com with
// "authorization: Bearer <access token>" metadata; the gateway's Front
// speaks HTTP/1-style JSON request/answer pairs, so a QCS front needs a
// gRPC-aware proxy (length-prefixed message framing, trailers) and a
// contract beyond provider.Adapter. What it would have to do, per method
// (full names as on the wire):
//
//   - /services.translation.Translation/TranslateQuilToEncryptedControllerJob
//     (the submit check): the only place shots are visible.
//     quantum_processor_id must be the processor the job token's device
//     maps to; num_shots_value (field 3, a oneof: it must be present, not
//     defaulted) must be at most the job token's shots; quil_program
//     (field 2) is the program, so a job token bound to a digest needs a
//     Quil digest the broker computes the same way (today the broker
//     digests OpenQASM 3 and IonQ JSON only); options (field 4) selects a
//     translation backend and should be refused unless empty; unknown
//     fields refused. The answer's EncryptedControllerJob is opaque.
//   - /services.controller.Controller/ExecuteControllerJob (the spend):
//     the encrypted job cannot be inspected, so the gateway must remember
//     the digest of each EncryptedControllerJob it returned from an
//     approved translation and accept an execution only of exactly such a
//     job, once, on the same quantum_processor_id (target oneof;
//     endpoint_id refused), with exactly one execution_configurations
//     entry (each entry is a separate run of num_shots shots) whose
//     memory_values — parameters patched into the program — are empty
//     unless the job token binds them. The answer's job_execution_ids
//     record the job's owner.
//   - /services.controller.Controller/BatchExecuteControllerJobs: refused
//     (or each inner request checked as above).
//   - GetControllerJobStatus{job_id} (a read; status enum QUEUED, RUNNING,
//     SUCCEEDED, FAILED, CANCELED), GetControllerJobResults
//     {job_execution_id, quantum_processor_id} (a result read) and
//     CancelControllerJobs{job_ids} (a cancel; every listed id must belong
//     to the caller): each id checked against the job's recorded owner.
//   - Every other service and method refused; the caller's own
//     authorization metadata replaced by the broker-minted access token.
package rigetti
