package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

const (
	// startTimeout bounds how long a server may take to write its address
	// file (PostgreSQL migrations included).
	startTimeout = 60 * time.Second
	// stopTimeout is how long a server has to stop after SIGTERM before it
	// is killed; tenantcrypt is started with a shorter --shutdown-timeout.
	stopTimeout = 15 * time.Second
)

// buildServer builds ./cmd/tenantcrypt of the module this command is run in
// into dir and returns the binary's path.
func buildServer(ctx context.Context, dir string) (string, error) {
	return buildCommand(ctx, dir, "./cmd/tenantcrypt", "tenantcrypt")
}

// buildCommand builds the command package pkg of the module this command
// is run in into dir/name and returns the binary's path.
func buildCommand(ctx context.Context, dir, pkg, name string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the tenantcrypt module: run bench from the repository (go run ./bench), or give -server-bin")
	}
	bin := filepath.Join(dir, name)
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

// process is a server started as a child process.
type process struct {
	name    string
	logPath string
	pid     int
	cancel  context.CancelFunc
	done    chan struct{} // closed when the process has exited
	err     error         // cmd.Wait's, once done is closed
}

// startProcess starts bin with args, its output going to logPath. Stopping
// it (stop, or the end of ctx) sends SIGTERM and kills it stopTimeout
// later. Its standard input is a pipe that this process holds open, so
// that a child that watches it (the baseline server) exits if this process
// dies without stopping it.
func startProcess(ctx context.Context, name, logPath, bin string, args ...string) (*process, error) {
	return startProcessEnv(ctx, name, logPath, nil, stopTimeout, bin, args...)
}

// startProcessEnv is startProcess with extra environment variables
// (NAME=value) for the child, beyond the filtered environment of serverEnv,
// and its own time to stop after SIGTERM before it is killed.
func startProcessEnv(ctx context.Context, name, logPath string, extraEnv []string, stopWait time.Duration, bin string, args ...string) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	pctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(pctx, bin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopWait
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(serverEnv(os.Environ()), extraEnv...)
	if _, err := cmd.StdinPipe(); err != nil {
		cancel()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("starting the %s server: %w", name, err)
	}
	p := &process{name: name, logPath: logPath, pid: cmd.Process.Pid, cancel: cancel, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// serverEnv is env without TENANTCRYPT_* variables, which would otherwise
// configure the server (a config file, a database, root keys) behind the
// benchmark's back.
func serverEnv(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, "TENANTCRYPT_") })
}

// stop stops the process gracefully (SIGTERM; killed if it takes longer
// than stopTimeout) and waits for it. It reports an exit that was not
// clean; stopping twice is harmless.
func (p *process) stop() error {
	p.cancel()
	<-p.done
	// After a cancel, Wait reports a clean exit as the context's error.
	if p.err == nil || errors.Is(p.err, context.Canceled) {
		return nil
	}
	return fmt.Errorf("the %s server did not stop cleanly: %w%s", p.name, p.err, p.logTail())
}

// waitAddr waits for the address the server writes to path once it is
// listening, and checks that it is a loopback address.
func (p *process) waitAddr(ctx context.Context, path string) (string, error) {
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		// Servers write the file atomically: once there, it is whole.
		if data, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(data)) > 0 {
			addr := strings.TrimSpace(string(data))
			host, _, err := net.SplitHostPort(addr)
			if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
				return "", fmt.Errorf("the %s server listens on %q, want a loopback address", p.name, addr)
			}
			return addr, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-p.done:
			return "", fmt.Errorf("the %s server exited before listening: %v%s", p.name, p.err, p.logTail())
		case <-deadline.C:
			return "", fmt.Errorf("the %s server did not listen within %s%s", p.name, startTimeout, p.logTail())
		case <-tick.C:
		}
	}
}

// logTail is the end of the process's output, for error messages.
func (p *process) logTail() string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 20 {
			lines = lines[1:]
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return "\n" + p.name + " server output (last lines):\n  " + strings.Join(lines, "\n  ")
}

// mintToken runs `tenantcrypt token` against the server's data directory.
func mintToken(ctx context.Context, bin, dataDir string, ttl time.Duration, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, append([]string{"token", "--data-dir", dataDir, "--ttl", ttl.String()}, args...)...)
	cmd.Env = serverEnv(os.Environ())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("tenantcrypt token %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	tok := strings.TrimSpace(string(out))
	if tok == "" {
		return "", fmt.Errorf("tenantcrypt token %s printed no token", strings.Join(args, " "))
	}
	return tok, nil
}
