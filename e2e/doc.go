// Package e2e holds qbroker's end-to-end tests. They build the real
// cmd/qbroker binary once, run it as separate processes (dev, server,
// gateway, sim, demo and the admin commands) on loopback ports chosen by the
// kernel, and check the acceptance criteria from the outside: the
// Bell demo's statistics, that the IonQ key never reaches the agent or the
// disk in clear, that a restart keeps all state, the standalone gateway, and
// graceful shutdown. The package has no non-test code apart from this file.
package e2e
