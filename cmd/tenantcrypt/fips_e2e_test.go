package main

import (
	"bytes"
	"context"
	"crypto/fips140"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/fips"
)

// TestFIPSMode: the service says which FIPS 140-3 mode it runs in (the
// status's fips140, the tenantcrypt_fips140_mode metric, the start log),
// and its data plane, the client's local encryption and the audit chain
// work in it. CI runs it, with the service's other end-to-end tests, in a
// GOFIPS140=v1.0.0 build under GODEBUG=fips140=only, and sets
// TENANTCRYPT_TEST_FIPS=1 there so that a run in another mode fails
// instead of passing for the wrong reason (docs/fips.md).
func TestFIPSMode(t *testing.T) {
	t.Parallel()
	mode := fips.Mode()
	if os.Getenv("TENANTCRYPT_TEST_FIPS") == "1" && mode != fips.Only {
		t.Fatalf("TENANTCRYPT_TEST_FIPS=1 but the FIPS 140-3 mode is %q; build with GOFIPS140=v1.0.0 and run with GODEBUG=fips140=only", mode)
	}
	// The version line says the mode too.
	var out bytes.Buffer
	if code := run(context.Background(), []string{"version"}, func(string) string { return "" }, strings.NewReader(""), &out, &out); code != exitOK ||
		!strings.HasSuffix(strings.TrimSpace(out.String()), " fips140="+mode) {
		t.Errorf("tenantcrypt version: exit %d, %q; want a line ending in fips140=%s", code, out.String(), mode)
	}
	ts := startServer(t, nil)
	ctx := context.Background()
	admin, _ := ts.client(t, ts.token(auth.RolePlatformAdmin, ""))
	if _, err := admin.CreateTenant(ctx, api.CreateTenantRequest{ID: "fed", Name: "Federal", Edition: "enterprise"}); err != nil {
		t.Fatal(err)
	}
	svc := ts.token(auth.RoleService, "fed")
	tadmin := ts.token(auth.RoleTenantAdmin, "fed")

	// The service's own AES-GCM, over TLS, with a signed token.
	r := ts.do("POST", "/api/v1/encryption/encrypt", svc, map[string]any{"plaintext": b64("classified"), "context": map[string]string{"doc": "1"}})
	ct, _ := r.json(t)["ciphertext"].(string)
	if r.status != 200 || ct == "" {
		t.Fatalf("encrypt: %d %s", r.status, r.body)
	}
	if r := ts.do("POST", "/api/v1/encryption/decrypt", svc, map[string]any{"ciphertext": ct, "context": map[string]string{"doc": "1"}}); r.status != 200 || r.json(t)["plaintext"] != b64("classified") {
		t.Errorf("decrypt: %d %s", r.status, r.body)
	}

	// The client's local encryption writes the version of its stream
	// format that the mode allows, and reads it back.
	c, _ := ts.client(t, svc)
	e := c.Envelope()
	pt := bytes.Repeat([]byte("fips "), 30000) // three segments
	stream, err := e.Encrypt(ctx, pt, map[string]string{"object": "a"})
	if err != nil {
		t.Fatal(err)
	}
	wantVersion := byte(1)
	if fips140.Enabled() {
		wantVersion = 2
	}
	if len(stream) < 4 || stream[3] != wantVersion {
		t.Errorf("client stream version %d, want %d in mode %s", stream[3], wantVersion, mode)
	}
	if got, err := e.Decrypt(ctx, stream, map[string]string{"object": "a"}); err != nil || !bytes.Equal(got, pt) {
		t.Errorf("client decrypt: %v", err)
	}

	// The status, the metric and the log say the mode.
	r = ts.do("GET", "/api/v1/encryption/status", tadmin, nil)
	var st api.EncryptionStatus
	if r.status != 200 || json.Unmarshal(r.body, &st) != nil || st.FIPS140 != mode {
		t.Errorf("status: %d %s, want fips140 %q", r.status, r.body, mode)
	}
	metrics := string(ts.do("GET", "/metrics", "", nil).body)
	for _, m := range fips.Modes() {
		want := 0
		if m == mode {
			want = 1
		}
		if line := fmt.Sprintf("tenantcrypt_fips140_mode{mode=%q} %d", m, want); !strings.Contains(metrics, line) {
			t.Errorf("metrics lack %s", line)
		}
	}
	if logs := ts.logs.String(); !strings.Contains(logs, `"fips140":"`+mode+`"`) {
		t.Errorf("the start log does not say fips140 %q", mode)
	}

	// The audit chain (SHA-256 links, Ed25519 checkpoints) verifies.
	r = ts.do("GET", "/api/v1/audits/actions/verify", tadmin, nil)
	var v api.AuditVerification
	if r.status != 200 || json.Unmarshal(r.body, &v) != nil || !v.Valid || v.Events == 0 {
		t.Errorf("audit verify: %d %s", r.status, r.body)
	}
}
