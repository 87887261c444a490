package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestScripts runs the CLI scenarios in testdata/script: the commands a
// person or a script types, against a real server on a loopback port.
func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// Scripts use their own work directory and nothing of the
			// developer's environment.
			for _, kv := range os.Environ() {
				if strings.HasPrefix(kv, "TENANTCRYPT_") {
					k, _, _ := strings.Cut(kv, "=")
					env.Setenv(k, "")
				}
			}
			// GODEBUG is how the process runs (fips140=only in CI's FIPS
			// step): the commands the scripts run get it too.
			if v := os.Getenv("GODEBUG"); v != "" {
				env.Setenv("GODEBUG", v)
			}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// waitserver FILE: wait for a server's --addr-file and point
			// TENANTCRYPT_SERVER at it.
			"waitserver": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: waitserver ADDR-FILE")
				}
				path := ts.MkAbs(args[0])
				deadline := time.Now().Add(30 * time.Second)
				for {
					b, err := os.ReadFile(path)
					if err == nil && strings.TrimSpace(string(b)) != "" {
						ts.Setenv("TENANTCRYPT_SERVER", "https://"+strings.TrimSpace(string(b)))
						return
					}
					if time.Now().After(deadline) {
						ts.Fatalf("no server address in %s after 30s", filepath.Base(path))
					}
					time.Sleep(20 * time.Millisecond)
				}
			},
			// exitcode N PROG ARGS...: run PROG and require exit status N.
			"exitcode": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) < 2 {
					ts.Fatalf("usage: exitcode N PROG [ARGS...]")
				}
				want, err := strconv.Atoi(args[0])
				if err != nil {
					ts.Fatalf("exitcode: %v", err)
				}
				err = ts.Exec(args[1], args[2:]...)
				got := 0
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					got = ee.ExitCode()
				} else if err != nil {
					ts.Fatalf("exitcode: %v", err)
				}
				if got != want {
					ts.Fatalf("exit status %d, want %d", got, want)
				}
			},
		},
	})
}
