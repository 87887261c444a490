package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/rotation"
)

// The internal KMS endpoints end to end, against a real server, are in
// cmd/tenantcrypt/internalkms_e2e_test.go; these pin the mapping of the
// rotation errors and the wire form.

func TestInternalKMSErrorMapping(t *testing.T) {
	running := rotation.Status{ID: "abc", Kind: rotation.KindRewrapCipherKeys, State: rotation.StateRunning, Trigger: "rotate-key",
		TenantID: "acme", StartedAt: time.Date(2025, 3, 1, 10, 5, 0, 0, time.UTC), Rewrapped: 12}
	tests := []struct {
		name       string
		err        error
		status     int
		code       api.Code
		detailHas  string
		retryAfter bool
	}{
		{"busy", fmt.Errorf("x: %w", &rotation.BusyError{Running: running}), 409, api.CodeConflict, "rewrap-cipherkeys of tenant acme", false},
		{"busy starting", &rotation.BusyError{}, 409, api.CodeConflict, "another rotation is starting", false},
		{"environment", rotation.ErrRootKeysFromEnvironment, 409, api.CodeConflict, "TENANTCRYPT_ROOT_KEYS", false},
		{"refused", fmt.Errorf("internalkms: %w: the new root keys lack version 1", rotation.ErrRootKeysRefused), 409, api.CodeConflict, "lack version 1", false},
		{"key file", &rotation.KeyFileError{Op: "loading", Path: "/k.json", Err: errors.New("has mode 0644")}, 409, api.CodeConflict, "has mode 0644", false},
		{"not internal", rotation.ErrNotInternal, 409, api.CodeConflict, "customer managed key", false},
		{"closed", rotation.ErrClosed, 503, api.CodeUnavailable, "shutting down", true},
		{"tenant not found", keyring.ErrTenantNotFound, 404, api.CodeTenantNotFound, "", false},
		{"kms unavailable", &kms.Error{Op: "RotateTenantKEK", Kind: kms.ErrUnavailable}, 503, api.CodeUnavailable, "", true},
		{"database", &fault.StoreError{Op: "reading", Err: errors.New("down")}, 503, api.CodeUnavailable, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			he := toHTTPError(tt.err)
			if he.status != tt.status || he.code != tt.code {
				t.Errorf("got %d %s, want %d %s", he.status, he.code, tt.status, tt.code)
			}
			if !strings.Contains(he.detail, tt.detailHas) || he.detail == "" || he.title == "" {
				t.Errorf("title %q, detail %q: want a detail saying %q", he.title, he.detail, tt.detailHas)
			}
			if got := he.retryAfter > 0; got != tt.retryAfter {
				t.Errorf("Retry-After set = %v, want %v", got, tt.retryAfter)
			}
		})
	}
}

// adminAuth accepts any token as a platform admin.
type adminAuth struct{}

func (adminAuth) Verify(context.Context, string) (auth.Principal, error) {
	return auth.Principal{Subject: "ops", Roles: []auth.Role{auth.RolePlatformAdmin}}, nil
}

// fakeInternalKMS answers with fixed values or err.
type fakeInternalKMS struct{ err error }

func (f fakeInternalKMS) doc() rotation.Document {
	return rotation.Document{Source: rotation.SourceFile, Current: 2,
		Versions: []rotation.Version{{Version: 1, Loaded: true}, {Version: 2, Current: true, Loaded: true, KEKs: 3}, {Version: 7, KEKs: 1}},
		Job:      rotation.Status{State: rotation.StateIdle}}
}

func (f fakeInternalKMS) Document(context.Context) (rotation.Document, error) { return f.doc(), f.err }
func (f fakeInternalKMS) RotateRootKey(context.Context) (rotation.Document, error) {
	d := f.doc()
	d.Job = rotation.Status{ID: "r1", Kind: rotation.KindRewrapKEKs, State: rotation.StateRunning, Trigger: "rotate-root-key", Target: 2,
		StartedAt: time.Date(2025, 3, 1, 10, 5, 0, 0, time.UTC)}
	return d, f.err
}
func (f fakeInternalKMS) ReloadRootKeys(ctx context.Context) (rotation.Document, error) {
	return f.RotateRootKey(ctx)
}
func (f fakeInternalKMS) RotateTenantKey(_ context.Context, id string) (rotation.TenantRotation, error) {
	return rotation.TenantRotation{TenantID: id, KEKVersion: 4, Job: rotation.Status{ID: "r2", Kind: rotation.KindRewrapCipherKeys,
		State: rotation.StateRunning, Trigger: "rotate-key", TenantID: id, Target: 4}}, f.err
}

func serveInternalKMS(t *testing.T, ikms InternalKMS, method, path string) (int, []byte) {
	t.Helper()
	h := New(Config{Auth: adminAuth{}, InternalKMS: ikms}).Handler()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, path, nil)
	req.Header.Set("Authorization", "Bearer x")
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

func TestInternalKMSEndpoints(t *testing.T) {
	code, body := serveInternalKMS(t, fakeInternalKMS{}, api.RouteInternalKMS.Method, api.RouteInternalKMS.Path)
	var doc api.InternalKMS
	if err := json.Unmarshal(body, &doc); code != 200 || err != nil {
		t.Fatalf("GET: %d %s %v", code, body, err)
	}
	if doc.RootKeySource != "file" || doc.CurrentRootKeyVersion != 2 || len(doc.RootKeyVersions) != 3 ||
		doc.RootKeyVersions[2] != (api.RootKeyVersion{Version: 7, SealedKEKs: 1}) || doc.Job.State != "idle" {
		t.Errorf("GET: %s", body)
	}
	// An idle job has no kind, id or times.
	for _, absent := range []string{`"kind"`, `"id"`, `"startedAt"`, `"finishedAt"`, `"error"`} {
		if strings.Contains(string(body), absent) {
			t.Errorf("GET of an idle job has %s: %s", absent, body)
		}
	}
	for _, action := range []api.Route{api.RouteRotateRootKey, api.RouteReloadRootKeys} {
		code, body := serveInternalKMS(t, fakeInternalKMS{}, action.Method, action.Path)
		if code != 202 || !strings.Contains(string(body), `"kind":"rewrap-keks","state":"running","trigger":"rotate-root-key"`) ||
			!strings.Contains(string(body), `"startedAt":"2025-03-01T10:05:00Z"`) {
			t.Errorf("POST %s: %d %s", action, code, body)
		}
	}
	code, body = serveInternalKMS(t, fakeInternalKMS{}, api.RouteRotateTenantKey.Method, api.RouteRotateTenantKey.Expand("acme"))
	var tr api.TenantKeyRotation
	if err := json.Unmarshal(body, &tr); code != 202 || err != nil || tr.TenantID != "acme" || tr.KEKVersion != 4 ||
		tr.Job.Kind != "rewrap-cipherkeys" || tr.Job.TenantID != "acme" || tr.Job.TargetVersion != 4 {
		t.Errorf("POST rotate-key: %d %s %v", code, body, err)
	}

	// Errors go through the envelope.
	code, body = serveInternalKMS(t, fakeInternalKMS{err: rotation.ErrRootKeysFromEnvironment}, api.RouteRotateRootKey.Method, api.RouteRotateRootKey.Path)
	if code != 409 || !strings.Contains(string(body), `"code":"Encryption-14"`) {
		t.Errorf("rotate-root-key from the environment: %d %s", code, body)
	}
}

// TestInternalKMSNotConfigured: a server without InternalKMS answers 404 in
// the envelope on every route, and does not panic.
func TestInternalKMSNotConfigured(t *testing.T) {
	for _, r := range []struct{ method, path string }{
		{api.RouteInternalKMS.Method, api.RouteInternalKMS.Path},
		{api.RouteRotateRootKey.Method, api.RouteRotateRootKey.Path},
		{api.RouteReloadRootKeys.Method, api.RouteReloadRootKeys.Path},
		{api.RouteRotateTenantKey.Method, api.RouteRotateTenantKey.Expand("acme")},
	} {
		code, body := serveInternalKMS(t, nil, r.method, r.path)
		if code != http.StatusNotFound || !strings.Contains(string(body), `"code":"Encryption-04"`) {
			t.Errorf("%s %s without InternalKMS: %d %s, want 404 Encryption-04", r.method, r.path, code, body)
		}
	}
}
