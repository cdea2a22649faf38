// Package ionq holds the wire types of IonQ's v0.4 REST API and the
// gateway-side helpers that read them: strict job-request decoding and
// validation (mirroring IonQ's JSON schema, with additionalProperties:false),
// the IonQ error shape, the apiKey Authorization header and the rewriting of
// relative result URLs. It performs no network I/O itself; the gateway and the
// emulator (package ionqsim) use it.
//
// The circuit inside an ionq.circuit.v1 job is validated by package circuit;
// the digest a job token binds to is [JobRequest.CircuitDigest], the
// canonical-JSON SHA-256 of the request's "input" value exactly as sent.
package ionq
