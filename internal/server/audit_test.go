package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/audit"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
	"github.com/tenantcrypt/tenantcrypt/internal/providers"
	"github.com/tenantcrypt/tenantcrypt/internal/store/sqlite"
)

// TestAdminActionNames: every admin route has a readable action name, and
// no two share one.
func TestAdminActionNames(t *testing.T) {
	s := New(Config{KeyProviders: openapiKeyProviders{}, Migrations: openapiMigrations{}})
	want := map[string]string{
		"POST /api/v1/tenants":                                                   "tenant.create",
		"PATCH /api/v1/tenants/{id}":                                             "tenant.update",
		"DELETE /api/v1/tenants/{id}":                                            "tenant.delete",
		"POST /api/v1/encryption/keyproviders":                                   "keyprovider.register",
		"PATCH /api/v1/encryption/keyproviders/{fp}":                             "keyprovider.update",
		"DELETE /api/v1/encryption/keyproviders/{fp}":                            "keyprovider.delete",
		"POST /api/v1/encryption/keyproviders/{fp}/actions/test":                 "keyprovider.test",
		"POST /api/v1/encryption/keyproviders/{fp}/actions/migrate":              "keyprovider.migrate",
		"POST /api/v1/encryption/keyproviders/actions/reset-to-default-provider": "keyprovider.reset-to-default-provider",
		"POST /api/v1/tenants/{id}/actions/rotate-key":                           "tenant.rotate-key",
		"POST /api/v1/internal-kms/actions/rotate-root-key":                      "internalkms.rotate-root-key",
		"POST /api/v1/internal-kms/actions/reload-root-keys":                     "internalkms.reload-root-keys",
	}
	seen := map[string]string{}
	for _, rt := range s.Routes() {
		if !isAdminAction(rt) {
			continue
		}
		key := rt.Method + " " + rt.Path
		got := adminAction(rt)
		if w, ok := want[key]; ok && got != w {
			t.Errorf("%s: action %q, want %q", key, got, w)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("%s and %s share the action %q", key, other, got)
		}
		seen[got] = key
	}
	for key := range want {
		if _, ok := seen[want[key]]; !ok {
			t.Errorf("%s is not an audited admin action", key)
		}
	}
	if isAdminAction(Route{Method: "POST", Path: "/api/v1/encryption/encrypt", Roles: []auth.Role{auth.RoleService}}) {
		t.Error("the data plane counted as an admin action")
	}
	if op := dataPlaneOp(Route{Path: "/api/v1/encryption/datakeys/decrypt"}); op != "datakeys.decrypt" {
		t.Errorf("dataPlaneOp = %q", op)
	}
}

// principalAuth accepts any token as its principal.
type principalAuth struct{ p auth.Principal }

func (a principalAuth) Verify(context.Context, string) (auth.Principal, error) { return a.p, nil }

// failingAuditor is an audit log that cannot be written.
type failingAuditor struct{ perRequest bool }

func (failingAuditor) Ready() error                                  { return audit.ErrUnavailable }
func (failingAuditor) RecordSync(context.Context, audit.Event) error { return audit.ErrUnavailable }
func (failingAuditor) Record(audit.Event) error                      { return audit.ErrUnavailable }
func (failingAuditor) DataPlane(audit.Use) error                     { return audit.ErrUnavailable }
func (f failingAuditor) PerRequest() bool                            { return f.perRequest }

// newRing is a keyring on real parts (SQLite, the internal KMS) in a
// temporary directory, with the tenant "acme".
func newRing(t testing.TB) (*keyring.Service, *sqlite.Store) {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	roots, err := internalkms.LoadOrCreateRootKeyFile(filepath.Join(dir, "root-keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(roots.Destroy)
	ring, err := keyring.New(keyring.Config{Store: st, Providers: providers.New(internalkms.New(roots, st))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ring.Close)
	if _, err := ring.CreateTenant(context.Background(), keyring.TenantSpec{ID: "acme", Name: "Acme", Edition: keyring.EditionEnterprise}); err != nil {
		t.Fatal(err)
	}
	return ring, st
}

func post(h http.Handler, path string, body any) *httptest.ResponseRecorder {
	b, _ := json.Marshal(body)
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer x")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestAuditFailsClosed: with the audit log unwritable, an admin action is
// refused before it is carried out; the data plane goes on in per-minute
// mode and is refused in per-request mode.
func TestAuditFailsClosed(t *testing.T) {
	ring, _ := newRing(t)
	admin := principalAuth{auth.Principal{Subject: "ops", Roles: []auth.Role{auth.RolePlatformAdmin}}}
	h := New(Config{Keyring: ring, Auth: admin, Audit: failingAuditor{}}).Handler()
	rec := post(h, "/api/v1/tenants", map[string]any{"id": "new", "name": "New", "edition": "business"})
	if rec.Code != 503 || !bytes.Contains(rec.Body.Bytes(), []byte(api.CodeAuditUnavailable)) || rec.Header().Get("Retry-After") == "" {
		t.Errorf("admin action with the audit log down: %d %s", rec.Code, rec.Body)
	}
	if _, err := ring.Tenant(context.Background(), "new"); !errors.Is(err, keyring.ErrTenantNotFound) {
		t.Errorf("the refused action was carried out: %v", err)
	}

	svc := principalAuth{auth.Principal{Subject: "svc", TenantID: "acme", Roles: []auth.Role{auth.RoleService}}}
	for _, perRequest := range []bool{false, true} {
		h := New(Config{Keyring: ring, Auth: svc, Audit: failingAuditor{perRequest: perRequest}}).Handler()
		rec := post(h, "/api/v1/encryption/encrypt", map[string]any{"plaintext": "aGk="})
		want := 200
		if perRequest {
			want = 503
		}
		if rec.Code != want {
			t.Errorf("encrypt with the audit log down, per-request %v: %d %s, want %d", perRequest, rec.Code, rec.Body, want)
		}
	}
}

// BenchmarkDataPlaneAudit compares the data plane's cost (server,
// keyring, AES-GCM; in process, no TLS) without audit, with the default
// per-minute counts and with an event per request, in the same run:
//
//	go test -run '^$' -bench DataPlaneAudit ./internal/server
func BenchmarkDataPlaneAudit(b *testing.B) {
	svc := principalAuth{auth.Principal{Subject: "svc", TenantID: "acme", Roles: []auth.Role{auth.RoleService}}}
	body := map[string]any{"plaintext": "dGVuYW50Y3J5cHQgYmVuY2htYXJrIHBheWxvYWQ=", "context": map[string]string{"app": "bench"}}
	for _, mode := range []string{"per-minute", "off", "per-request"} {
		b.Run(mode, func(b *testing.B) {
			ring, st := newRing(b)
			cfg := Config{Keyring: ring, Auth: svc}
			if mode != "off" {
				signer, err := audit.LoadOrCreateSigner(filepath.Join(b.TempDir(), "audit.json"))
				if err != nil {
					b.Fatal(err)
				}
				l, err := audit.New(audit.Config{Store: st, Signer: signer, PerRequest: mode == "per-request"})
				if err != nil {
					b.Fatal(err)
				}
				l.Start()
				b.Cleanup(l.Close)
				cfg.Audit = l
			}
			h := New(cfg).Handler()
			if rec := post(h, "/api/v1/encryption/encrypt", body); rec.Code != 200 {
				b.Fatalf("warm-up: %d %s", rec.Code, rec.Body)
			}
			var refused atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					switch rec := post(h, "/api/v1/encryption/encrypt", body); {
					case rec.Code == 503 && mode == "per-request":
						refused.Add(1) // the audit log cannot keep up: fail closed
					case rec.Code != 200:
						b.Errorf("encrypt: %d %s", rec.Code, rec.Body)
						return
					}
				}
			})
			b.ReportMetric(float64(refused.Load())/float64(b.N), "refused/op")
		})
	}
}
