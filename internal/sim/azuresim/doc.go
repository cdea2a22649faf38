// Package azuresim is an in-process emulator of what an Azure Quantum
// client touches: the Microsoft Entra ID token endpoint, the Azure Quantum
// workspace REST API (data plane) and the slice of Azure Blob Storage that
// carries job input and results. It is one http.Handler, routed by path:
// /subscriptions/… is the workspace, /<StorageAccount>/… is storage and
// everything else is Entra. Circuits run on the state-vector simulator of
// package sim, so results are physically right.
//
// Facts come from the provider reference (reference/quantum-apis.md §4, §6)
// and from the published data-plane spec (Azure/azure-rest-api-specs,
// specification/quantum/data-plane, 2026-01-15-preview). Error codes the
// sources do not settle are marked UNCERTAIN where they are produced.
//
// # Entra ID
//
//   - POST /{tenant}/oauth2/v2.0/token, form-encoded, grant_type
//     client_credentials only. The tenant must be Config.TenantID (else 400
//     AADSTS90002), client_id Config.ClientID (else 400 unauthorized_client
//     AADSTS700016). The client authenticates with client_secret (compared
//     in constant time; wrong → 401 invalid_client AADSTS7000215) or with a
//     federated credential: client_assertion_type
//     urn:ietf:params:oauth:client-assertion-type:jwt-bearer and a
//     client_assertion JWT whose iss and sub must equal FederatedIssuer and
//     FederatedSubject (401 AADSTS700211 / 700213), whose aud must include
//     one of FederatedAudiences, by default api://AzureADTokenExchange as
//     Entra documents for federated identity credentials (401 AADSTS700212),
//     whose signature must verify with a key of FederatedKeys chosen by kid
//     (401 AADSTS700027) and whose exp (required) and nbf must hold within
//     ClockSkew (401 AADSTS700024). A malformed assertion is 400 AADSTS50027;
//     neither credential is 401 AADSTS7000218.
//   - scope must be one "<resource>/.default": Azure Quantum
//     (https://quantum.microsoft.com/.default) or ARM
//     (https://management.azure.com/.default); without /.default → 400
//     invalid_scope AADSTS1002012; several scopes → 400 invalid_scope
//     AADSTS70011; another resource → 400 invalid_resource AADSTS500011.
//   - Success is 200 {"token_type":"Bearer","expires_in":N,"ext_expires_in":N,
//     "access_token":…} with Cache-Control: no-store. The access token is a
//     v1.0-shaped JWT signed RS256 by the emulator (kid and x5t headers) with
//     aud (the resource), iss https://sts.windows.net/<tenant>/, tid, oid,
//     sub, appid, appidacr (1 secret, 2 assertion), iat, nbf, exp (TokenTTL,
//     default 1h). GET /{tenant}/discovery/v2.0/keys serves its JWKS.
//   - Refusals are Entra's JSON: error, error_description ("AADSTSn: …
//     Trace ID … Correlation ID … Timestamp …"), error_codes, timestamp,
//     trace_id, correlation_id, error_uri. Secrets are never echoed or
//     logged.
//
// # Workspace API
//
// Under /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Quantum/
// workspaces/{ws}: PUT, GET and DELETE jobs/{jobId}, POST
// jobs/{jobId}:cancel, GET jobs, GET providerStatus and POST storage/sasUri.
// Every request is checked in this order:
//
//   - api-version is required (400 MissingApiVersionParameter) and must be
//     one of Config.APIVersions (400 UnsupportedApiVersion).
//   - Authorization: Bearer <token> issued by this emulator: a bad or
//     foreign signature is 401 InvalidAuthenticationToken, an expired token
//     401 ExpiredAuthenticationToken, another audience (an ARM token) 401
//     InvalidAuthenticationTokenAudience, another tenant 401
//     InvalidAuthenticationTokenTenant, no header 401 AuthenticationFailed,
//     each with a WWW-Authenticate: Bearer challenge; a token of another
//     principal is 403 AuthorizationFailed. Without Authorization, the
//     x-ms-quantum-api-key header is accepted if it equals Config.APIKey.
//   - The path's subscription, resource group and workspace must be the
//     configured ones (404 WorkspaceNotFound).
//
// Errors are {"error":{"code","message"}} with x-ms-error-code, the
// Azure.Core shape of the spec.
//
// # Job input: emulated blob storage
//
// As with the real service, the circuit is not in the job request. A client
// asks POST storage/sasUri {"containerName":"job-<id>"} (from
// 2026-01-15-preview the container is created) or creates the container
// itself (PUT /<account>/<container>?restype=container), uploads the input
// with Put Blob (x-ms-blob-type: BlockBlob) to <container>/inputData (or
// any blob named by inputDataUri), then PUTs the job with containerUri (and
// optionally inputDataUri/outputDataUri), all SAS URIs of this emulator's
// account. Storage requests need a SAS the emulator issued (its own HMAC
// over sv, sr, sp, se and the resource; a forged, widened or expired SAS
// is 403 AuthenticationFailed, a missing one 401, a permission not granted
// 403 AuthorizationPermissionMismatch). SAS URIs use Config.StorageURL or
// the request's own scheme and host; the host is not part of the check,
// so a gateway in front may rewrite it. Inline input is not accepted: a
// gateway that wants to see the circuit must proxy the blob upload, as it
// would in front of Azure.
//
// # Jobs
//
//   - PUT jobs/{jobId} (a GUID) validates JobDetails: name, providerId,
//     target, containerUri and inputDataFormat are required; the target must
//     be configured (400 InvalidJobDefinition) and belong to providerId
//     (case-insensitive); inputDataFormat must be the target's format
//     (ionq.circuit.v1 or honeywell.openqasm.v1; QIR is not run) and
//     outputDataFormat, if given, its output format; sessionId must be
//     absent; priority is Standard or High; inputParams.shots (Quantinuum:
//     shots or count) is 1..MaxShots, default 100. The emulator then reads
//     and parses the input blob at once (the real service does so when the
//     job runs): a missing blob, a circuit that does not parse, more qubits
//     than the target has or than sim.MaxQubits (sim.ErrTooManyQubits), or
//     more work than MaxWork is 400 and creates no job. An id already used
//     is 409. Success is 201 with the JobDetails, status Waiting.
//   - A job moves Waiting → Executing → Finishing → Succeeded, one StepDelay
//     per step. Results are written to outputDataUri (default blob
//     rawOutputData of the container, SAS with read permission) before it
//     turns Succeeded: ionq.quantum-results.v1 {"histogram":{"<index>":p}}
//     (decimal basis-state index, qubit 0 least significant, p =
//     count/shots), or honeywell.quantum-results.v1 {"<creg>":["01",…]} (one
//     bitstring per shot and register, highest bit first). OpenQASM 2.0
//     input is read by rewriting its header for the OpenQASM 3 parser;
//     measurements are taken on the final state. Quantinuum *sc targets
//     return all zeros, as syntax checkers do.
//   - POST jobs/{jobId}:cancel moves a running job to CancellationRequested
//     and Cancelled at its next step (200 JobDetails); repeating it is a
//     no-op; on a Succeeded or Failed job it is 409. DELETE cancels the same
//     way (204) before api-version 2025-12-01-preview and deletes a
//     terminal job (204; 409 while running) from it on.
//   - GET jobs lists every job, oldest first (skip and top page; filter and
//     orderby are refused as unimplemented). GET providerStatus lists the
//     targets grouped by provider, all Available.
//   - At most Config.MaxJobs jobs are kept; the oldest terminal job and its
//     container are evicted to make room, and if every kept job is running
//     a new one is refused with 429.
package azuresim
