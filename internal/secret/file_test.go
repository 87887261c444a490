package secret

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestReadFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix mode bits on Windows")
	}
	dir := t.TempDir()
	write := func(name string, mode os.FileMode, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	private := write("private", 0o600, "s3cret")
	if got, err := ReadFile(private, 64); err != nil || string(got) != "s3cret" {
		t.Errorf("ReadFile(0600) = %q, %v; want the contents", got, err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		p := write("exposed-"+mode.String(), mode, "s3cret")
		_, err := ReadFile(p, 64)
		if !errors.Is(err, ErrFileExposed) || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("ReadFile(%v): got %v, want %v with the remedy", mode, err, ErrFileExposed)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error shows the contents: %v", err)
		}
	}
	if _, err := ReadFile(private, 3); err == nil {
		t.Error("ReadFile of a file over the size limit: no error")
	}
	if _, err := ReadFile(dir, 64); err == nil {
		t.Error("ReadFile of a directory: no error")
	}
	if _, err := ReadFile(filepath.Join(dir, "missing"), 64); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadFile of a missing file: got %v, want %v", err, os.ErrNotExist)
	}
}
