package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
)

// loadOpenAPIDocument loads openapi.json with kin-openapi, a maintained
// OpenAPI 3.1 validator, and validates it, examples included.
func loadOpenAPIDocument(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapiDoc)
	if err != nil {
		t.Fatalf("openapi.json does not load: %v", err)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	return doc
}

func TestOpenAPIValidates(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPIDocument(t)
	if doc.Info == nil || doc.Info.License == nil || doc.Info.License.Name == "" {
		t.Error("info.license is missing")
	}
}

// tokenAuth maps test tokens to principals and refuses any other token.
type tokenAuth map[string]auth.Principal

func (a tokenAuth) Verify(_ context.Context, token string) (auth.Principal, error) {
	p, ok := a[token]
	if !ok {
		return auth.Principal{}, fmt.Errorf("%w: unknown test token", auth.ErrUnauthenticated)
	}
	return p, nil
}

// TestOpenAPIResponsesConform sends real requests to a server with a real
// keyring (SQLite, internal KMS) and validates each request and answer
// against the document: status documented, headers and body matching
// their schemas.
func TestOpenAPIResponsesConform(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPIDocument(t)
	doc.Servers = nil // match requests by path alone
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	ring, _ := newRing(t) // with tenant acme
	tokens := tokenAuth{
		"platform": {Subject: "ops", Roles: []auth.Role{auth.RolePlatformAdmin}},
		"admin":    {Subject: "alice", TenantID: "acme", Roles: []auth.Role{auth.RoleTenantAdmin}},
		"service":  {Subject: "svc", TenantID: "acme", Roles: []auth.Role{auth.RoleService}},
	}
	srv := New(Config{Keyring: ring, Auth: tokens, Ready: []Check{{Name: "database", Fn: func(context.Context) error { return nil }}}})
	h := srv.Handler()

	// exchange sends one request, validates it and its answer, and returns
	// the answer's body.
	exchange := func(t *testing.T, method, path, token string, body any, wantStatus int) []byte {
		t.Helper()
		var raw []byte
		if body != nil {
			raw, _ = json.Marshal(body)
		}
		newReq := func() *http.Request {
			req := httptest.NewRequest(method, path, bytes.NewReader(raw))
			if body != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			return req
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, newReq())
		if rec.Code != wantStatus {
			t.Fatalf("%s %s: status %d, want %d: %s", method, path, rec.Code, wantStatus, rec.Body.Bytes())
		}
		req := newReq()
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatalf("%s %s: not in the document: %v", method, path, err)
		}
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		if wantStatus < 400 {
			if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
				t.Errorf("%s %s: the request does not match the document: %v", method, path, err)
			}
		}
		validateResponse(t, in, rec.Code, rec.Header(), rec.Body.Bytes())
		return rec.Body.Bytes()
	}

	t.Run("public", func(t *testing.T) {
		exchange(t, "GET", "/livez", "", nil, 200)
		exchange(t, "GET", "/readyz", "", nil, 200)
		exchange(t, "GET", "/api/v1/openapi.json", "", nil, 200)
		exchange(t, "GET", "/metrics", "", nil, 200)
	})
	t.Run("tenants", func(t *testing.T) {
		exchange(t, "POST", "/api/v1/tenants", "platform", map[string]any{"id": "globex", "name": "Globex", "edition": "business"}, 201)
		exchange(t, "POST", "/api/v1/tenants", "platform", map[string]any{"id": "globex", "name": "Globex", "edition": "business"}, 409)
		exchange(t, "GET", "/api/v1/tenants/globex", "platform", nil, 200)
		exchange(t, "GET", "/api/v1/tenants", "platform", nil, 200)
		exchange(t, "GET", "/api/v1/tenants/initech", "platform", nil, 404)
		exchange(t, "POST", "/api/v1/tenants", "platform", map[string]any{"name": "No edition"}, 400)
		exchange(t, "GET", "/api/v1/tenants", "admin", nil, 403)
		exchange(t, "GET", "/api/v1/tenants", "", nil, 401)
	})
	t.Run("data plane", func(t *testing.T) {
		exchange(t, "GET", "/api/v1/encryption/status", "admin", nil, 200)
		var enc struct{ Ciphertext string }
		if err := json.Unmarshal(exchange(t, "POST", "/api/v1/encryption/encrypt", "service",
			map[string]any{"plaintext": "aHVudGVyMg==", "context": map[string]string{"app": "crm"}}, 200), &enc); err != nil {
			t.Fatal(err)
		}
		exchange(t, "POST", "/api/v1/encryption/decrypt", "service", map[string]any{"ciphertext": enc.Ciphertext, "context": map[string]string{"app": "crm"}}, 200)
		exchange(t, "POST", "/api/v1/encryption/decrypt", "service", map[string]any{"ciphertext": enc.Ciphertext}, 400)
		exchange(t, "POST", "/api/v1/encryption/rewrap", "service", map[string]any{"ciphertext": enc.Ciphertext, "context": map[string]string{"app": "crm"}}, 200)
		exchange(t, "POST", "/api/v1/encryption/encrypt", "service", map[string]any{"plaintext": "not base64!"}, 400)
		exchange(t, "POST", "/api/v1/encryption/encrypt", "service", map[string]any{"items": []any{
			map[string]any{"plaintext": "aGk="}, map[string]any{"plaintext": "not base64!"}}}, 200)
		var dk struct{ Handle string }
		if err := json.Unmarshal(exchange(t, "POST", "/api/v1/encryption/datakeys", "service", map[string]any{}, 200), &dk); err != nil {
			t.Fatal(err)
		}
		exchange(t, "POST", "/api/v1/encryption/datakeys/decrypt", "service", map[string]any{"handle": dk.Handle}, 200)
	})

	// Go's HTTP server answers oversized headers itself, before routing:
	// the 431 the public operations document.
	t.Run("headers too large", func(t *testing.T) {
		ts := httptest.NewUnstartedServer(h)
		ts.Config.MaxHeaderBytes = 64 << 10 // as `tenantcrypt serve`
		ts.Start()
		defer ts.Close()
		req, _ := http.NewRequest("GET", ts.URL+"/livez", nil)
		req.Header.Set("X-Padding", strings.Repeat("a", 128<<10))
		res, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status %d, want 431", res.StatusCode)
		}
		route, params, err := router.FindRoute(httptest.NewRequest("GET", "/livez", nil))
		if err != nil {
			t.Fatal(err)
		}
		validateResponse(t, &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route}, res.StatusCode, res.Header, body)
	})
}

func validateResponse(t *testing.T, in *openapi3filter.RequestValidationInput, status int, header http.Header, body []byte) {
	t.Helper()
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s %s → %d: the answer does not match the document: %v\n%s", in.Request.Method, in.Request.URL.Path, status, err, truncate(body))
	}
}

func truncate(b []byte) string {
	if len(b) > 500 {
		return string(b[:500]) + "…"
	}
	return string(b)
}

var _ routers.Router = (*legacy.Router)(nil)
