package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestServerTurnsOffCoreDumps: with `ulimit -c unlimited`, a crash dump of
// the server would hold the root key, the issuer's key and plaintext. The
// server, started as an operator would (its own process, core dumps
// allowed), sets its core limit to zero, soft and hard, before it serves,
// and says so in its log.
func TestServerTurnsOffCoreDumps(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/PID/limits (Linux)")
	}
	t.Parallel()
	dir := t.TempDir()
	p := &serverProcess{t: t, dataDir: filepath.Join(dir, "data"), addrFile: filepath.Join(dir, "addr"), logPath: filepath.Join(dir, "server.log")}
	p.args = []string{"serve", "--data-dir", p.dataDir, "--listen", "127.0.0.1:0", "--addr-file", p.addrFile}
	// The child starts under `ulimit -c unlimited`: raising the hard limit
	// needs root (or CAP_SYS_RESOURCE) when this process has lowered it.
	if out, err := exec.Command("/bin/sh", "-c", "ulimit -c unlimited").CombinedOutput(); err != nil {
		t.Skipf("cannot allow core dumps here (ulimit -c unlimited: %v %s)", err, out)
	}
	p.shell = `ulimit -c unlimited && exec "$@"`
	p.env = childEnv()
	t.Cleanup(p.cleanup)
	p.start()

	limits, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/limits")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^Max core file size\s+(\S+)\s+(\S+)`)
	m := re.FindStringSubmatch(string(limits))
	if m == nil || m[1] != "0" || m[2] != "0" {
		t.Errorf("core file size limit of the server (soft, hard) = %q, want 0 0:\n%s", m, limits)
	}
	logs, err := os.ReadFile(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logs), "core dumps off and the process not dumpable") {
		t.Errorf("the server does not say that core dumps are off:\n%s", logs)
	}
}
