package coredump

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

func disable() error {
	errLimit := setCoreLimitZero()
	var errDumpable error
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		errDumpable = fmt.Errorf("coredump: prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	return errors.Join(errLimit, errDumpable)
}

func disabled() (bool, error) {
	zero, err := coreLimitZero()
	if err != nil {
		return false, err
	}
	dumpable, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil {
		return false, fmt.Errorf("coredump: prctl(PR_GET_DUMPABLE): %w", err)
	}
	return zero && dumpable == 0, nil
}
