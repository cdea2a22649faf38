// Package azure is qbroker's Azure Quantum adapter: a provider.Minter for
// Microsoft Entra ID tokens and the gateway's front for the Azure Quantum
// workspace API (provider.Adapter, provider.ResultFetcher and the Uploads
// extra this package defines). Facts: reference/quantum-apis.md §4.
//
// # Credentials
//
// The root credential is a service principal: "TENANT:CLIENT_ID:SECRET" or
// JSON with client_secret, or JSON with a federated identity credential
// whose private key the broker holds and signs a fresh client assertion
// with for every token (ParseRoot). Minter runs Entra's client-credentials
// grant for https://quantum.microsoft.com/.default; the access token is
// provider.Credential.Secret and Entra's expires_in its Expires.
//
// # Why an extra interface
//
// Azure Quantum does not carry the program in the job request: a client
// asks the workspace for a SAS URI (POST {ws}/storage/sasUri), uploads
// the program as the blob "inputData" of that container, then creates the
// job (PUT {ws}/jobs/{id}) naming the container. A gateway that only saw
// the job request could not check the program against the job token, and
// an agent holding a workspace SAS could rewrite the blob after any check.
// So the program never reaches Azure from the agent:
//
//   - The gateway answers storage/sasUri itself with a staging container
//     of its own (random name, random capability in the SAS "sig"), held
//     in bounded memory for at most the job token's life.
//   - The agent's SDK uploads inputData there, to the gateway; it is
//     written once and never changes.
//   - The job PUT must name such a container: ParseSubmit reads the staged
//     bytes and returns their digest, so the gateway's usual checks (device,
//     shots, program digest) run before the token is redeemed.
//   - After the redemption, Send takes the staged input (once), asks the
//     workspace for a SAS of a fresh container with a random name, uploads
//     exactly the checked bytes there and creates the job naming it.
//   - Every answer is scrubbed of SAS tokens, so no agent ever holds a
//     writable (or readable) URI of the workspace's storage; outputs are
//     read through GET {ws}/jobs/{id}/output.
//
// # The sequence a gateway drives (prefix /azure)
//
// For each request, rest is the escaped path after the prefix.
//
//  1. kind := UploadRoute(method, rest).
//  2. kind == UploadGrant (POST {ws}/storage/sasUri): raw, ok := Token(h)
//     (else 401); claims := Verify(raw) — signature and times, the same
//     refusals as a submission — WITHOUT Redeem; claims.Provider must be
//     "azure" (else 403). Optionally audit "upload-grant" (agent, jti).
//     Then Grant(w, r, claims.ID, claims.Expiry); the adapter writes the
//     answer {"sasUri": "<PublicURL>/storage/<name>?sv=…&se=…&sig=…"}.
//  3. kind == UploadStaging (/storage/…): ServeStaging(w, r, rest). No
//     qbroker token is involved (the SAS sig is the credential, as with
//     Azure storage); no upstream request is made.
//  4. Otherwise route := Route(method, rest) and, as front.go does today:
//     - Submit (PUT {ws}/jobs/{id}): body read (bounded); Token → Verify;
//     Provider "azure"; sub, err := ParseSubmit(body) (400 on error: this
//     is where a job naming a container the gateway did not grant, or with
//     no input uploaded, is refused); device = Devices[claims.Device] must
//     equal sub.Device (the lower-case target id, e.g. "ionq.simulator");
//     sub.Shots ≤ claims.MaxShots; sub.ProgramSHA256 == claims.ProgramSHA256
//     when bound; cred := Upstream("azure", claims.Role); prepared :=
//     Prepare(body, scope); Redeem(claims.ID); then — instead of frontSend —
//     resp, err := Send(ctx, route, rest, prepared, cred, rt.RoundTrip).
//     An error means nothing was created and the token is spent (502 "job
//     not submitted"). Then JobID(respBody), RecordJob, Audit and the
//     answer, exactly as today. If recording or auditing fails, cancel
//     with Send(ctx, provider.Route{Kind: provider.Cancel, JobID: id}, "",
//     nil, cred, rt.RoundTrip).
//     - Read (GET {ws}/jobs/{id}, GET {ws}/jobs/{id}/output) and Cancel
//     (POST {ws}/jobs/{id}:cancel): Token is the agent's broker token;
//     owner and policy checks (route.Action ReadJob, ReadResult,
//     CancelJob) and the cancel audit as today; then — instead of
//     frontSend or FetchResult — resp, err := Send(ctx, route, rest, nil,
//     cred, rt.RoundTrip), answered as passThrough does.
//     - Refused: WriteError 403.
//
// Without step 1–3 nothing can be submitted (ParseSubmit finds no staged
// input), so a gateway that does not know Uploads fails closed. Staged
// input lives in one gateway process: grant, upload and job creation must
// reach the same gateway replica.
package azure
