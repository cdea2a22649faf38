package audit

import (
	"context"
	"testing"
)

// /dev/null (benchmark baseline) accepts events: a character device cannot
// be fsync'd and has nothing to make durable, so EINVAL there is not a
// failure. A regular file's fsync errors still fail (see the /dev/full and
// fault-injection tests).
func TestDevNullSinkAcceptsEvents(t *testing.T) {
	s, err := OpenFile("/dev/null", FileOptions{AllowNonRegular: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 3 {
		if err := s.Write(context.Background(), &Event{Type: "login"}); err != nil {
			t.Fatalf("write to /dev/null: %v", err)
		}
	}
	if _, err := OpenFile("/dev/null", FileOptions{}); err == nil {
		t.Fatal("/dev/null accepted without AllowNonRegular")
	}
}
