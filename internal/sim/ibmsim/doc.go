// Package ibmsim is an in-process emulator of the two IBM services a Qiskit
// Runtime client touches: IBM Cloud IAM's API-key exchange and the Qiskit
// Runtime REST API (Sampler primitive). It is one http.Handler; IAM lives at
// /identity/token and Runtime under /api/v1, so one listener stands for both
// https://iam.cloud.ibm.com and https://quantum.cloud.ibm.com/api. Circuits
// run on the state-vector simulator of package sim, so results are
// physically right.
//
// It is meant to be as strict as IBM where IBM's behaviour is known, and says
// where it is not (UNCERTAIN below and in the code):
//
//   - POST /identity/token takes a form with
//     grant_type=urn:ibm:params:oauth:grant-type:apikey and apikey=<key>. A
//     missing or empty property is 400 BXNIM0109E "Property missing or
//     empty." (errorDetails names it), an unknown key 400 BXNIM0415E
//     "Provided API key could not be found.", another grant type 400
//     BXNIM0103E (UNCERTAIN: code and text not found), a method other than
//     POST 405 BXNIM0060E, all in IAM's shape {"errorCode", "errorMessage",
//     "errorDetails", "context"}. Success is {"access_token": <JWT>,
//     "refresh_token": "not_supported", "token_type": "Bearer",
//     "expires_in", "expiration", "scope": "ibm openid"}. The token is a JWT
//     whose payload IBM's SDKs can decode for exp and iat; its signature is
//     random, and the emulator remembers only its SHA-256 and expiry
//     (Config.TokenTTL, at most IAM's one hour, on Config.Now's clock).
//   - Every /api/v1 route but GET /versions needs "Authorization: Bearer
//     <live IAM token>" (an expired, unknown or malformed one is 401 code
//     1201 "Invalid credentials."). "Authorization: apikey <key>", the
//     fallback IBM's SDK uses and the OpenAPI lists, is accepted too. Then
//     Service-CRN must name a configured instance (Config.InstanceCRN and
//     OtherInstanceCRNs); a wrong one is 403 code 1200 "You are not
//     authorized to perform this action.", and so, UNCERTAIN, is a missing
//     one. IBM-API-Version is optional; a malformed one is 400. Errors use
//     the ErrorContainer {"errors":[{"code","message","solution",
//     "more_info"}],"trace"} with integer codes, as IBM sends them.
//   - GET /backends answers device objects for IBM-API-Version ≥ 2025-01-01
//     and a list of names before that or without the header; GET
//     /backends/{id}/configuration and /status describe a backend (basis
//     gates, a synthetic line coupling map, max_shots, max_experiments). An
//     unknown backend is 404 code 1216 (UNCERTAIN code). IBM's cloud
//     simulators are retired, so every backend is a QPU.
//   - POST /jobs takes a SamplerV2 job: program_id "sampler" (the estimator
//     and other programs are refused), backend, params {pubs, options,
//     shots, support_qiskit, version} with additionalProperties refused, and
//     optional tags (≤8 of ≤86 characters), log_level, cost (capped at
//     10800), runtime and private. A PUB is an OpenQASM 3 string or
//     [circuit, parameter values, shots]; a PUB's shots default to
//     params.shots, then options.default_shots, then 4096 (UNCERTAIN). Body
//     problems are 400 code 1208 "Request validation of body failed,
//     because: …", and so is anything the emulator can judge from the
//     request: shots outside 1..max_shots, more PUBs than max_experiments, a
//     circuit the OpenQASM subset of package qasm cannot parse, more qubits
//     than the backend has or than sim.MaxQubits (20), the emulator's work
//     and total-shot limits. Duplicate JSON keys and non-integer numbers
//     (1024.0) are refused, which is stricter than IBM (UNCERTAIN) and what a
//     gateway must do too, so that it and the service read the same job.
//     Sessions, calibration ids, QPY circuits, parameter values and
//     support_qiskit=true are refused as unsupported by the emulator. At most
//     Config.JobsPerMinute (5, as IBM) jobs are accepted per rolling minute;
//     beyond is 429 (UNCERTAIN code). Success is 200 {"id", "backend"}, with
//     a 20-character id like IBM's.
//   - A job moves Queued → Running → Completed one StepDelay at a time.
//     Qiskit Runtime does not transpile and fails non-ISA jobs only after
//     queueing them (reported against the live service), so a circuit that
//     uses a gate outside the backend's basis (default cz id rx rz rzz sx x)
//     or a two-qubit gate on uncoupled qubits ends Failed with state.reason
//     "Job not valid. …" and reason_code 3211.
//   - GET /jobs/{id} answers JobResponseV3 (state {status, reason,
//     reason_code}, status, params unless private or exclude_params=true,
//     program, created, cost, tags, user_id, usage once completed). GET
//     /jobs lists the instance's jobs. A job is visible only to the instance
//     that created it: any other instance gets 404 code 1291 "Job not found.
//     Job ID: X.", the answer for an unknown id.
//   - GET /jobs/{id}/results answers the pure-JSON Sampler result
//     {"results":[{"data":{<register>:{"samples":["0x3",…],"num_bits":2}},
//     "metadata":{…}}],"metadata":{…}}: one hexadecimal sample per shot and
//     classical register, bit 0 of the register least significant (rightmost
//     in Qiskit's bitstrings), registers in declaration order, only measured
//     registers' values (unmeasured bits read 0). It is 204 while there is
//     no result (the OpenAPI's "final result not found"); a private job's
//     result can be read once. Measurements are treated as terminal: package
//     qasm does not record where a measurement sits among the gates.
//   - POST /jobs/{id}/cancel is 204 for a Queued or Running job and 409
//     code 1306 (UNCERTAIN code) for a finished one; DELETE /jobs/{id} is
//     204 for a finished job and 400 otherwise.
//   - Not emulated: sessions, the estimator and other programs, interim
//     results, logs, metrics, tags search, backend properties and defaults,
//     the instance usage limit (409 "Usage exceeds instance limit").
package ibmsim
