package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeBusyPortCreatesNothing: a second server on a port that is taken
// fails before it creates any state (data directory, root key, CA, database).
func TestServeBusyPortCreatesNothing(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := filepath.Join(t.TempDir(), "data")
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"serve", "--data-dir", dir, "--listen", ln.Addr().String(), "--log-format", "text"},
		func(string) string { return "" }, strings.NewReader(""), &stdout, &stderr)
	if code != exitFailure {
		t.Errorf("serve on a busy port: exit %d, want %d; stderr: %s", code, exitFailure, stderr.String())
	}
	if !strings.Contains(stderr.String(), "listening on "+ln.Addr().String()) {
		t.Errorf("serve on a busy port: stderr %q does not name the address", stderr.String())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(dir)
		t.Errorf("serve on a busy port: the data directory exists (stat: %v), holding %d entries; want it not created", err, len(entries))
	}
}
