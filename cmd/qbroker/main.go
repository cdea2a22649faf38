// Command qbroker is the quantum credential broker: server, gateway,
// emulators, local tools and the demo agent in one binary. It only wires
// internal/cli to the process.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/qbroker/qbroker/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
	stop()
	os.Exit(code)
}
