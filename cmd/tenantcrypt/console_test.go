package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/console"
)

// TestConsoleDevTokensNeedBuiltInIssuer: development tokens are refused at
// start with an external identity provider.
func TestConsoleDevTokensNeedBuiltInIssuer(t *testing.T) {
	t.Parallel()
	for _, flag := range []string{"--jwks-file", "--jwks-url"} {
		var stderr bytes.Buffer
		dir := t.TempDir()
		code := run(context.Background(), []string{"serve", "--data-dir", filepath.Join(dir, "d"), "--console-dev-tokens", flag, "https://idp.example/jwks.json"},
			func(string) string { return "" }, strings.NewReader(""), &bytes.Buffer{}, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), "--console-dev-tokens needs the built-in JWT issuer") {
			t.Errorf("serve --console-dev-tokens %s: exit %d, %s", flag, code, stderr.String())
		}
	}
}

// TestConsoleServed: the console is served at /console/ with its CSP, the
// session endpoint echoes the SSO proxy's token, and development tokens are
// off unless asked for; when on, their tokens are real tenant-admin tokens
// that the API accepts (and audits under console:dev).
func TestConsoleServed(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	r := ts.do("GET", "/console/", "", nil)
	if r.status != 200 || !strings.Contains(string(r.body), `src="js/main.js"`) || r.header.Get("Content-Security-Policy") != console.ContentSecurityPolicy {
		t.Fatalf("GET /console/: %d CSP %q", r.status, r.header.Get("Content-Security-Policy"))
	}
	if r.header.Get("X-Request-Id") == "" {
		t.Error("the console's answers lack the request id")
	}
	noRedirect := *ts.http
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noRedirect.Get(ts.url + "/console")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/console/" {
		t.Errorf("GET /console: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	var s console.Session
	if r := ts.do("GET", "/console/session", "", nil); r.status != 200 || json.Unmarshal(r.body, &s) != nil || s.Token != "" || s.DevTokens {
		t.Errorf("session without SSO: %d %s", r.status, r.body)
	}
	tok := ts.token(auth.RoleTenantAdmin, "acme")
	if r := ts.do("GET", "/console/session", tok, nil); json.Unmarshal(r.body, &s) != nil || s.Token != tok || s.Source != "Authorization" {
		t.Errorf("session behind an SSO proxy that sets Authorization: %s", r.body)
	}
	if r := ts.do("POST", "/console/dev-token", "", map[string]string{"tenantId": "acme"}); r.status != 404 {
		t.Errorf("dev token without --console-dev-tokens: %d %s", r.status, r.body)
	}

	dev := startServer(t, nil, "--console-dev-tokens")
	if !strings.Contains(dev.logs.String(), "DEVELOPMENT ONLY: the console mints tenant-admin tokens") {
		t.Error("no warning at start with --console-dev-tokens")
	}
	admin := dev.token(auth.RolePlatformAdmin, "")
	if r := dev.do("POST", "/api/v1/tenants", admin, map[string]any{"id": "acme", "name": "Acme", "edition": "enterprise"}); r.status != 201 {
		t.Fatalf("create tenant: %d %s", r.status, r.body)
	}
	r = dev.do("POST", "/console/dev-token", "", map[string]string{"tenantId": "acme"})
	var d console.DevToken
	if r.status != 201 || json.Unmarshal(r.body, &d) != nil || d.Token == "" {
		t.Fatalf("dev token: %d %s", r.status, r.body)
	}
	if r := dev.do("GET", "/api/v1/encryption/status", d.Token, nil); r.status != 200 {
		t.Errorf("the API refuses a development token: %d %s", r.status, r.body)
	}
	if r := dev.do("POST", "/api/v1/tenants", d.Token, map[string]any{"name": "x", "edition": "business"}); r.status != 403 {
		t.Errorf("a development token is more than a tenant admin: %d %s", r.status, r.body)
	}
	if r := dev.do("POST", "/api/v1/encryption/encrypt", d.Token, map[string]any{"plaintext": b64("x")}); r.status != 403 {
		t.Errorf("a development token uses the data plane: %d %s", r.status, r.body)
	}
	if strings.Contains(dev.logs.String(), d.Token) || !strings.Contains(dev.logs.String(), `"subject":"console:dev"`) {
		t.Errorf("the log shows the development token, or not its subject")
	}
}
