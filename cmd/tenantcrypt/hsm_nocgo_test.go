//go:build !cgo

package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHSMWithoutCgo: a binary built without cgo (CGO_ENABLED=0 go test
// -run TestHSMWithoutCgo ./cmd/tenantcrypt) says clearly that it has no
// PKCS#11 when given the HSM flags, and refuses to start.
func TestHSMWithoutCgo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pin := filepath.Join(dir, "pin")
	if err := os.WriteFile(pin, []byte("4711\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	code := run(context.Background(), []string{"serve", "--data-dir", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0",
		"--pkcs11-module", "/usr/lib/softhsm/libsofthsm2.so", "--pkcs11-token", "t", "--pkcs11-key-label", "k", "--pkcs11-pin-file", pin},
		func(string) string { return "" }, strings.NewReader(""), io.Discard, &logs)
	if code == exitOK || !strings.Contains(logs.String(), "built without cgo (CGO_ENABLED=0), so it has no PKCS#11 support") {
		t.Fatalf("serve with HSM flags and no cgo: exit %d\n%s", code, logs.String())
	}
}
