package main

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/internal/auth"
)

// TestEndToEnd drives every route of a real server, over TLS with real
// tokens, on each database backend.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	for name, extra := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, nil, extra(t)...)
			admin := ts.token(auth.RolePlatformAdmin, "")
			t.Run("tenants", func(t *testing.T) { testTenants(t, ts, admin) })
			t.Run("data plane", func(t *testing.T) { testDataPlane(t, ts, admin) })
			t.Run("roles", func(t *testing.T) { testRoles(t, ts, admin) })
			t.Run("bad input", func(t *testing.T) { testBadInput(t, ts, admin) })
			t.Run("public routes", func(t *testing.T) { testPublicRoutes(t, ts) })
		})
	}
}

func testTenants(t *testing.T, ts *testServer, admin string) {
	r := ts.do("POST", "/api/v1/tenants", admin, map[string]any{"id": "acme", "name": "Acme Corp", "edition": "enterprise"})
	if r.status != http.StatusCreated {
		t.Fatalf("create: status %d, want 201: %s", r.status, r.body)
	}
	if got := r.header.Get("Location"); got != "/api/v1/tenants/acme" {
		t.Errorf("Location = %q", got)
	}
	tn := r.json(t)
	for k, want := range map[string]any{"id": "acme", "name": "Acme Corp", "edition": "enterprise", "state": "active", "hipaa": false, "keyProvider": "internal"} {
		if tn[k] != want {
			t.Errorf("tenant[%q] = %v, want %v", k, tn[k], want)
		}
	}
	if r := ts.do("POST", "/api/v1/tenants", admin, map[string]any{"id": "acme", "name": "Again", "edition": "business"}); r.status != 409 || r.errorCode(t) != "Encryption-08" {
		t.Errorf("duplicate: status %d %s, want 409", r.status, r.body)
	}
	r = ts.do("POST", "/api/v1/tenants", admin, map[string]any{"name": "Generated", "edition": "business"})
	if r.status != 201 || r.json(t)["id"] == "" {
		t.Errorf("create without id: %d %s", r.status, r.body)
	}
	if r := ts.do("GET", "/api/v1/tenants/acme", admin, nil); r.status != 200 || r.json(t)["name"] != "Acme Corp" {
		t.Errorf("get: %d %s", r.status, r.body)
	}
	if r := ts.do("GET", "/api/v1/tenants?limit=1", admin, nil); r.status != 200 || !strings.Contains(string(r.body), `"next"`) {
		t.Errorf("list with limit 1: %d %s, want a next link", r.status, r.body)
	}
	if r := ts.do("PATCH", "/api/v1/tenants/acme", admin, map[string]any{"name": "Acme Inc"}); r.status != 200 || r.json(t)["name"] != "Acme Inc" {
		t.Errorf("patch name: %d %s", r.status, r.body)
	}
	req, _ := http.NewRequest("PATCH", ts.url+"/api/v1/tenants/acme", strings.NewReader(`{"edition":"business"}`))
	req.Header.Set("Content-Type", "application/merge-patch+json")
	req.Header.Set("Authorization", "Bearer "+admin)
	if resp, err := ts.http.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("patch as application/merge-patch+json: %v %v", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}
	if r := ts.do("PATCH", "/api/v1/tenants/acme", admin, map[string]any{"hipaa": true}); r.status != 409 || r.errorCode(t) != "Encryption-14" {
		t.Errorf("patch hipaa on the internal KMS: %d %s, want 409", r.status, r.body)
	}
	if r := ts.do("POST", "/api/v1/tenants", admin, map[string]any{"name": "H", "edition": "enterprise", "hipaa": true}); r.status != 409 {
		t.Errorf("create hipaa tenant on the internal KMS: %d %s, want 409", r.status, r.body)
	}
	if r := ts.do("GET", "/api/v1/tenants/nope", admin, nil); r.status != 404 || r.errorCode(t) != "Encryption-07" {
		t.Errorf("get unknown: %d %s", r.status, r.body)
	}

	// Deleting a tenant destroys its keys: its ciphertexts never decrypt
	// again, and its id is never given to a new tenant.
	ts.do("POST", "/api/v1/tenants", admin, map[string]any{"id": "doomed", "name": "Doomed", "edition": "enterprise"})
	svc := ts.token(auth.RoleService, "doomed")
	ct := ts.do("POST", "/api/v1/encryption/encrypt", svc, map[string]any{"plaintext": b64("x")}).json(t)["ciphertext"]
	if r := ts.do("DELETE", "/api/v1/tenants/doomed", admin, nil); r.status != 204 || len(r.body) != 0 {
		t.Errorf("delete: %d %q, want 204 with no body", r.status, r.body)
	}
	if r := ts.do("POST", "/api/v1/encryption/decrypt", svc, map[string]any{"ciphertext": ct}); r.status != 404 {
		t.Errorf("decrypt for a deleted tenant: %d %s, want 404", r.status, r.body)
	}
	if r := ts.do("POST", "/api/v1/tenants", admin, map[string]any{"id": "doomed", "name": "Reborn", "edition": "enterprise"}); r.status != 409 || r.errorCode(t) != "Encryption-16" {
		t.Errorf("recreate a deleted tenant: %d %s, want 409 Encryption-16", r.status, r.body)
	}
	if r := ts.do("POST", "/api/v1/encryption/decrypt", svc, map[string]any{"ciphertext": ct}); r.status != 404 || r.errorCode(t) != "Encryption-07" {
		t.Errorf("decrypt after the refused recreation: %d %s, want 404", r.status, r.body)
	}
	if r := ts.do("DELETE", "/api/v1/tenants/nope", admin, nil); r.status != 404 {
		t.Errorf("delete unknown: %d", r.status)
	}
}

func testDataPlane(t *testing.T, ts *testServer, admin string) {
	for _, id := range []string{"alpha", "beta"} {
		ts.do("POST", "/api/v1/tenants", admin, map[string]any{"id": id, "name": id, "edition": "enterprise"})
	}
	alpha := ts.token(auth.RoleService, "alpha")
	beta := ts.token(auth.RoleService, "beta")
	ectx := map[string]string{"app": "crm", "record": "42"}

	r := ts.do("POST", "/api/v1/encryption/encrypt", alpha, map[string]any{"plaintext": b64("s3cret"), "context": ectx})
	if r.status != 200 {
		t.Fatalf("encrypt: %d %s", r.status, r.body)
	}
	ct, _ := r.json(t)["ciphertext"].(string)
	if !strings.HasPrefix(ct, "#QLIKv1#:alpha:") {
		t.Errorf("ciphertext %q lacks the provider prefix #QLIKv1#:alpha:", ct)
	}
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("X-Request-Id") == "" {
		t.Errorf("headers: Cache-Control %q, X-Request-Id %q", r.header.Get("Cache-Control"), r.header.Get("X-Request-Id"))
	}
	r = ts.do("POST", "/api/v1/encryption/decrypt", alpha, map[string]any{"ciphertext": ct, "context": ectx})
	if r.status != 200 || r.json(t)["plaintext"] != b64("s3cret") {
		t.Errorf("decrypt: %d %s", r.status, r.body)
	}
	// Tenant A's ciphertext is nothing to tenant B, nor to another context.
	if r := ts.do("POST", "/api/v1/encryption/decrypt", beta, map[string]any{"ciphertext": ct, "context": ectx}); r.status != 400 || r.errorCode(t) != "Encryption-09" {
		t.Errorf("decrypt with tenant B's token: %d %s, want 400 Encryption-09", r.status, r.body)
	}
	if r := ts.do("POST", "/api/v1/encryption/decrypt", alpha, map[string]any{"ciphertext": ct, "context": map[string]string{"app": "crm"}}); r.status != 400 {
		t.Errorf("decrypt with another context: %d %s, want 400", r.status, r.body)
	}
	r = ts.do("POST", "/api/v1/encryption/rewrap", alpha, map[string]any{"ciphertext": ct, "context": ectx})
	re, _ := r.json(t)["ciphertext"].(string)
	if r.status != 200 || re == "" || re == ct {
		t.Errorf("rewrap: %d %s", r.status, r.body)
	}
	if r := ts.do("POST", "/api/v1/encryption/decrypt", alpha, map[string]any{"ciphertext": re, "context": ectx}); r.json(t)["plaintext"] != b64("s3cret") {
		t.Errorf("decrypt of rewrapped: %s", r.body)
	}

	r = ts.do("POST", "/api/v1/encryption/datakeys", alpha, map[string]any{"context": ectx})
	dk := r.json(t)
	key, _ := base64.StdEncoding.DecodeString(fmt.Sprint(dk["plaintext"]))
	if r.status != 200 || len(key) != 32 || !strings.HasPrefix(fmt.Sprint(dk["handle"]), "#QLIKv1#:alpha:") {
		t.Fatalf("datakeys: %d %s", r.status, r.body)
	}
	r = ts.do("POST", "/api/v1/encryption/datakeys/decrypt", alpha, map[string]any{"handle": dk["handle"], "context": ectx})
	if r.status != 200 || r.json(t)["plaintext"] != dk["plaintext"] {
		t.Errorf("datakeys/decrypt: %d %s", r.status, r.body)
	}
	if r := ts.do("POST", "/api/v1/encryption/datakeys/decrypt", beta, map[string]any{"handle": dk["handle"], "context": ectx}); r.status != 400 {
		t.Errorf("datakeys/decrypt with tenant B's token: %d %s, want 400", r.status, r.body)
	}

	// Batches answer item by item, failures included.
	r = ts.do("POST", "/api/v1/encryption/encrypt", alpha, map[string]any{"items": []map[string]any{
		{"plaintext": b64("one")}, {"plaintext": "not base64!"}, {"plaintext": b64("three"), "context": ectx},
	}})
	var batch struct {
		Items []struct {
			Ciphertext string
			Error      *struct{ Code string }
		}
	}
	if err := jsonUnmarshal(r.body, &batch); err != nil || r.status != 200 || len(batch.Items) != 3 {
		t.Fatalf("batch encrypt: %d %s", r.status, r.body)
	}
	if batch.Items[0].Ciphertext == "" || batch.Items[1].Error == nil || batch.Items[1].Error.Code != "Encryption-01" || batch.Items[2].Ciphertext == "" {
		t.Errorf("batch encrypt items: %s", r.body)
	}
	r = ts.do("POST", "/api/v1/encryption/decrypt", alpha, map[string]any{"items": []map[string]any{
		{"ciphertext": batch.Items[0].Ciphertext}, {"ciphertext": batch.Items[2].Ciphertext, "context": ectx}, {"ciphertext": batch.Items[2].Ciphertext},
	}})
	want := fmt.Sprintf(`{"items":[{"plaintext":%q},{"plaintext":%q},{"error":`, b64("one"), b64("three"))
	if r.status != 200 || !bytes.HasPrefix(r.body, []byte(want)) || !strings.Contains(string(r.body), "Encryption-09") {
		t.Errorf("batch decrypt: %d %s", r.status, r.body)
	}
	// "items" need not be the first key.
	r = ts.do("POST", "/api/v1/encryption/decrypt", alpha, `{"unused":1, "items":[{"ciphertext":"x"}]}`)
	if r.status != 400 || !strings.Contains(string(r.body), `unknown field \"unused\"`) {
		t.Errorf("batch with an unknown top-level field: %d %s", r.status, r.body)
	}
	r = ts.do("POST", "/api/v1/encryption/decrypt", alpha, fmt.Sprintf(`{ "items" : [{"context":{"app":"crm","record":"42"},"ciphertext":%q}]}`, ct))
	if r.status != 200 || !strings.Contains(string(r.body), b64("s3cret")) {
		t.Errorf("batch with spaces: %d %s", r.status, r.body)
	}
	for _, path := range []string{"/api/v1/encryption/rewrap", "/api/v1/encryption/datakeys", "/api/v1/encryption/datakeys/decrypt"} {
		item := map[string]any{"ciphertext": ct, "context": ectx}
		switch path {
		case "/api/v1/encryption/datakeys":
			item = map[string]any{"context": ectx}
		case "/api/v1/encryption/datakeys/decrypt":
			item = map[string]any{"handle": dk["handle"], "context": ectx}
		}
		r := ts.do("POST", path, alpha, map[string]any{"items": []any{item, item}})
		if r.status != 200 || strings.Contains(string(r.body), `"error"`) || strings.Count(string(r.body), "{") != 3 {
			t.Errorf("batch %s: %d %s", path, r.status, r.body)
		}
	}

	r = ts.do("GET", "/api/v1/encryption/status", ts.token(auth.RoleTenantAdmin, "alpha"), nil)
	st := r.json(t)
	if r.status != 200 || st["tenantId"] != "alpha" || st["state"] != "active" || st["keyState"] != "Enabled" || st["revocationBound"] != "10s" {
		t.Errorf("status: %d %s", r.status, r.body)
	}
	// A token for a tenant that does not exist reaches nothing.
	if r := ts.do("POST", "/api/v1/encryption/encrypt", ts.token(auth.RoleService, "ghost"), map[string]any{"plaintext": b64("x")}); r.status != 404 {
		t.Errorf("encrypt for an unknown tenant: %d %s, want 404", r.status, r.body)
	}
}

// testRoles checks every role against every protected route.
func testRoles(t *testing.T, ts *testServer, admin string) {
	ts.do("POST", "/api/v1/tenants", admin, map[string]any{"id": "roles", "name": "roles", "edition": "business"})
	tokens := map[string]string{
		"platform-admin": admin,
		"tenant-admin":   ts.token(auth.RoleTenantAdmin, "roles"),
		"service":        ts.token(auth.RoleService, "roles"),
	}
	routes := []struct {
		method, path string
		allowed      []string
	}{
		{"POST", "/api/v1/tenants", []string{"platform-admin"}},
		{"GET", "/api/v1/tenants", []string{"platform-admin"}},
		{"GET", "/api/v1/tenants/roles", []string{"platform-admin"}},
		{"PATCH", "/api/v1/tenants/roles", []string{"platform-admin"}},
		{"DELETE", "/api/v1/tenants/roles", []string{"platform-admin"}},
		{"GET", "/api/v1/encryption/status", []string{"tenant-admin", "service"}},
		{"POST", "/api/v1/encryption/encrypt", []string{"service"}},
		{"POST", "/api/v1/encryption/decrypt", []string{"service"}},
		{"POST", "/api/v1/encryption/rewrap", []string{"service"}},
		{"POST", "/api/v1/encryption/datakeys", []string{"service"}},
		{"POST", "/api/v1/encryption/datakeys/decrypt", []string{"service"}},
	}
	for _, rt := range routes {
		for role, tok := range tokens {
			allowed := false
			for _, a := range rt.allowed {
				allowed = allowed || a == role
			}
			if allowed {
				continue // the allowed roles are exercised by the other tests
			}
			t.Run(rt.method+" "+rt.path+" as "+role, func(t *testing.T) {
				r := ts.do(rt.method, rt.path, tok, "{}")
				if r.status != 403 || r.errorCode(t) != "Encryption-03" {
					t.Errorf("status %d %s, want 403 Encryption-03", r.status, r.body)
				}
			})
		}
		t.Run(rt.method+" "+rt.path+" without a token", func(t *testing.T) {
			r := ts.do(rt.method, rt.path, "", "{}")
			if r.status != 401 || r.errorCode(t) != "Encryption-02" || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("status %d %s, want 401 with WWW-Authenticate", r.status, r.body)
			}
		})
	}
}

func testBadInput(t *testing.T, ts *testServer, admin string) {
	ts.do("POST", "/api/v1/tenants", admin, map[string]any{"id": "badinput", "name": "b", "edition": "business"})
	svc := ts.token(auth.RoleService, "badinput")
	big := `{"plaintext":"` + strings.Repeat("A", 2<<20) + `"}`
	tests := []struct {
		name, method, path, token string
		body                      string
		ctype                     string
		status                    int
		code                      string
		detail                    string
	}{
		{"not JSON", "POST", "/api/v1/encryption/encrypt", svc, `{"plaintext":`, "", 400, "Encryption-01", "truncated"},
		{"syntax error", "POST", "/api/v1/encryption/encrypt", svc, `{plaintext: 1}`, "", 400, "Encryption-01", "not valid JSON"},
		{"bad base64", "POST", "/api/v1/encryption/encrypt", svc, `{"plaintext":"@@@"}`, "", 400, "Encryption-01", "base64"},
		{"unknown field", "POST", "/api/v1/encryption/encrypt", svc, `{"plaintext":"","bogus":1}`, "", 400, "Encryption-01", `unknown field "bogus"`},
		{"wrong type", "POST", "/api/v1/encryption/encrypt", svc, `{"plaintext":42}`, "", 400, "Encryption-01", `"plaintext" must be a string`},
		{"empty body", "POST", "/api/v1/encryption/encrypt", svc, ``, "", 400, "Encryption-01", "empty"},
		{"trailing data", "POST", "/api/v1/encryption/encrypt", svc, `{"plaintext":""} {}`, "", 400, "Encryption-01", "after the JSON"},
		{"array body", "POST", "/api/v1/encryption/encrypt", svc, `[1]`, "", 400, "Encryption-01", "JSON object"},
		{"oversized", "POST", "/api/v1/encryption/encrypt", svc, big, "", 413, "Encryption-06", "at most"},
		{"wrong media type", "POST", "/api/v1/encryption/encrypt", svc, `{"plaintext":""}`, "text/plain", 415, "Encryption-12", "application/json"},
		{"empty batch", "POST", "/api/v1/encryption/encrypt", svc, `{"items":[]}`, "", 400, "Encryption-01", "items"},
		{"missing ciphertext", "POST", "/api/v1/encryption/decrypt", svc, `{}`, "", 400, "Encryption-01", "ciphertext"},
		{"garbage ciphertext", "POST", "/api/v1/encryption/decrypt", svc, `{"ciphertext":"garbage"}`, "", 400, "Encryption-09", "does not decrypt"},
		{"bad context", "POST", "/api/v1/encryption/encrypt", svc, `{"plaintext":"","context":{"":"x"}}`, "", 400, "Encryption-01", "context"},
		{"bad edition", "POST", "/api/v1/tenants", admin, `{"name":"x","edition":"gold"}`, "", 400, "Encryption-01", "edition"},
		{"bad tenant id", "POST", "/api/v1/tenants", admin, `{"id":"a b","name":"x","edition":"business"}`, "", 400, "Encryption-01", "id"},
		{"bad limit", "GET", "/api/v1/tenants?limit=0", admin, ``, "", 400, "Encryption-01", "limit"},
		{"unknown route", "GET", "/api/v1/nope", svc, ``, "", 404, "Encryption-04", "no such endpoint"},
		{"product-info probe", "GET", "/resources/autogenerated/product-info.json", "", ``, "", 404, "Encryption-04", ""},
		{"wrong method", "GET", "/api/v1/encryption/encrypt", svc, ``, "", 405, "Encryption-05", "Allow"},
		{"malformed bearer", "GET", "/api/v1/encryption/status", "not a jwt", ``, "", 401, "Encryption-02", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.body != "" || tt.method == "POST" {
				body = tt.body
			}
			req, _ := http.NewRequest(tt.method, ts.url+tt.path, nil)
			if body != nil {
				req, _ = http.NewRequest(tt.method, ts.url+tt.path, strings.NewReader(tt.body))
				ct := tt.ctype
				if ct == "" {
					ct = "application/json"
				}
				req.Header.Set("Content-Type", ct)
			}
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := ts.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var buf bytes.Buffer
			buf.ReadFrom(resp.Body)
			r := response{status: resp.StatusCode, header: resp.Header, body: buf.Bytes()}
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d: %s", r.status, tt.status, r.body)
			}
			if got := r.errorCode(t); got != tt.code {
				t.Errorf("code = %s, want %s: %s", got, tt.code, r.body)
			}
			var env struct{ Errors []struct{ Detail string } }
			_ = jsonUnmarshal(r.body, &env)
			if !strings.Contains(env.Errors[0].Detail, tt.detail) {
				t.Errorf("body %s does not say %q", r.body, tt.detail)
			}
		})
	}
}

func testPublicRoutes(t *testing.T, ts *testServer) {
	for _, path := range []string{"/livez", "/readyz"} {
		if r := ts.do("GET", path, "", nil); r.status != 200 || r.json(t)["status"] != "ok" {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
	r := ts.do("GET", "/.well-known/jwks.json", "", nil)
	keys, _ := r.json(t)["keys"].([]any)
	if r.status != 200 || len(keys) == 0 || strings.Contains(string(r.body), `"d"`) {
		t.Errorf("jwks: %d %s (want public keys only)", r.status, r.body)
	}
	r = ts.do("GET", "/metrics", "", nil)
	for _, m := range []string{"tenantcrypt_http_requests_total", "tenantcrypt_http_request_duration_seconds", "tenantcrypt_datakey_cache_hits_total", "tenantcrypt_datakey_cache_misses_total",
		`tenantcrypt_kms_operations_total{op="GenerateDataKey",provider="internal",result="ok"}`} {
		if !strings.Contains(string(r.body), m) {
			t.Errorf("metrics lack %s", m)
		}
	}
	if r := ts.do("GET", "/api/v1/openapi.json", "", nil); r.status != 200 || r.json(t)["openapi"] == nil {
		t.Errorf("openapi: %d", r.status)
	}
}

func TestTLSVersions(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	ca := filepath.Join(ts.dataDir, "tls", "ca.pem")
	tests := []struct {
		name     string
		min, max uint16
		suites   []uint16
		ok       bool
	}{
		{"TLS 1.0", tls.VersionTLS10, tls.VersionTLS10, nil, false},
		{"TLS 1.1", tls.VersionTLS11, tls.VersionTLS11, nil, false},
		{"TLS 1.2 AEAD", tls.VersionTLS12, tls.VersionTLS12, nil, true},
		{"TLS 1.2 CBC only", tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}, false},
		{"TLS 1.3", tls.VersionTLS13, tls.VersionTLS13, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tlsClient(ca, tt.min, tt.max, tt.suites).Get(ts.url + "/livez")
			if err == nil {
				resp.Body.Close()
			}
			if got := err == nil; got != tt.ok {
				t.Errorf("connected = %v (%v), want %v", got, err, tt.ok)
			}
		})
	}
}

func TestPlaintextHTTPNeedsTheFlagAndWarns(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, "--insecure-plaintext-http")
	if r := ts.do("GET", "/livez", "", nil); r.status != 200 {
		t.Fatalf("livez over plain HTTP: %d", r.status)
	}
	if !strings.Contains(ts.logs.String(), "INSECURE") {
		t.Errorf("no loud warning in the log about plain HTTP")
	}
}
