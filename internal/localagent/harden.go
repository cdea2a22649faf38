package localagent

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Harden turns core dumps off for this process (RLIMIT_CORE 0) and makes it
// non-dumpable (PR_SET_DUMPABLE 0): no core file can hold the broker token,
// and other processes of the same user cannot ptrace it or read its memory
// through /proc.
func Harden() error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("disable core dumps: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_DUMPABLE: %w", err)
	}
	return nil
}

// Hardened reports whether Harden is in force for this process.
func Hardened() (bool, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &lim); err != nil {
		return false, fmt.Errorf("getrlimit: %w", err)
	}
	d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil {
		return false, fmt.Errorf("prctl PR_GET_DUMPABLE: %w", err)
	}
	return lim.Cur == 0 && lim.Max == 0 && d == 0, nil
}
