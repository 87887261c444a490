package coredump

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"testing"
)

// TestDisable runs in a child process of its own, so that the test binary
// that runs the other packages' tests stays as it was.
func TestDisable(t *testing.T) {
	if os.Getenv("COREDUMP_TEST_CHILD") == "1" {
		if err := Disable(); err != nil {
			t.Fatalf("Disable: %v", err)
		}
		ok, err := Disabled()
		if err != nil || !ok {
			t.Fatalf("Disabled after Disable: %v, %v; want true", ok, err)
		}
		if err := Disable(); err != nil { // idempotent
			t.Fatalf("Disable again: %v", err)
		}
		return
	}
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" && runtime.GOOS != "freebsd" {
		if err := Disable(); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("Disable on %s: got %v, want %v", runtime.GOOS, err, ErrUnsupported)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDisable$", "-test.v")
	cmd.Env = append(os.Environ(), "COREDUMP_TEST_CHILD=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
