//go:build linux

package audit_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/qbroker/qbroker/internal/audit"
)

// A real sink that fails every Write, for fail-closed tests in other
// packages: Linux's /dev/full answers every write with ENOSPC.
func ExampleOpenFile_failing() {
	sink, err := audit.OpenFile("/dev/full", audit.FileOptions{
		AllowNonRegular: true,
		Logger:          slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	defer sink.Close()

	err = sink.Write(context.Background(), &audit.Event{Type: "issue"})
	fmt.Println("refuse the request:", errors.Is(err, audit.ErrUnavailable))
	// Output: refuse the request: true
}
