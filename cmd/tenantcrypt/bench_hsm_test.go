//go:build cgo

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BenchmarkRootKeyDataPlane compares the HTTP data plane (TLS, JWT,
// SQLite, 16 clients) with the root key in the key file and in SoftHSM2:
// the HSM is called only when a tenant's KEK is not cached, so the two
// should not differ. docs/PERFORMANCE.md reports the ratio:
//
//	go test -run '^$' -bench RootKeyDataPlane -count 3 ./cmd/tenantcrypt
func BenchmarkRootKeyDataPlane(b *testing.B) {
	b.Run("root=file", func(b *testing.B) {
		benchDataPlane(b, startServer(b, nil, "--log-level", "warn"))
	})
	if _, err := os.Stat(softhsmModule); err != nil {
		b.Skipf("SoftHSM2 is not installed (%s missing): apt-get install softhsm2 opensc", softhsmModule)
	}
	// The server runs in this process, and SoftHSM2 reads SOFTHSM2_CONF
	// and its tokens when the library is first loaded: one token for
	// every run of the sub-benchmark.
	dir := b.TempDir()
	conf, tokens, pin := filepath.Join(dir, "softhsm2.conf"), filepath.Join(dir, "tokens"), filepath.Join(dir, "pin")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(pin, []byte("4711\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	b.Setenv("SOFTHSM2_CONF", conf)
	if out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", "bench", "--pin", "4711", "--so-pin", "0815").CombinedOutput(); err != nil {
		b.Fatalf("softhsm2-util: %v\n%s", err, out)
	}
	b.Run("root=hsm", func(b *testing.B) {
		ts := startServer(b, nil, "--log-level", "warn", "--pkcs11-module", softhsmModule, "--pkcs11-token", "bench",
			"--pkcs11-pin-file", pin, "--pkcs11-key-label", "bench-root")
		benchDataPlane(b, ts)
		// The tenant's first KEK was sealed once, then cached: however
		// many requests ran, the HSM was not called per request.
		b.Logf("HSM operations in all (both sub-benchmarks, every round): %v", metric(b, ts, "tenantcrypt_hsm_operations_total"))
	})
}
