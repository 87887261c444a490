package api

import (
	"net/url"
	"strings"
)

// Route is one operation of the HTTP API: its method, its path, and
// whether a client may send it again after a failure that the service may
// have acted on. The Route values below are the API's one list of routes:
// the server serves them and the Go client calls them.
type Route struct {
	// Method is the HTTP method.
	Method string
	// Path is the path pattern in net/http.ServeMux syntax: a segment
	// {name} stands for one escaped path segment (a tenant id, a key
	// provider's fingerprint); see Expand.
	Path string
	// RetrySafe is true when sending the request twice does no harm: every
	// GET, the data plane (a repeated encrypt or datakeys at worst makes a
	// ciphertext or a data key that nobody sees), the PATCH endpoints and
	// a key provider's test. Creating or deleting, registering, migrating,
	// resetting and rotating are not: after a 503 or a lost answer the
	// caller checks what happened and decides.
	RetrySafe bool
}

// String is the route as a ServeMux pattern: "METHOD PATH".
func (r Route) String() string { return r.Method + " " + r.Path }

// Expand is the route's path with its {name} segments replaced, in order,
// by values, each escaped as a path segment. It panics when the number of
// values is not the number of segments to replace: that is a bug of the
// caller, not an input error.
func (r Route) Expand(values ...string) string {
	segs := strings.Split(r.Path, "/")
	n := 0
	for i, s := range segs {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			if n == len(values) {
				panic("api: too few path values for " + r.String())
			}
			segs[i] = url.PathEscape(values[n])
			n++
		}
	}
	if n != len(values) {
		panic("api: too many path values for " + r.String())
	}
	return strings.Join(segs, "/")
}

// The platform admin's routes: tenants and the internal KMS.
var (
	RouteCreateTenant    = Route{"POST", "/api/v1/tenants", false}
	RouteListTenants     = Route{"GET", "/api/v1/tenants", true}
	RouteTenant          = Route{"GET", "/api/v1/tenants/{id}", true}
	RouteUpdateTenant    = Route{"PATCH", "/api/v1/tenants/{id}", true}
	RouteDeleteTenant    = Route{"DELETE", "/api/v1/tenants/{id}", false}
	RouteRotateTenantKey = Route{"POST", "/api/v1/tenants/{id}/actions/rotate-key", false}
	RouteInternalKMS     = Route{"GET", "/api/v1/internal-kms", true}
	RouteRotateRootKey   = Route{"POST", "/api/v1/internal-kms/actions/rotate-root-key", false}
	RouteReloadRootKeys  = Route{"POST", "/api/v1/internal-kms/actions/reload-root-keys", false}
)

// The data plane (service tokens) and the encryption status.
var (
	RouteEncryptionStatus = Route{"GET", "/api/v1/encryption/status", true}
	RouteEncrypt          = Route{"POST", "/api/v1/encryption/encrypt", true}
	RouteDecrypt          = Route{"POST", "/api/v1/encryption/decrypt", true}
	RouteRewrap           = Route{"POST", "/api/v1/encryption/rewrap", true}
	RouteGenerateDataKey  = Route{"POST", "/api/v1/encryption/datakeys", true}
	RouteDecryptDataKey   = Route{"POST", "/api/v1/encryption/datakeys/decrypt", true}
)

// The key-provider API (tenant admin; Qlik Cloud compatible).
var (
	RouteKeyProviders           = Route{"GET", "/api/v1/encryption/keyproviders", true}
	RouteRegisterKeyProvider    = Route{"POST", "/api/v1/encryption/keyproviders", false}
	RouteAllKeyProviders        = Route{"GET", "/api/v1/encryption/keyproviders/actions/list", true}
	RouteResetToDefaultProvider = Route{"POST", "/api/v1/encryption/keyproviders/actions/reset-to-default-provider", false}
	RouteMigrationDetails       = Route{"GET", "/api/v1/encryption/keyproviders/migration/actions/details", true}
	RouteKeyProvider            = Route{"GET", "/api/v1/encryption/keyproviders/{fp}", true}
	RoutePatchKeyProvider       = Route{"PATCH", "/api/v1/encryption/keyproviders/{fp}", true}
	RouteDeleteKeyProvider      = Route{"DELETE", "/api/v1/encryption/keyproviders/{fp}", false}
	RouteTestKeyProvider        = Route{"POST", "/api/v1/encryption/keyproviders/{fp}/actions/test", true}
	RouteMigrateToKeyProvider   = Route{"POST", "/api/v1/encryption/keyproviders/{fp}/actions/migrate", false}
)

// The audit API.
var (
	RouteAuditEvents     = Route{"GET", "/api/v1/audits", true}
	RouteExportAudit     = Route{"GET", "/api/v1/audits/actions/export", true}
	RouteVerifyAudit     = Route{"GET", "/api/v1/audits/actions/verify", true}
	RouteAuditPublicKeys = Route{"GET", "/api/v1/audits/public-keys", true}
)

// Public routes: no token.
var (
	RouteJWKS    = Route{"GET", "/.well-known/jwks.json", true}
	RouteLivez   = Route{"GET", "/livez", true}
	RouteReadyz  = Route{"GET", "/readyz", true}
	RouteMetrics = Route{"GET", "/metrics", true}
	RouteOpenAPI = Route{"GET", "/api/v1/openapi.json", true}
)

// Routes lists every route above, for tests that compare it with what a
// server serves or documents.
func Routes() []Route {
	return []Route{
		RouteCreateTenant, RouteListTenants, RouteTenant, RouteUpdateTenant, RouteDeleteTenant, RouteRotateTenantKey,
		RouteInternalKMS, RouteRotateRootKey, RouteReloadRootKeys,
		RouteEncryptionStatus, RouteEncrypt, RouteDecrypt, RouteRewrap, RouteGenerateDataKey, RouteDecryptDataKey,
		RouteKeyProviders, RouteRegisterKeyProvider, RouteAllKeyProviders, RouteResetToDefaultProvider, RouteMigrationDetails,
		RouteKeyProvider, RoutePatchKeyProvider, RouteDeleteKeyProvider, RouteTestKeyProvider, RouteMigrateToKeyProvider,
		RouteAuditEvents, RouteExportAudit, RouteVerifyAudit, RouteAuditPublicKeys,
		RouteJWKS, RouteLivez, RouteReadyz, RouteMetrics, RouteOpenAPI,
	}
}
