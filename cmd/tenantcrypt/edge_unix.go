//go:build unix

package main

import (
	"log/slog"
	"syscall"
)

// fitConnLimit lowers max to fit the process's open-file limit, with a
// reserve for everything else, and says so.
func fitConnLimit(max int, log *slog.Logger) int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return max
	}
	fit := int(min(uint64(rl.Cur), 1<<30)) - fdReserve
	if fit < 16 {
		fit = 16
	}
	if max > fit {
		log.Warn("--max-conns lowered to fit the open-file limit (raise it with ulimit -n or LimitNOFILE=)",
			"max_conns", max, "lowered_to", fit, "open_file_limit", rl.Cur)
		return fit
	}
	return max
}
