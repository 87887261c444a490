//go:build unix

package main

import (
	"bytes"
	"log/slog"
	"strings"
	"syscall"
	"testing"
)

func TestFitConnLimit(t *testing.T) {
	t.Parallel()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Skip(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if got := fitConnLimit(10, log); got != 10 {
		t.Errorf("fitConnLimit(10) = %d, want 10 (the open-file limit is %d)", got, rl.Cur)
	}
	if logs.Len() != 0 {
		t.Errorf("a limit that fits logged %q", logs.String())
	}
	huge := int(min(uint64(rl.Cur), 1<<30)) + 1000
	if got, want := fitConnLimit(huge, log), int(min(uint64(rl.Cur), 1<<30))-fdReserve; got != want {
		t.Errorf("fitConnLimit(%d) = %d, want %d (the open-file limit %d less the reserve)", huge, got, want, rl.Cur)
	}
	if !strings.Contains(logs.String(), "--max-conns lowered") {
		t.Errorf("lowering the limit logged %q, want a warning", logs.String())
	}
}
