package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
)

// TestTenantIDNeverReused replays the review's attack: delete tenant
// "reuse", create "reuse" again for a new owner, and use the old owner's
// tokens. The id stays retired, so the old tokens reach nothing, on both
// databases; and admin actions on tenants that do not exist start no audit
// chain of their name.
func TestTenantIDNeverReused(t *testing.T) {
	t.Parallel()
	for name, extra := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			args := extra(t)
			ts := startServer(t, nil, args...)
			admin := ts.token(auth.RolePlatformAdmin, "")
			if r := ts.do("POST", "/api/v1/tenants", admin, map[string]any{"id": "reuse", "name": "Old owner", "edition": "enterprise"}); r.status != 201 {
				t.Fatalf("create: %d %s", r.status, r.body)
			}
			oldSvc, oldAdmin := ts.token(auth.RoleService, "reuse"), ts.token(auth.RoleTenantAdmin, "reuse")
			ct := ts.do("POST", "/api/v1/encryption/encrypt", oldSvc, map[string]any{"plaintext": b64("old secret")}).json(t)["ciphertext"]
			if r := ts.do("GET", "/api/v1/audits", oldAdmin, nil); r.status != 200 {
				t.Fatalf("the owner reads its audit log: %d %s", r.status, r.body)
			}
			if r := ts.do("DELETE", "/api/v1/tenants/reuse", admin, nil); r.status != 204 {
				t.Fatalf("delete: %d %s", r.status, r.body)
			}

			r := ts.do("POST", "/api/v1/tenants", admin, map[string]any{"id": "reuse", "name": "New owner", "edition": "enterprise"})
			if r.status != http.StatusConflict || r.errorCode(t) != string(api.CodeTenantIDRetired) {
				t.Fatalf("recreate a deleted id: %d %s, want 409 %s", r.status, r.body, api.CodeTenantIDRetired)
			}
			if !strings.Contains(string(r.body), "never reused") {
				t.Errorf("the refusal does not say why: %s", r.body)
			}
			for _, tc := range []struct {
				what, method, path, token string
				body                      any
			}{
				{"encrypt", "POST", "/api/v1/encryption/encrypt", oldSvc, map[string]any{"plaintext": b64("x")}},
				{"decrypt", "POST", "/api/v1/encryption/decrypt", oldSvc, map[string]any{"ciphertext": ct}},
				{"status", "GET", "/api/v1/encryption/status", oldAdmin, nil},
				{"audit log", "GET", "/api/v1/audits", oldAdmin, nil},
				{"audit export", "GET", "/api/v1/audits/actions/export", oldAdmin, nil},
			} {
				if r := ts.do(tc.method, tc.path, tc.token, tc.body); r.status != http.StatusNotFound || r.errorCode(t) != string(api.CodeTenantNotFound) {
					t.Errorf("%s with the deleted tenant's token: %d %s, want 404 %s", tc.what, r.status, r.body, api.CodeTenantNotFound)
				}
			}

			// A platform admin's changes to tenants that never existed, and
			// a token of a tenant that does not exist yet, start no chain.
			ghostAdmin := ts.token(auth.RoleTenantAdmin, "ghost")
			ts.do("PATCH", "/api/v1/tenants/ghost", admin, map[string]any{"name": "x"})
			ts.do("DELETE", "/api/v1/tenants/ghost", admin, nil)
			ts.do("POST", "/api/v1/encryption/encrypt", ts.token(auth.RoleService, "ghost"), map[string]any{"plaintext": b64("x")})
			ts.do("POST", "/api/v1/tenants", ghostAdmin, map[string]any{"name": "x", "edition": "business"}) // denied
			if r := ts.do("POST", "/api/v1/tenants", admin, map[string]any{"id": "ghost", "name": "Ghost", "edition": "enterprise"}); r.status != 201 {
				t.Fatalf("create ghost: %d %s", r.status, r.body)
			}
			ts2 := restartServer(t, ts, nil, args...) // the stop writes the per-minute counts
			for _, e := range ts2.audits(t, admin, "&tenantId=ghost") {
				if e.Action != "tenant.create" {
					t.Errorf("the new tenant ghost inherited an event from before it existed: %+v", e)
				}
			}
			actions := map[string]bool{}
			for _, e := range ts2.audits(t, admin, "&tenantId=_platform") {
				if e.TenantID == "ghost" || e.Target == "ghost" {
					actions[e.Action] = true
				}
			}
			for _, action := range []string{"tenant.update", "tenant.delete", "dataplane.encrypt", "tenant.create"} {
				if !actions[action] {
					t.Errorf("the platform chain lacks the %s on ghost before it existed; it has %v", action, actions)
				}
			}
		})
	}
}
