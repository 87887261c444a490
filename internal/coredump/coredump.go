// Package coredump keeps the process's memory out of crash dumps and out of
// reach of debuggers of the same user: the root key, the issuer's signing
// key and plaintexts live in that memory, and a core file would copy them
// to disk, where nothing tenantcrypt controls cleans them up.
//
// Call Disable once, first thing, in every command that handles keys.
package coredump

import "errors"

// ErrUnsupported: the operating system offers no way to do it here; the
// operator's settings (ulimit -c 0, systemd's LimitCORE=0) must.
var ErrUnsupported = errors.New("coredump: not supported on this operating system")

// Disable sets the process's core file size limit to zero (soft and hard,
// so nothing later in the process can raise it) and, on Linux, marks the
// process not dumpable (PR_SET_DUMPABLE 0), which also refuses ptrace
// attachment by other processes of the same user and makes /proc/PID's
// memory files root-only. Errors: ErrUnsupported where neither exists.
func Disable() error { return disable() }

// Disabled reports whether Disable has taken effect: the core limit is
// zero and, on Linux, the process is not dumpable.
func Disabled() (bool, error) { return disabled() }
