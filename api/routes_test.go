package api

import (
	"net/http"
	"testing"
)

func TestRouteExpand(t *testing.T) {
	for _, c := range []struct {
		route  Route
		values []string
		want   string
	}{
		{RouteEncrypt, nil, "/api/v1/encryption/encrypt"},
		{RouteTenant, []string{"acme"}, "/api/v1/tenants/acme"},
		{RouteTenant, []string{"a/b c"}, "/api/v1/tenants/a%2Fb%20c"},
		{RouteTestKeyProvider, []string{"0123abcd"}, "/api/v1/encryption/keyproviders/0123abcd/actions/test"},
	} {
		if got := c.route.Expand(c.values...); got != c.want {
			t.Errorf("%s.Expand(%q) = %q, want %q", c.route, c.values, got, c.want)
		}
	}
	for _, c := range []struct {
		route  Route
		values []string
	}{
		{RouteTenant, nil},
		{RouteEncrypt, []string{"x"}},
		{RouteRotateTenantKey, []string{"a", "b"}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s.Expand(%q) did not panic", c.route, c.values)
				}
			}()
			c.route.Expand(c.values...)
		}()
	}
}

// TestRoutes: each route is listed once, and retry safety follows the
// rule RetrySafe documents.
func TestRoutes(t *testing.T) {
	seen := map[string]bool{}
	safePosts := map[Route]bool{RouteEncrypt: true, RouteDecrypt: true, RouteRewrap: true, RouteGenerateDataKey: true,
		RouteDecryptDataKey: true, RouteTestKeyProvider: true}
	for _, r := range Routes() {
		if seen[r.String()] {
			t.Errorf("%s is listed twice", r)
		}
		seen[r.String()] = true
		want := r.Method == http.MethodGet || r.Method == http.MethodPatch || safePosts[r]
		if r.RetrySafe != want {
			t.Errorf("%s: RetrySafe = %v, want %v", r, r.RetrySafe, want)
		}
	}
}
