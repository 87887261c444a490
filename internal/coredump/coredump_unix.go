//go:build unix

package coredump

import (
	"fmt"
	"syscall"
)

func setCoreLimitZero() error {
	if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("coredump: setting RLIMIT_CORE to 0: %w", err)
	}
	return nil
}

func coreLimitZero() (bool, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_CORE, &l); err != nil {
		return false, fmt.Errorf("coredump: reading RLIMIT_CORE: %w", err)
	}
	return l.Cur == 0 && l.Max == 0, nil
}
