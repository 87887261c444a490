package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/testkms"
)

// TestRegisterWithoutAWSCredentials: a server started without any AWS
// credentials (no environment variables, no shared files, no instance
// role) answers a key-provider registration with 503 Encryption-15, which
// names what the operator must configure, rather than 500.
func TestRegisterWithoutAWSCredentials(t *testing.T) {
	t.Parallel()
	kms := testkms.Start(t, testkms.Options{Region: primaryRegion})
	dir := t.TempDir()
	p := &serverProcess{t: t, dataDir: filepath.Join(dir, "data"), addrFile: filepath.Join(dir, "addr"), logPath: filepath.Join(dir, "server.log")}
	p.args = []string{"serve", "--data-dir", p.dataDir, "--listen", "127.0.0.1:0", "--addr-file", p.addrFile,
		"--region", primaryRegion, "--kms-endpoint", primaryRegion + "=" + kms.URL, "--allow-single-region-keys"}
	for _, kv := range childEnv() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "HOME=") {
			p.env = append(p.env, kv)
		}
	}
	p.env = append(p.env, "HOME="+dir, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "none"), "AWS_CONFIG_FILE="+filepath.Join(dir, "none"))
	t.Cleanup(p.cleanup)
	ts := p.start()

	admin := ts.token(auth.RolePlatformAdmin, "")
	if r := ts.do("POST", "/api/v1/tenants", admin, map[string]any{"id": "acme", "name": "Acme", "edition": "enterprise"}); r.status != 201 {
		t.Fatalf("create tenant: %d %s", r.status, r.body)
	}
	r := ts.do("POST", kp, ts.token(auth.RoleTenantAdmin, "acme"), register(kms.ARN(testkms.MultiRegionKeyID), "Acme key"))
	if r.status != 503 || r.errorCode(t) != string(api.CodeKMSNotConfigured) {
		t.Fatalf("register without AWS credentials: %d %s, want 503 %s", r.status, r.body, api.CodeKMSNotConfigured)
	}
	for _, want := range []string{"no AWS credentials", "AWS_ACCESS_KEY_ID", "role"} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("the answer does not name the missing configuration (%q): %s", want, r.body)
		}
	}
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	logs, _ := os.ReadFile(p.logPath)
	if strings.Contains(string(logs), "panic") {
		t.Errorf("the server log has a panic:\n%s", logs)
	}
}
