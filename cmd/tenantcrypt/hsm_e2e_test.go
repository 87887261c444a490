//go:build cgo

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/store/postgres/pgtest"
)

const softhsmModule = "/usr/lib/softhsm/libsofthsm2.so"

// softHSMToken is a SoftHSM2 token of its own, in a token directory of its
// own (SOFTHSM2_CONF), for servers run as child processes: SoftHSM2 reads
// its configuration once per process.
type softHSMToken struct {
	conf, label, pinFile string
}

// softHSMPIN is the user PIN of the tests' SoftHSM tokens: a string that
// no log line holds by chance (a bare number does, in a timestamp), so that
// finding it in the output means the PIN leaked.
const softHSMPIN = "tc-pin-4711"

// newSoftHSMToken makes a token, or skips the test, naming the Debian
// packages to install, when SoftHSM2 is missing.
func newSoftHSMToken(t *testing.T) softHSMToken {
	t.Helper()
	if _, err := os.Stat(softhsmModule); err != nil {
		t.Skipf("SoftHSM2 is not installed (%s missing): apt-get install softhsm2 opensc", softhsmModule)
	}
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		t.Skip("softhsm2-util is not installed: apt-get install softhsm2")
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	tok := softHSMToken{conf: filepath.Join(dir, "softhsm2.conf"), label: "tenantcrypt", pinFile: filepath.Join(dir, "pin")}
	if err := os.WriteFile(tok.conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tok.pinFile, []byte(softHSMPIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(util, "--init-token", "--free", "--label", tok.label, "--pin", softHSMPIN, "--so-pin", "0815")
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+tok.conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return tok
}

// flags are the --pkcs11-* flags for the token, with the PIN file.
func (tok softHSMToken) flags() []string {
	return []string{"--pkcs11-module", softhsmModule, "--pkcs11-token", tok.label, "--pkcs11-pin-file", tok.pinFile, "--pkcs11-key-label", "tenantcrypt-root"}
}

func (tok softHSMToken) env() []string { return append(childEnv(), "SOFTHSM2_CONF="+tok.conf) }

// runTenantcrypt runs the tenantcrypt command as an operator does, as a
// child process, and returns its exit code and output.
func runTenantcrypt(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	// A command that ends by itself needs no exit-with-stdin guard (its
	// standard input is empty, which would end it at once).
	for _, kv := range env {
		if !strings.HasPrefix(kv, exitWithStdinEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("tenantcrypt %s: %v\n%s", strings.Join(args, " "), err, out)
	return 0, ""
}

func internalKMSDoc(t *testing.T, ts *testServer, admin string) api.InternalKMS {
	t.Helper()
	return waitInternalKMS(t, ts, admin, "")
}

// TestHSMDrill is the operator's drill of an HSM root key, with servers as
// child processes on one data directory and a SoftHSM2 token: first start,
// restart, refused starts (no HSM, wrong PIN), rotation, and the migrations
// to a root key file and back.
func TestHSMDrill(t *testing.T) {
	t.Parallel()
	tok := newSoftHSMToken(t)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	serveArgs := []string{"serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--addr-file", filepath.Join(dir, "addr"), "--log-level", "info"}
	withHSM := &serverProcess{t: t, dataDir: dataDir, addrFile: filepath.Join(dir, "addr"), logPath: filepath.Join(dir, "server.log"),
		args: append(append([]string{}, serveArgs...), tok.flags()...), env: tok.env()}
	t.Cleanup(withHSM.cleanup)
	rootFile := filepath.Join(dataDir, "root-keys.json")

	// First start: the root key is created in the token.
	ts := withHSM.start()
	admin := ts.token(auth.RolePlatformAdmin, "")
	if r := ts.do("POST", "/api/v1/tenants", admin, map[string]any{"id": "acme", "name": "Acme", "edition": "enterprise"}); r.status != 201 {
		t.Fatalf("create tenant: %d %s", r.status, r.body)
	}
	svc := ts.token(auth.RoleService, "acme")
	secret := b64("patient record 4711")
	r := ts.do("POST", "/api/v1/encryption/encrypt", svc, map[string]any{"plaintext": secret})
	if r.status != 200 {
		t.Fatalf("encrypt: %d %s", r.status, r.body)
	}
	ct := r.json(t)["ciphertext"].(string)
	doc := internalKMSDoc(t, ts, admin)
	if doc.RootKeySource != "pkcs11" || doc.CurrentRootKeyVersion != 1 {
		t.Fatalf("internal KMS: source %q, current %d; want pkcs11, 1", doc.RootKeySource, doc.CurrentRootKeyVersion)
	}
	checkSealed(t, doc, map[uint32]int{1: 1})
	if _, err := os.Stat(rootFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a root key file exists with an HSM root key: %v", err)
	}
	if tool, err := exec.LookPath("pkcs11-tool"); err == nil {
		cmd := exec.Command(tool, "--module", softhsmModule, "--token-label", tok.label, "--login", "--pin", softHSMPIN, "--list-objects", "--type", "secrkey")
		cmd.Env = tok.env()
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "label:      tenantcrypt-root") || !strings.Contains(string(out), "never extractable") ||
			!strings.Contains(string(out), "ID:         00000001") {
			t.Fatalf("pkcs11-tool does not show a sensitive, never extractable root key version 1: %v\n%s", err, out)
		}
	}
	decrypt := func(ts *testServer, when string) {
		t.Helper()
		r := ts.do("POST", "/api/v1/encryption/decrypt", svc, map[string]any{"ciphertext": ct})
		if r.status != 200 || r.json(t)["plaintext"] != secret {
			t.Fatalf("%s: decrypt: %d %s", when, r.status, r.body)
		}
	}
	decrypt(ts, "first start")

	// Restart: the HSM opens the tenant's KEK again.
	if code := withHSM.terminate(); code != exitOK {
		t.Fatalf("server exit code %d", code)
	}
	ts = withHSM.start()
	decrypt(ts, "after a restart")
	if code := withHSM.terminate(); code != exitOK {
		t.Fatalf("server exit code %d", code)
	}

	// Refused starts change nothing.
	refused := func(what string, env []string, args []string, want ...string) {
		t.Helper()
		code, out := runTenantcrypt(t, env, args...)
		if code == exitOK {
			t.Fatalf("%s: the server started:\n%s", what, out)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: exit %d, output does not say %q:\n%s", what, code, w, out)
			}
		}
		if strings.Contains(out, softHSMPIN) {
			t.Errorf("%s: the output shows the PIN:\n%s", what, out)
		}
		if _, err := os.Stat(rootFile); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: the refused start wrote a root key file", what)
		}
	}
	refused("without the HSM", childEnv(), serveArgs, "in an HSM", `token \"tenantcrypt\"`, "--pkcs11-module")
	refused("with a wrong PIN", append(tok.env(), pinEnv+"=1234"),
		append(append([]string{}, serveArgs...), "--pkcs11-module", softhsmModule, "--pkcs11-token", tok.label, "--pkcs11-key-label", "tenantcrypt-root"),
		"refused the PIN")
	refused("with an unknown token", tok.env(),
		append(append([]string{}, serveArgs...), "--pkcs11-module", softhsmModule, "--pkcs11-token", "other", "--pkcs11-pin-file", tok.pinFile, "--pkcs11-key-label", "tenantcrypt-root"),
		"no HSM token with that label")
	refused("with both PIN sources", append(tok.env(), pinEnv+"="+softHSMPIN), append(append([]string{}, serveArgs...), tok.flags()...), "not both")

	if code, out := runTenantcrypt(t, childEnv(), "rootkey", "rotate", "--data-dir", dataDir); code == exitOK || !strings.Contains(out, "give the --pkcs11-* flags") {
		t.Errorf("rootkey rotate of the key file on an HSM data directory: exit %d, want a refusal pointing at the HSM flags\n%s", code, out)
	}

	// Rotation, offline through the CLI, then through the API.
	code, out := runTenantcrypt(t, tok.env(), append([]string{"rootkey", "rotate", "--data-dir", dataDir}, tok.flags()...)...)
	if code != exitOK || !strings.Contains(out, "root key version 2 created") {
		t.Fatalf("rootkey rotate: exit %d\n%s", code, out)
	}
	ts = withHSM.start()
	doc = internalKMSDoc(t, ts, admin) // the start rewraps under version 2
	if doc.CurrentRootKeyVersion != 2 {
		t.Fatalf("after rootkey rotate and a restart: current %d, want 2", doc.CurrentRootKeyVersion)
	}
	checkSealed(t, doc, map[uint32]int{2: 1})
	r = ts.do("POST", internalKMSPath+"/actions/rotate-root-key", admin, nil)
	if r.status != 202 {
		t.Fatalf("rotate-root-key: %d %s", r.status, r.body)
	}
	var started api.InternalKMS
	if err := json.Unmarshal(r.body, &started); err != nil {
		t.Fatal(err)
	}
	doc = waitInternalKMS(t, ts, admin, started.Job.ID)
	if doc.Job.State != "completed" || doc.CurrentRootKeyVersion != 3 {
		t.Fatalf("after rotate-root-key: %+v, want version 3 and a completed rewrap", doc)
	}
	checkSealed(t, doc, map[uint32]int{3: 1})
	if code := withHSM.terminate(); code != exitOK {
		t.Fatalf("server exit code %d", code)
	}
	ts = withHSM.start()
	decrypt(ts, "after two rotations and a restart")
	if code := withHSM.terminate(); code != exitOK {
		t.Fatalf("server exit code %d", code)
	}

	// Out of the HSM into a key file, and back.
	code, out = runTenantcrypt(t, tok.env(), append([]string{"rootkey", "migrate", "--to", "file", "--data-dir", dataDir}, tok.flags()...)...)
	if code != exitOK || !strings.Contains(out, "resealed 1 tenant KEK") {
		t.Fatalf("rootkey migrate --to file: exit %d\n%s", code, out)
	}
	withFile := &serverProcess{t: t, dataDir: dataDir, addrFile: filepath.Join(dir, "addr"), logPath: filepath.Join(dir, "server.log"),
		args: serveArgs, env: childEnv()}
	t.Cleanup(withFile.cleanup)
	ts = withFile.start()
	decrypt(ts, "on the key file")
	if doc := internalKMSDoc(t, ts, admin); doc.RootKeySource != "file" || doc.CurrentRootKeyVersion != 4 {
		t.Fatalf("after migrate --to file: source %q, current %d; want file, 4", doc.RootKeySource, doc.CurrentRootKeyVersion)
	}
	if code := withFile.terminate(); code != exitOK {
		t.Fatalf("server exit code %d", code)
	}
	code, out = runTenantcrypt(t, tok.env(), append(append([]string{}, serveArgs...), tok.flags()...)...)
	if code == exitOK || !strings.Contains(out, "rootkey migrate --to pkcs11") {
		t.Fatalf("the HSM start on a file database: exit %d, want a refusal naming the migration\n%s", code, out)
	}
	code, out = runTenantcrypt(t, tok.env(), append([]string{"rootkey", "migrate", "--to", "pkcs11", "--data-dir", dataDir}, tok.flags()...)...)
	if code != exitOK || !strings.Contains(out, "version 5") {
		t.Fatalf("rootkey migrate --to pkcs11: exit %d\n%s", code, out)
	}
	if err := os.Remove(rootFile); err != nil {
		t.Fatal(err)
	}
	ts = withHSM.start()
	decrypt(ts, "back in the HSM, without the key file")
	if doc := internalKMSDoc(t, ts, admin); doc.RootKeySource != "pkcs11" || doc.CurrentRootKeyVersion != 5 {
		t.Fatalf("after migrate --to pkcs11: source %q, current %d; want pkcs11, 5", doc.RootKeySource, doc.CurrentRootKeyVersion)
	}
}

// TestHSMReplicas: two replicas on PostgreSQL share one token; the first
// to start creates version 1, a rotation on one reaches the other with a
// reload, and each opens what the other sealed.
func TestHSMReplicas(t *testing.T) {
	t.Parallel()
	tok := newSoftHSMToken(t)
	dsn := pgtest.DSN(t)
	dir := t.TempDir()
	procs := make([]*serverProcess, 2)
	servers := make([]*testServer, 2)
	for i := range procs {
		d := filepath.Join(dir, fmt.Sprint(i))
		procs[i] = &serverProcess{t: t, dataDir: filepath.Join(dir, "data"), addrFile: filepath.Join(d, "addr"), logPath: filepath.Join(d, "server.log"),
			args: append([]string{"serve", "--data-dir", filepath.Join(dir, "data"), "--database", dsn, "--listen", "127.0.0.1:0",
				"--addr-file", filepath.Join(d, "addr"), "--log-level", "info"}, tok.flags()...),
			env: tok.env()}
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(procs[i].cleanup)
	}
	servers[0] = procs[0].start()
	servers[1] = procs[1].start()
	admin := servers[0].token(auth.RolePlatformAdmin, "")
	if r := servers[0].do("POST", "/api/v1/tenants", admin, map[string]any{"id": "acme", "name": "Acme", "edition": "enterprise"}); r.status != 201 {
		t.Fatalf("create tenant: %d %s", r.status, r.body)
	}
	svc := servers[0].token(auth.RoleService, "acme")
	encrypt := func(ts *testServer, pt string) string {
		r := ts.do("POST", "/api/v1/encryption/encrypt", svc, map[string]any{"plaintext": b64(pt)})
		if r.status != 200 {
			t.Fatalf("encrypt: %d %s", r.status, r.body)
		}
		return r.json(t)["ciphertext"].(string)
	}
	decrypt := func(ts *testServer, ct, want string) {
		t.Helper()
		r := ts.do("POST", "/api/v1/encryption/decrypt", svc, map[string]any{"ciphertext": ct})
		if r.status != 200 || r.json(t)["plaintext"] != b64(want) {
			t.Fatalf("decrypt: %d %s", r.status, r.body)
		}
	}
	ct0 := encrypt(servers[0], "from replica 0")
	decrypt(servers[1], ct0, "from replica 0")

	r := servers[0].do("POST", internalKMSPath+"/actions/rotate-root-key", admin, nil)
	if r.status != 202 {
		t.Fatalf("rotate-root-key: %d %s", r.status, r.body)
	}
	if doc := waitInternalKMS(t, servers[0], admin, ""); doc.Job.State != "completed" || doc.CurrentRootKeyVersion != 2 {
		t.Fatalf("replica 0 after rotate-root-key: %+v", doc)
	}
	// Replica 1 follows the recorded version by itself, within a refresh
	// (a fifth of the revocation bound), without a reload.
	var doc api.InternalKMS
	for deadline := time.Now().Add(30 * time.Second); ; {
		if doc = waitInternalKMS(t, servers[1], admin, ""); doc.CurrentRootKeyVersion == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica 1 still seals with root key version %d 30s after replica 0 rotated to 2", doc.CurrentRootKeyVersion)
		}
		time.Sleep(50 * time.Millisecond)
	}
	checkSealed(t, doc, map[uint32]int{2: 1})
	// An explicit reload is harmless.
	if r := servers[1].do("POST", internalKMSPath+"/actions/reload-root-keys", admin, nil); r.status != 202 {
		t.Fatalf("reload-root-keys on replica 1: %d %s", r.status, r.body)
	}
	if doc := waitInternalKMS(t, servers[1], admin, ""); doc.CurrentRootKeyVersion != 2 || doc.Job.State != "completed" {
		t.Fatalf("replica 1 after reload: %+v", doc)
	}
	// A restarted replica 1 opens the KEK that replica 0 resealed.
	if code := procs[1].terminate(); code != exitOK {
		t.Fatalf("replica 1 exit code %d", code)
	}
	servers[1] = procs[1].start()
	decrypt(servers[1], ct0, "from replica 0")
	decrypt(servers[0], encrypt(servers[1], "from replica 1"), "from replica 1")
}
