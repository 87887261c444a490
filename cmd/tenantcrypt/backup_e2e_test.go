package main

import (
	"bytes"
	"database/sql"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
)

// TestBackupRestoreSQLite follows docs/operations.md#backup-and-restore: an
// online backup of the SQLite database (VACUUM INTO) while the server runs;
// after it the root key and the audit signing key are rotated; the backup is
// restored next to the *current* key files and a new server on it decrypts
// the old ciphertexts and data keys and verifies the tenant's audit chain.
// What was issued after the backup (a new data key) is gone, as documented.
func TestBackupRestoreSQLite(t *testing.T) {
	t.Parallel()
	src := startServer(t, nil)
	admin := src.token(auth.RolePlatformAdmin, "")
	if r := src.do("POST", "/api/v1/tenants", admin, map[string]any{"id": "acme", "name": "Acme", "edition": "enterprise"}); r.status != 201 {
		t.Fatalf("create tenant: %d %s", r.status, r.body)
	}
	svc := src.token(auth.RoleService, "acme")
	plaintexts := []string{"first secret", "second secret", "third secret"}
	var ciphertexts []string
	for _, p := range plaintexts {
		r := src.do("POST", "/api/v1/encryption/encrypt", svc, map[string]any{
			"plaintext": base64.StdEncoding.EncodeToString([]byte(p)), "context": map[string]string{"app": "crm"}})
		if r.status != 200 {
			t.Fatalf("encrypt: %d %s", r.status, r.body)
		}
		ciphertexts = append(ciphertexts, r.json(t)["ciphertext"].(string))
	}
	dataKey := func(ts *testServer, token string) (plaintext, handle string) {
		t.Helper()
		r := ts.do("POST", "/api/v1/encryption/datakeys", token, map[string]any{})
		if r.status != 200 {
			t.Fatalf("datakeys: %d %s", r.status, r.body)
		}
		m := r.json(t)
		return m["plaintext"].(string), m["handle"].(string)
	}
	keyBefore, handleBefore := dataKey(src, svc)

	// The online backup, while the server runs.
	backup := filepath.Join(t.TempDir(), "backup.db")
	db, err := sql.Open("sqlite", "file:"+filepath.Join(src.dataDir, "tenantcrypt.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(t.Context(), `VACUUM INTO ?`, backup); err != nil {
		t.Fatalf("VACUUM INTO: %v", err)
	}
	db.Close()

	// After the backup: a new data key, a root key rotation (the KEKs are
	// rewrapped under version 2) and an audit signing key rotation.
	_, handleAfter := dataKey(src, svc)
	r := src.do("POST", internalKMSPath+"/actions/rotate-root-key", admin, nil)
	if r.status != 202 {
		t.Fatalf("rotate-root-key: %d %s", r.status, r.body)
	}
	var started api.InternalKMS
	if err := jsonUnmarshal(r.body, &started); err != nil {
		t.Fatal(err)
	}
	if doc := waitInternalKMS(t, src, admin, started.Job.ID); doc.Job.State != "completed" || doc.CurrentRootKeyVersion != 2 {
		t.Fatalf("root key rotation: %+v", doc)
	}
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"audit", "rotate-signing-key", "--data-dir", src.dataDir}, func(string) string { return "" },
		strings.NewReader(""), &out, &errOut); code != exitOK {
		t.Fatalf("audit rotate-signing-key: exit %d: %s", code, errOut.String())
	}
	if code := src.stop(); code != exitOK {
		t.Fatalf("server exit %d", code)
	}

	// The restore: the backup as the database, with the current root key
	// and audit signing key files (every version they ever had).
	restored := t.TempDir()
	copyFile(t, backup, filepath.Join(restored, "tenantcrypt.db"))
	copyFile(t, filepath.Join(src.dataDir, "root-keys.json"), filepath.Join(restored, "root-keys.json"))
	copyFile(t, filepath.Join(src.dataDir, "audit-signing-keys.json"), filepath.Join(restored, "audit-signing-keys.json"))
	dst := startServer(t, nil, "--database", "sqlite:"+filepath.Join(restored, "tenantcrypt.db"),
		"--root-key-file", filepath.Join(restored, "root-keys.json"), "--audit-key-file", filepath.Join(restored, "audit-signing-keys.json"))
	svc2, ta2, admin2 := dst.token(auth.RoleService, "acme"), dst.token(auth.RoleTenantAdmin, "acme"), dst.token(auth.RolePlatformAdmin, "")

	for i, ct := range ciphertexts {
		r := dst.do("POST", "/api/v1/encryption/decrypt", svc2, map[string]any{"ciphertext": ct, "context": map[string]string{"app": "crm"}})
		if r.status != 200 {
			t.Fatalf("decrypt after the restore: %d %s", r.status, r.body)
		}
		if got, _ := base64.StdEncoding.DecodeString(r.json(t)["plaintext"].(string)); string(got) != plaintexts[i] {
			t.Errorf("decrypt after the restore: %q, want %q", got, plaintexts[i])
		}
	}
	r = dst.do("POST", "/api/v1/encryption/datakeys/decrypt", svc2, map[string]any{"handle": handleBefore})
	if r.status != 200 || r.json(t)["plaintext"] != keyBefore {
		t.Errorf("data key issued before the backup, after the restore: %d %s", r.status, r.body)
	}
	if r := dst.do("POST", "/api/v1/encryption/datakeys/decrypt", svc2, map[string]any{"handle": handleAfter}); r.status == 200 {
		t.Errorf("a data key issued after the backup resolves after the restore: %s; the backup cannot hold it", r.body)
	}

	// The restored server opens the KEKs sealed under version 1 (in the
	// backup) with the current key file, and rewraps them under version 2.
	if doc := waitInternalKMS(t, dst, admin2, ""); doc.CurrentRootKeyVersion != 2 || doc.Job.State != "completed" {
		t.Errorf("internal KMS after the restore: %+v, want version 2 current and the start-up rewrap completed", doc)
	} else {
		checkSealed(t, doc, map[uint32]int{2: 1})
	}

	// The tenant's audit chain, as backed up, verifies; both signing keys
	// are published.
	r = dst.do("GET", "/api/v1/audits/actions/verify", ta2, nil)
	var v api.AuditVerification
	if r.status != 200 || jsonUnmarshal(r.body, &v) != nil || !v.Valid || v.Events == 0 {
		t.Errorf("audit verify after the restore: %d %s, want a valid chain with events", r.status, r.body)
	}
	var keys api.AuditPublicKeys
	if r := dst.do("GET", "/api/v1/audits/public-keys", "", nil); r.status != 200 || jsonUnmarshal(r.body, &keys) != nil || len(keys.Keys) != 2 {
		t.Errorf("audit public keys after the restore: %d %s, want the old and the new key", r.status, r.body)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
