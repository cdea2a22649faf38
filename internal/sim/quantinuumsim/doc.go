// Package quantinuumsim is an in-process emulator of Quantinuum's legacy
// machine API (https://qapi.quantinuum.com/v1/), the API pytket-quantinuum
// spoke before it moved to Quantinuum Nexus, backed by the state-vector
// simulator in package sim. It is an http.Handler for tests and local runs.
// Facts come from the project's provider reference (section 5.1, source
// CQCL/pytket-quantinuum api_wrappers.py and quantinuum.py); what the
// reference does not settle is marked UNCERTAIN here and at the code.
//
// It is as strict as the service where the service's behaviour is known,
// and refuses rather than guesses where it is not:
//
//   - POST /v1/login takes {"email","password"} and answers 200
//     {"id-token","refresh-token"}. A wrong email or password is 401. With
//     Config.MFACode set, a login without "code" is 401 with error code 73
//     (as pytket expects) and a wrong code 401. POST /v1/login
//     {"refresh-token"} answers a new id-token and the same refresh token
//     (UNCERTAIN whether the service rotates it); an unknown or expired
//     refresh token is 400 with "Invalid Refresh Token" in error.text, the
//     text pytket looks for. Mixing both forms, unknown fields and
//     {"provider-token"} (federated login) are 400.
//   - Tokens are opaque random strings (the service's are JWTs, UNCERTAIN
//     and immaterial: pytket never decodes them). An id-token lives
//     Config.IDTokenTTL (default 1h) but never past its refresh token,
//     which lives Config.RefreshTokenTTL (default 30 days) from the password
//     login; both defaults are pytket's cache settings rounded up, not
//     server-stated (UNCERTAIN). Expiry follows Config.Now. The emulator
//     stores only token hashes.
//   - Every other route needs "Authorization: <id-token>": exactly one
//     header, the bare token. A missing, repeated or scheme-prefixed value
//     ("Bearer <id-token>"), an unknown token, a refresh token and an
//     expired id-token are all 401 (error text says which; UNCERTAIN: the
//     service's 401 bodies).
//   - Errors are {"error":{"code":N,"text":"…"}}, the shape pytket reads.
//     Only code 73 comes from the source; elsewhere code is the HTTP status
//     (an emulator choice). Unknown paths are 404, wrong methods 405.
//   - GET /v1/machine/?config=true lists machines as pytket reads them
//     (name, n_qubits, n_shots, system_type, emulator, syntax_checker, …);
//     GET /v1/machine/{name} adds "state" ("online" …); unknown is 404.
//     Default machines: H1-1, H1-1E, H1-1SC, H2-1, H2-1E, H2-1SC.
//   - POST /v1/job takes JSON (no Content-Type needed: pytket sends none)
//     of at most 1 MiB: name, count (shots), machine, language, program,
//     priority, options (an object, stored and ignored), max-cost (HQC) and
//     group. Unknown fields are 400 (UNCERTAIN: the service may ignore
//     them). cfl (WASM), batch-exec and batch-end are refused as not
//     emulated. Checks, in order: required fields; the machine must be
//     listed (404 otherwise); language must be "OPENQASM 2.0" (the
//     reference's QASM value; "QIR 1.0" is refused as not emulated, any
//     other value as unknown); the program must parse with package qasm;
//     its qubits must fit the machine and sim.MaxQubits (20; beyond it 400
//     naming sim.ErrTooManyQubits); gates×2^qubits at most MaxWork; count
//     in 1..n_shots; the cost at most max-cost when max-cost is given.
//     Every refusal is 4xx and creates no job. Success is 200
//     {"job":<id>,"status":"queued"}; pytket reads "job".
//   - GAP, program language: the service takes OpenQASM 2.0 text (pytket
//     sends "OPENQASM 2.0; include \"hqslib1.inc\";"). Package qasm parses
//     only its OpenQASM 3 subset, whose header "OPENQASM 2.0;" it refuses,
//     so the emulator cannot run real OpenQASM 2.0 text: such programs are
//     400 with a message naming the gap. It runs OpenQASM 3 subset text
//     ("OPENQASM 3;", include "stdgates.inc", qreg/creg or qubit/bit,
//     measure) sent under the language label "OPENQASM 2.0", which the
//     real service would probably refuse. A gateway that parses programs
//     with package qasm has the same gap.
//   - Mid-circuit measurement, which the service supports, is refused (400)
//     because the emulator samples the final state: any gate statement
//     after a measurement is refused, conservatively.
//   - Cost (HQC) = 5 + count·(N1q + 10·N2q + 5·Nm)/5000, rounded to 4
//     decimals, where N1q counts one-qubit operations of the parsed program
//     (id excluded), N2q two-qubit operations (ccx and cswap count 6), and
//     Nm is one preparation per qubit plus one per measurement. UNCERTAIN:
//     the formula is not in the reference (it is Azure Quantum's published
//     one) and the service counts native gates after compiling. A job whose
//     cost exceeds max-cost is refused at submission (UNCERTAIN: the
//     service may fail it later instead). On a syntax checker (…SC) the job
//     is free, max-cost does not bind, and the job reports the cost the
//     real machine would charge with all-zero results.
//   - A job moves queued → running → completed, one StepDelay per step,
//     and stays queued while its machine is not online (SetMachineState).
//     GET /v1/job/{id} answers {job, name, status, machine, count,
//     language, priority, submit-date, start-date, result-date,
//     queue-position, cost, error, results}. It never adds the "websocket"
//     object the service adds for unfinished jobs with ?websocket=true, so
//     pytket polls. results maps each classical register, in declaration
//     order, to one bitstring per shot, in shot order, with bit i of the
//     register at index len−1−i (pytket reads index −1−i); qubit 0 is the
//     least significant bit of the simulated basis state. Unwritten bits
//     read 0.
//   - POST /v1/job/{id}/cancel turns an unfinished job canceling and, at its
//     next step, canceled (without partial results); it is idempotent while
//     canceling and 400 on a finished job (UNCERTAIN). Unknown jobs are 404.
//   - At most Config.MaxJobs jobs (default 10,000) are kept: the oldest
//     finished job is evicted to make room, and if every kept job is
//     unfinished a submission is 429.
//
// Not emulated: Quantinuum Nexus (cookies myqos_id/myqos_oat), the
// websocket status stream, QIR, WASM, batching, federated login, partial
// results, and the calendar API.
package quantinuumsim
