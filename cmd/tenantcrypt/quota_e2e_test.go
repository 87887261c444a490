package main

import (
	"strconv"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
)

// TestTenantQuotas: with --tenant-rate and --tenant-burst, a tenant that
// sends more than its quota (a batch counting its items) gets 429
// Encryption-13 with Retry-After, while another tenant is served; a
// platform admin gives a tenant its own quota, and takes it back with
// {"rate": 0, "burst": 0}; the audit log counts the refused items.
func TestTenantQuotas(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, "--tenant-rate", "1", "--tenant-burst", "1000")
	admin := ts.token(auth.RolePlatformAdmin, "")
	for _, id := range []string{"noisy", "quiet"} {
		if r := ts.do("POST", "/api/v1/tenants", admin, map[string]any{"id": id, "name": id, "edition": "business"}); r.status != 201 {
			t.Fatalf("create %s: %d %s", id, r.status, r.body)
		}
	}
	noisy, quiet := ts.token(auth.RoleService, "noisy"), ts.token(auth.RoleService, "quiet")
	batch := func(n int) map[string]any {
		items := make([]map[string]any, n)
		for i := range items {
			items[i] = map[string]any{"plaintext": b64("item " + strconv.Itoa(i))}
		}
		return map[string]any{"items": items}
	}
	if r := ts.do("POST", "/api/v1/encryption/encrypt", noisy, batch(999)); r.status != 200 {
		t.Fatalf("a batch within the burst: %d %s", r.status, r.body)
	}
	r := ts.do("POST", "/api/v1/encryption/encrypt", noisy, batch(10))
	if r.status != 429 || r.errorCode(t) != string(api.CodeRateLimited) || r.header.Get("Retry-After") == "" {
		t.Fatalf("a batch over the quota: %d %v %s, want 429 %s with Retry-After", r.status, r.header, r.body, api.CodeRateLimited)
	}
	if r := ts.do("POST", "/api/v1/encryption/encrypt", quiet, map[string]any{"plaintext": b64("x")}); r.status != 200 {
		t.Errorf("the quiet tenant while the noisy one is refused: %d %s", r.status, r.body)
	}

	// Its own quota, then back to the defaults.
	r = ts.do("PATCH", "/api/v1/tenants/noisy", admin, map[string]any{"quota": map[string]any{"rate": 1e6, "burst": 5000}})
	if r.status != 200 {
		t.Fatalf("set the tenant's quota: %d %s", r.status, r.body)
	}
	if q, _ := r.json(t)["quota"].(map[string]any); q["rate"] != 1e6 || q["burst"] != 5000.0 {
		t.Errorf("the tenant shows quota %v, want rate 1e6, burst 5000", r.json(t)["quota"])
	}
	if r := ts.do("POST", "/api/v1/encryption/encrypt", noisy, batch(1000)); r.status != 200 {
		t.Errorf("with its own, larger quota: %d %s", r.status, r.body)
	}
	for _, bad := range []map[string]any{{"rate": 10, "burst": 999}, {"rate": -1, "burst": 1000}, {"rate": 0, "burst": 1000}} {
		if r := ts.do("PATCH", "/api/v1/tenants/noisy", admin, map[string]any{"quota": bad}); r.status != 400 || r.errorCode(t) != string(api.CodeBadRequest) {
			t.Errorf("quota %v: %d %s, want 400", bad, r.status, r.body)
		}
	}
	r = ts.do("PATCH", "/api/v1/tenants/noisy", admin, map[string]any{"quota": map[string]any{"rate": 0, "burst": 0}})
	if r.status != 200 || r.json(t)["quota"] != nil {
		t.Errorf("back to the defaults: %d %s, want no quota shown", r.status, r.body)
	}
	if r := ts.do("PATCH", "/api/v1/tenants/noisy", ts.token(auth.RoleTenantAdmin, "noisy"), map[string]any{"quota": map[string]any{"rate": 1e6, "burst": 5000}}); r.status != 403 {
		t.Errorf("a tenant admin setting its own quota: %d, want 403", r.status)
	}

	ts2 := restartServer(t, ts, nil, "--tenant-rate", "1", "--tenant-burst", "1000")
	refused := 0
	for _, e := range ts2.audits(t, admin, "&tenantId=noisy") {
		if e.Action == "dataplane.encrypt" && e.ErrorCode == string(api.CodeRateLimited) {
			refused, _ = strconv.Atoi(e.Details["count"])
		}
	}
	if refused != 10 {
		t.Errorf("the audit log counts %d refused items, want 10", refused)
	}
}
