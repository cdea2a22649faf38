// Package localagent is the desktop local broker behind `qbroker agent`: a
// per-user daemon that signs the person in once, holds the broker token in
// memory only (locked pages, zeroed on expiry and exit, core dumps off) and
// serves local AI agents without ever handing them a long-lived key.
//
// It serves:
//   - a Unix socket in the user's runtime directory (mode 0600) whose peers
//     are checked with SO_PEERCRED: only the owning uid is served;
//   - the AWS container-credentials endpoint on 127.0.0.1 (what
//     AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_CONTAINER_AUTHORIZATION_TOKEN
//     point an SDK at), one random token per `qbroker exec` session;
//   - a gateway passthrough on 127.0.0.1: a vendor client whose base URL
//     points at it uses a per-process session key, and the daemon fetches a
//     job token for each submission and forwards to the gateway.
//
// Requests that policy marks (hardware, cost above a threshold, the first
// use of a device, exporting credentials) wait for the person's consent: a
// terminal prompt when the daemon has one, otherwise a one-time page on
// 127.0.0.1. No answer denies.
package localagent
