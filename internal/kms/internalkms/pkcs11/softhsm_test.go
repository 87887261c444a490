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
// TestMain makes a token directory with a pool of tokens before any test
// runs. A test borrows a token of its own for as long as it runs (SoftHSM2
// 2.6 fails operations on a token while another thread creates an object
// in it: SoftHSMv2 issue #573), and uses key objects of a label no other
// test, or earlier run with -count, has used.
const (
	softhsmModule = "/usr/lib/softhsm/libsofthsm2.so"
	poolTokens    = 12
	pinTestToken  = "tenantcrypt-pin-test" // TestOpenErrors only
	testPIN       = "1234"
)

var (
	tokenSetup error // why the tokens could not be made (SoftHSM2 missing)
	tokenPool  = make(chan string, poolTokens)
	labelCount atomic.Int64
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
	labels := []string{pinTestToken}
	for i := range poolTokens {
		// One width: pkcs11-tool matches --token-label as a prefix.
		labels = append(labels, fmt.Sprintf("tenantcrypt-test-%02d", i))
	}
	for _, label := range labels {
		out, err := exec.Command(util, "--init-token", "--free", "--label", label, "--pin", testPIN, "--so-pin", "5678").CombinedOutput()
		if err != nil {
			return fmt.Errorf("softhsm2-util --init-token: %v\n%s", err, out)
		}
		if label != pinTestToken {
			tokenPool <- label
		}
	}
	return nil
}

// softHSM returns a Config for a SoftHSM2 token that the test has to
// itself until it ends, with a key label no other test uses, or skips the
// test, naming the package to install, when SoftHSM2 is not installed.
func softHSM(t testing.TB) Config {
	t.Helper()
	if tokenSetup != nil {
		t.Skip(tokenSetup)
	}
	token := <-tokenPool
	t.Cleanup(func() { tokenPool <- token })
	return Config{Module: softhsmModule, Token: token, PIN: testPIN, KeyLabel: fmt.Sprintf("root-%d", labelCount.Add(1))}
}
