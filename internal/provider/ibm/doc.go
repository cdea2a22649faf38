// Package ibm is qbroker's IBM Quantum adapter (Qiskit Runtime on IBM
// Cloud).
//
// [Minter] exchanges the broker's sealed IBM Cloud API key for a
// short-lived IAM bearer token (POST {IAMURL}/identity/token with
// grant_type=urn:ibm:params:oauth:grant-type:apikey). IAM has no
// down-scoped tokens: what a token may do is whatever the key's service ID
// may do, so the key should belong to a service ID limited to one Qiskit
// Runtime instance.
//
// [Adapter] is the gateway's front for Qiskit Runtime's REST API, served
// under the gateway prefix with the service's own paths
// (/api/v1/jobs, /api/v1/jobs/{id}, …), so the gateway's upstream is the
// service root (https://quantum.cloud.ibm.com, or a regional
// https://{region}.quantum.cloud.ibm.com). A caller sends its qbroker
// token where Qiskit sends its credential, Authorization: Bearer. Only a
// SamplerV2 job with exactly one PUB whose circuit is OpenQASM 3 source is
// accepted, with its shots given explicitly; the gateway forwards it with
// the broker's IAM token and the configured instance's Service-CRN, and
// nothing the caller sent as a credential.
//
// UNCERTAIN (from IBM's documentation, not confirmed against the live
// service): the default shot count when a job names none (the adapter
// therefore requires one), the raw status strings (both the REST API's
// "Completed" and the SDK's "DONE" spellings are understood) and the name
// of the usage field of a job answer.
package ibm
