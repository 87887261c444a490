// Package server is tenantcrypt's HTTP API: routes in one place, handlers
// that return errors, one mapping from errors to statuses and the error
// envelope, strict JSON decoding, authentication and role checks, metrics.
//
// It knows the keyring and the authenticator only through the interfaces
// below, never a store or a KMS provider.
package server

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
	"github.com/tenantcrypt/tenantcrypt/internal/tenantstatus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Keyring is what the API needs of the keyring (a *keyring.Service).
type Keyring interface {
	CreateTenant(ctx context.Context, spec keyring.TenantSpec) (keyring.Tenant, error)
	Tenant(ctx context.Context, id string) (keyring.Tenant, error)
	ListTenants(ctx context.Context, after string, limit int) ([]keyring.Tenant, error)
	UpdateTenant(ctx context.Context, id string, u keyring.TenantUpdate) (keyring.Tenant, error)
	DeleteTenant(ctx context.Context, id string) error
	TenantStatus(ctx context.Context, id string) (keyring.TenantStatus, error)

	Encrypt(ctx context.Context, tenantID string, ectx envelope.Context, plaintext []byte) (string, error)
	Decrypt(ctx context.Context, tenantID string, ectx envelope.Context, ciphertext string) ([]byte, error)
	Rewrap(ctx context.Context, tenantID string, ectx envelope.Context, ciphertext string) (string, error)
	IssuePlaintextDataKey(ctx context.Context, tenantID string, ectx envelope.Context) (keyring.IssuedDataKey, error)
	// Admit takes n operations from the tenant's data-plane quota.
	// Errors: *keyring.RateLimitError.
	Admit(ctx context.Context, tenantID string, n int) error
	ResolvePlaintextDataKey(ctx context.Context, tenantID string, ectx envelope.Context, handle string) (*secret.Bytes, error)
}

// Lifecycle is what the status needs of the key monitor (a
// *lifecycle.Monitor).
type Lifecycle interface {
	// KeyChecks returns the stored checks of the tenant's key.
	KeyChecks(ctx context.Context, tenantID string) ([]lifecycle.KeyCheck, error)
	// Check checks the tenant's key now.
	Check(ctx context.Context, tenantID string) ([]lifecycle.KeyCheck, error)
	// Interval is how often every tenant's key is checked.
	Interval() time.Duration
	// Failover reports whether the tenant's key is served by its replica.
	Failover(ctx context.Context, t keyring.Tenant) (lifecycle.Failover, error)
}

// Authenticator verifies bearer tokens (an *auth.Verifier).
type Authenticator interface {
	// Verify returns the token's principal. Errors wrap
	// auth.ErrUnauthenticated.
	Verify(ctx context.Context, token string) (auth.Principal, error)
}

// Check is one readiness check, such as the database or the internal KMS.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Config configures a Server. Keyring and Auth are required.
type Config struct {
	Keyring Keyring
	Auth    Authenticator
	// JWKS returns the self-issuer's public keys for /.well-known/jwks.json;
	// nil when tenantcrypt does not issue its own tokens.
	JWKS func() any
	// Ready lists the checks behind /readyz.
	Ready []Check
	// Registry receives the server's metrics and is served at /metrics.
	Registry *prometheus.Registry
	// MaxBodyBytes bounds request bodies. Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// RevocationBound is reported in the encryption status.
	RevocationBound time.Duration
	// KeyProviders and Migrations serve the key-provider API.
	KeyProviders KeyProviders
	Migrations   Migrations
	// Lifecycle reports the checks of customer managed keys in the
	// encryption status; nil without AWS KMS.
	Lifecycle Lifecycle
	// Audit records admin actions (synchronously; refused when it cannot)
	// and data-plane use; AuditLog serves the audit API. Nil: no audit.
	Audit    Auditor
	AuditLog *AuditReader
	// InternalKMS serves the internal KMS's rotation endpoints (platform
	// admin); without it they answer 404.
	InternalKMS InternalKMS
	// Console, if set, serves the admin console: /console and everything
	// under /console/ (not part of the API; see package console).
	Console http.Handler
	// MaxInflight bounds the requests in progress (beyond it: 503 with
	// Retry-After); /livez, /readyz and /metrics are exempt. 0: no bound.
	MaxInflight int
	// BodyReadTimeout bounds the time a request body takes to arrive
	// (408 beyond it). 0: only the http.Server's ReadTimeout.
	BodyReadTimeout time.Duration
	// HandshakeLogInterval is the least time between two log lines of
	// TLS handshake errors (see ErrorLog). Default 10 s.
	HandshakeLogInterval time.Duration
	// ReadsPerMinute and WritesPerMinute limit each tenant's calls of the
	// key-provider API (Qlik's tiers 1 and 2). Defaults
	// DefaultReadsPerMinute and DefaultWritesPerMinute.
	ReadsPerMinute, WritesPerMinute int
	Logger                          *slog.Logger
	// Tracer, if set, makes a server span of every request, a child of the
	// caller's traceparent as Propagator reads it (OpenTelemetry; see
	// package telemetry). Nil: no tracing, and no cost.
	Tracer     trace.Tracer
	Propagator propagation.TextMapPropagator
}

// Defaults of Config.
const (
	DefaultMaxBodyBytes    = 1 << 20
	DefaultReadsPerMinute  = 1000
	DefaultWritesPerMinute = 100
)

// Settings of the net/http.Server in front of Handler: the serve command's
// defaults (the server's flags start from them), and what a benchmark's
// baseline server copies to behave the same.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	// DefaultRequestTimeout is the http.Server's ReadTimeout and
	// WriteTimeout.
	DefaultRequestTimeout = 30 * time.Second
	DefaultIdleTimeout    = 60 * time.Second
	// DefaultBodyReadTimeout is the serve command's Config.BodyReadTimeout
	// (whose zero value is no bound of its own).
	DefaultBodyReadTimeout = 10 * time.Second
	MaxHeaderBytes         = 64 << 10
)

// Server is the HTTP API. Use Handler to serve it.
type Server struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	metrics *metrics
	routes  []Route
	// reads and writes rate-limit the key-provider API per tenant.
	reads, writes *rateLimiter
	// inflight counts the requests in progress against MaxInflight.
	inflight                    inflightCounter
	handshakeErrors, overloaded prometheus.Counter
	// tenantStatus assembles the encryption status from the keyring, the
	// key monitor and the key providers.
	tenantStatus *tenantstatus.Service
}

// New returns a Server for cfg.
func New(cfg Config) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.ReadsPerMinute <= 0 {
		cfg.ReadsPerMinute = DefaultReadsPerMinute
	}
	if cfg.WritesPerMinute <= 0 {
		cfg.WritesPerMinute = DefaultWritesPerMinute
	}
	if cfg.HandshakeLogInterval <= 0 {
		cfg.HandshakeLogInterval = 10 * time.Second
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(),
		reads: newRateLimiter(cfg.ReadsPerMinute), writes: newRateLimiter(cfg.WritesPerMinute)}
	s.tenantStatus = tenantstatus.New(tenantstatus.Config{Tenants: cfg.Keyring, Monitor: cfg.Lifecycle, KeyProviders: cfg.KeyProviders})
	s.metrics = newMetrics(cfg.Registry)
	s.edgeMetrics(cfg.Registry)
	s.routes = s.routeTable()
	for _, rt := range s.routes {
		s.mux.Handle(rt.String(), s.wrap(rt))
	}
	s.metrics.initRoutes(s.routes)
	return s
}

// Handler is the whole API with its middleware.
func (s *Server) Handler() http.Handler {
	return s.recoverer(s.requestID(s.edge(http.HandlerFunc(s.dispatch))))
}

// Routes lists every route the server serves (for the OpenAPI check).
func (s *Server) Routes() []Route { return s.routes }

// Route is one route of the API (its method and path), the roles allowed
// on it (none: public), its rate-limit tier, and its handler.
type Route struct {
	api.Route
	Roles []auth.Role
	h     handlerFunc
	tier  tier
}

// tier is a route's rate-limit class (the key-provider API's tiers).
type tier int

const (
	unlimited tier = iota
	readTier
	writeTier
)

// handlerFunc is a handler that returns its error for writeError to render.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

var (
	platformAdmin = []auth.Role{auth.RolePlatformAdmin}
	service       = []auth.Role{auth.RoleService}
	tenantReaders = []auth.Role{auth.RoleTenantAdmin, auth.RoleService}
	tenantAdmin   = []auth.Role{auth.RoleTenantAdmin}
)

func (s *Server) routeTable() []Route {
	routes := []Route{
		{api.RouteCreateTenant, platformAdmin, s.createTenant, unlimited},
		{api.RouteListTenants, platformAdmin, s.listTenants, unlimited},
		{api.RouteTenant, platformAdmin, s.getTenant, unlimited},
		{api.RouteUpdateTenant, platformAdmin, s.updateTenant, unlimited},
		{api.RouteDeleteTenant, platformAdmin, s.deleteTenant, unlimited},
		{api.RouteRotateTenantKey, platformAdmin, s.rotateTenantKey, unlimited},
		{api.RouteInternalKMS, platformAdmin, s.getInternalKMS, unlimited},
		{api.RouteRotateRootKey, platformAdmin, s.rotateRootKey, unlimited},
		{api.RouteReloadRootKeys, platformAdmin, s.reloadRootKeys, unlimited},

		{api.RouteEncryptionStatus, tenantReaders, s.status, unlimited},
		{api.RouteEncrypt, service, s.encrypt, unlimited},
		{api.RouteDecrypt, service, s.decrypt, unlimited},
		{api.RouteRewrap, service, s.rewrap, unlimited},
		{api.RouteGenerateDataKey, service, s.dataKey, unlimited},
		{api.RouteDecryptDataKey, service, s.dataKeyDecrypt, unlimited},

		{api.RouteJWKS, nil, s.jwks, unlimited},
		{api.RouteLivez, nil, s.livez, unlimited},
		{api.RouteReadyz, nil, s.readyz, unlimited},
		{api.RouteMetrics, nil, s.metricsHandler, unlimited},
		{api.RouteOpenAPI, nil, s.openapi, unlimited},
	}
	routes = append(routes, s.auditRoutes()...)
	if s.cfg.KeyProviders != nil && s.cfg.Migrations != nil {
		routes = append(routes,
			Route{api.RouteKeyProviders, tenantAdmin, as(opListKeyProviders, s.listKeyProviders), readTier},
			Route{api.RouteRegisterKeyProvider, tenantAdmin, as(opRegisterKeyProvider, s.unlocked(s.registerKeyProvider)), writeTier},
			Route{api.RouteAllKeyProviders, tenantAdmin, as(opListKeyProviders, s.listAllKeyProviders), readTier},
			Route{api.RouteResetToDefaultProvider, tenantAdmin, as(opResetToDefault, s.unlocked(s.resetToDefault)), writeTier},
			Route{api.RouteMigrationDetails, tenantAdmin, as(opMigrationDetails, s.migrationDetails), readTier},
			Route{api.RouteKeyProvider, tenantAdmin, as(opGetKeyProvider, s.getKeyProvider), readTier},
			Route{api.RoutePatchKeyProvider, tenantAdmin, as(opUpdateKeyProvider, s.unlocked(s.patchKeyProvider)), writeTier},
			Route{api.RouteDeleteKeyProvider, tenantAdmin, as(opDeleteKeyProvider, s.unlocked(s.deleteKeyProvider)), writeTier},
			// A test changes nothing but the recorded result: it is how a
			// locked tenant's admin sees why.
			Route{api.RouteTestKeyProvider, tenantAdmin, as(opTestKeyProvider, s.testKeyProvider), writeTier},
			Route{api.RouteMigrateToKeyProvider, tenantAdmin, as(opMigrate, s.unlocked(s.migrate)), writeTier},
		)
	}
	return routes
}

// unlocked refuses h to the admins of a locked or destroyed tenant: its
// key is pending deletion or gone, and nothing may change until the key's
// owner has decided (cancelled the deletion, or not).
func (s *Server) unlocked(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		t, err := s.cfg.Keyring.Tenant(r.Context(), principalFrom(r).TenantID)
		if err != nil {
			return err
		}
		if t.State == keyring.StateLocked || t.State == keyring.StateDestroyed {
			return &keyring.TenantStateError{TenantID: t.ID, State: t.State, Reason: t.StateReason, Since: t.StateChangedAt}
		}
		return h(w, r)
	}
}

// dispatch routes a request, answering unknown paths (404) and wrong
// methods (405) in the error envelope rather than ServeMux's plain text.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Console != nil && (r.URL.Path == "/console" || strings.HasPrefix(r.URL.Path, "/console/")) {
		s.cfg.Console.ServeHTTP(w, r)
		return
	}
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		s.mux.ServeHTTP(w, r) // sets the path values, which Handler does not
		return
	}
	probe := &statusRecorder{header: http.Header{}}
	h.ServeHTTP(probe, r)
	switch probe.status {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", probe.header.Get("Allow"))
		s.writeError(w, r, errMethodNotAllowed)
		s.metrics.observe("unmatched", http.StatusMethodNotAllowed, 0)
	case http.StatusNotFound:
		s.writeError(w, r, errRouteNotFound)
		s.metrics.observe("unmatched", http.StatusNotFound, 0)
	default: // a redirect to the canonical path
		for k, v := range probe.header {
			w.Header()[k] = v
		}
		w.WriteHeader(probe.status)
	}
}

// statusRecorder captures what ServeMux's own 404/405/redirect handlers
// would write, without writing it.
type statusRecorder struct {
	header http.Header
	status int
}

func (p *statusRecorder) Header() http.Header         { return p.header }
func (p *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusRecorder) WriteHeader(code int)        { p.status = code }
