//go:build cgo

package pkcs11

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// SoftHSM2 reads SOFTHSM2_CONF and lists its tokens once, when the library
// is initialised, and the library is initialised once per process. So
// TestMain makes a token directory with a token per test before any test
// runs, and each test takes a token of its own.
const (
	softhsmModule = "/usr/lib/softhsm/libsofthsm2.so"
	tokens        = 16
	testPIN       = "1234"
)

var (
	tokenLabels []string
	tokenSetup  error // why the tokens could not be made (SoftHSM2 missing)
	tokenCount  atomic.Int64
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tenantcrypt-softhsm-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tokenDir := filepath.Join(dir, "tokens")
	conf := filepath.Join(dir, "softhsm2.conf")
	if err = os.Mkdir(tokenDir, 0o700); err == nil {
		err = os.WriteFile(conf, []byte("directories.tokendir = "+tokenDir+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("SOFTHSM2_CONF", conf)
	tokenSetup = makeTokens()
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func makeTokens() error {
	if _, err := os.Stat(softhsmModule); err != nil {
		return fmt.Errorf("SoftHSM2 is not installed (%s missing): apt-get install softhsm2 opensc", softhsmModule)
	}
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		return fmt.Errorf("softhsm2-util is not installed: apt-get install softhsm2")
	}
	for i := range tokens {
		label := fmt.Sprintf("test-%d", i)
		out, err := exec.Command(util, "--init-token", "--free", "--label", label, "--pin", testPIN, "--so-pin", "5678").CombinedOutput()
		if err != nil {
			return fmt.Errorf("softhsm2-util --init-token: %v\n%s", err, out)
		}
		tokenLabels = append(tokenLabels, label)
	}
	return nil
}

// softHSM returns a Config for a fresh SoftHSM2 token of its own, or skips
// the test, naming the package to install, when SoftHSM2 is not installed.
func softHSM(t testing.TB) Config {
	t.Helper()
	if tokenSetup != nil {
		t.Skip(tokenSetup)
	}
	i := int(tokenCount.Add(1)) - 1
	if i >= len(tokenLabels) {
		t.Fatalf("more than %d tests take a token: raise tokens in softhsm_test.go", len(tokenLabels))
	}
	return Config{Module: softhsmModule, Token: tokenLabels[i], PIN: testPIN, KeyLabel: "tenantcrypt-root"}
}
