// Package rigetti is qbroker's Rigetti QCS provider: custody of the QCS
// refresh token, minting of short-lived QCS access tokens from it, and the
// gateway's reading of QCS's gRPC execution calls.
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
// # Gateway front (gRPC)
//
// QCS executes over gRPC (HTTP/2, protobuf, grpc-status trailers) at
// [DefaultGRPCURL] with "authorization: Bearer <access token>" metadata.
// [Adapter] is the gateway's provider.GRPCAdapter for it; it reads the
// messages with protowire, by the field numbers of qcs-api-client-grpc's
// protos, and refuses unknown fields and a singular field sent twice
// (protobuf keeps the last one, so a gateway that read the first could be
// fooled). Per method (full names as on the wire):
//
//   - /services.translation.Translation/TranslateQuilToEncryptedControllerJob
//     (the submission, the only place shots are visible):
//     quantum_processor_id (1) must be the processor the job token's device
//     maps to; num_shots_value (3, a oneof: it must be present) at most the
//     job token's shots; quil_program (2) must parse as the Quil subset of
//     package quil and, when the token is bound, have its digest
//     (quil.Digest, the broker's format "quil"); options (4) may only pick
//     a translation backend. The answer's EncryptedControllerJob is opaque;
//     its ticket is a digest of its job bytes, key id and nonce.
//   - /services.controller.Controller/ExecuteControllerJob (the spend):
//     exactly one execution_configurations entry with no memory_values (each
//     entry is another run; memory_values patch parameters the job token
//     does not bind), a quantum_processor_id target (endpoint_id refused),
//     and an encrypted job whose ticket the gateway approved. The answer's
//     one job_execution_id is the job id recorded for the owner.
//   - BatchExecuteControllerJobs and every other method: refused.
//   - GetControllerJobStatus{job_id}, GetControllerJobResults
//     {job_execution_id, quantum_processor_id} and CancelControllerJobs
//     {job_ids}: each id checked against the job's recorded owner; a
//     finished status or result settles the job's budget (a result's
//     execution_duration_microseconds as QPU time).
//
// UNCERTAIN: whether QCS ever re-encodes an encrypted job differently
// between translation and execution (the ticket is computed over the
// values, not the bytes, so field order does not matter), and whether
// clients send Controller calls with endpoint_id rather than
// quantum_processor_id (qcs-sdk can; such calls are refused).
package rigetti
