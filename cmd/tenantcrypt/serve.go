package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tenantcrypt/tenantcrypt/internal/audit"
	"github.com/tenantcrypt/tenantcrypt/internal/coredump"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/awskms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/awskms/awskind"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/kmip/kmipkind"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
	"github.com/tenantcrypt/tenantcrypt/internal/providers"
	"github.com/tenantcrypt/tenantcrypt/internal/rotation"
	"github.com/tenantcrypt/tenantcrypt/internal/server"
	"github.com/tenantcrypt/tenantcrypt/internal/store/postgres"
	"github.com/tenantcrypt/tenantcrypt/internal/store/sqlite"
	"github.com/tenantcrypt/tenantcrypt/internal/telemetry"
	"github.com/tenantcrypt/tenantcrypt/internal/tlsconfig"
)

const serveUsage = `Usage:
  tenantcrypt serve [--data-dir DIR] [--listen HOST:PORT] [--config FILE] [flags]
      run the service (HTTPS); with nothing else given it keeps everything
      in DIR: SQLite, the internal KMS root key, the built-in issuer's key,
      the audit signing key and a development TLS certificate
`

func cmdServe(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var cfg serveConfig
	cfg.flags(fs)
	configFile := fs.String("config", "", "JSON config file whose keys are these flag names")
	if code, ok := parseFlags(fs, serveUsage, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "serve: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *configFile == "" {
		*configFile = env("TENANTCRYPT_CONFIG")
	}
	if err := resolveFlags(fs, *configFile, env); err != nil {
		fmt.Fprintf(stderr, "serve: %v\n", err)
		return exitUsage
	}
	if err := cfg.validate(env); err != nil {
		fmt.Fprintf(stderr, "serve: invalid configuration:\n%v\n", err)
		return exitUsage
	}
	log := newLogger(stderr, cfg.log.format, cfg.log.level)
	// Before any key is read: a crash dump would copy the root key, the
	// issuer's key and plaintexts to disk.
	if err := coredump.Disable(); err != nil {
		log.Warn("core dumps could not be turned off; set `ulimit -c 0` (LimitCORE=0 under systemd)", "error", err.Error())
	} else {
		log.Info("core dumps off and the process not dumpable (RLIMIT_CORE 0, PR_SET_DUMPABLE 0)")
	}
	if err := serve(ctx, cfg, env, stdout, log); err != nil {
		log.Error("tenantcrypt stopped", "error", err.Error())
		return exitFailure
	}
	return exitOK
}

// store is what the server needs of a storage backend.
type store interface {
	keyring.Store
	internalkms.Store
	internalkms.RootRecordStore
	keyprovider.Store
	migration.Store
	rotation.Store
	lifecycle.Store
	audit.Store
}

// openStore opens the database (--database, or SQLite in dataDir); it
// returns its close function and its name for the log.
func openStore(ctx context.Context, database, dataDir string) (store, func(), string, error) {
	switch {
	case isPostgres(database):
		st, err := postgres.Open(ctx, database)
		if err != nil {
			return nil, nil, "", err
		}
		return st, st.Close, "postgres", nil
	default:
		path := strings.TrimPrefix(database, "sqlite:")
		if path == "" {
			path = filepath.Join(dataDir, "tenantcrypt.db")
		}
		st, err := sqlite.Open(ctx, path)
		if err != nil {
			return nil, nil, "", err
		}
		return st, func() { st.Close() }, "sqlite " + path, nil
	}
}

// serve runs the service until ctx is done: it binds the port, assembles
// the parts, serves, and shuts down gracefully: the HTTP server finishes
// the requests in flight, then the parts stop in the reverse order of
// their making (each before what it uses, the audit log and the database
// last but one, tracing last).
func serve(ctx context.Context, cfg serveConfig, env func(string) string, stdout io.Writer, log *slog.Logger) error {
	// Bind the port before creating any state: a second server on a busy
	// port must fail without making a data directory.
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.listen, err)
	}
	defer ln.Close() // closed by Serve too; this covers the returns before it
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return fmt.Errorf("creating the data directory: %w", err)
	}
	var parts closers
	defer parts.close()
	svc, err := assemble(ctx, cfg, env, log, &parts)
	if err != nil {
		return err
	}
	return listenAndServe(ctx, cfg, ln, svc, stdout, log)
}

// closers are the parts' stop functions, run in the reverse order of
// their making, so that a part stops before what it uses.
type closers []func()

func (c *closers) push(f func()) { *c = append(*c, f) }

func (c *closers) close() {
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
}

// service is what assemble builds for listenAndServe.
type service struct {
	api       *server.Server
	metrics   *prometheus.Registry
	storeName string
}

// assemble makes the service's parts in the order of their dependencies,
// in stages that each take the parts of the stages before: the platform
// (tracing, database, audit log, metrics, observer), the key providers,
// the core (keyring, key monitor, key-provider service, migrations,
// rotations) and the API. stop receives what stops each part.
func assemble(ctx context.Context, cfg serveConfig, env func(string) string, log *slog.Logger, stop *closers) (*service, error) {
	p, err := openPlatform(ctx, cfg, env, log, stop)
	if err != nil {
		return nil, err
	}
	kp, err := openProviders(ctx, cfg, env, p, stop)
	if err != nil {
		return nil, err
	}
	c, err := openCore(ctx, cfg, env, p, kp, stop)
	if err != nil {
		return nil, err
	}
	srv, err := newAPI(cfg, p, kp, c)
	if err != nil {
		return nil, err
	}
	return &service{api: srv, metrics: p.metrics, storeName: p.storeName}, nil
}

// platform is what every other part uses: tracing, the database, the
// audit log, the metrics, and the observer that feeds the last two.
type platform struct {
	tracing     *telemetry.Tracing
	st          store
	storeName   string
	audit       *audit.Log
	auditSigner *audit.Signer
	metrics     *prometheus.Registry
	obs         *observer
	log         *slog.Logger
}

func openPlatform(ctx context.Context, cfg serveConfig, env func(string) string, log *slog.Logger, stop *closers) (*platform, error) {
	// Tracing starts first and stops last, so that the last spans go out.
	tracing, stopTracing, err := setupTracing(ctx, env, log)
	if err != nil {
		return nil, fmt.Errorf("configuring OpenTelemetry: %w", err)
	}
	stop.push(stopTracing)
	st, closeStore, storeName, err := openStore(ctx, cfg.database, cfg.dataDir)
	if err != nil {
		return nil, fmt.Errorf("opening the database: %w", err)
	}
	stop.push(closeStore)
	// The audit log starts first and closes last, after everything that
	// records into it has stopped, so that no event is lost at shutdown.
	auditLog, auditSigner, err := openAudit(cfg.audit, cfg.dataDir, st, log)
	if err != nil {
		return nil, fmt.Errorf("opening the audit log: %w", err)
	}
	stop.push(auditLog.Close)

	reg := prometheus.NewRegistry()
	registerFIPSMetric(reg)
	logFIPSMode(log)
	registerAuditMetrics(reg, auditLog)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &platform{
		tracing: tracing, st: st, storeName: storeName, audit: auditLog, auditSigner: auditSigner, metrics: reg,
		obs: newObserver(reg, auditLog, st, log, homeRegions(cfg.aws.region, cfg.aws.drRegions())),
		log: log,
	}, nil
}

// providerSet is the key providers and the registry that finds a tenant's.
type providerSet struct {
	internal *internalkms.Service
	// device is the HSM that holds the internal KMS's root key; nil
	// without one.
	device internalkms.Device
	// keyProviders owns the tenants' registrations of customer managed
	// keys, served by the kinds registered in openProviders.
	keyProviders *keyprovider.Service
	registry     *providers.Registry
}

// openProviders makes the key providers: the provider kinds are
// registered here.
func openProviders(ctx context.Context, cfg serveConfig, env func(string) string, p *platform, stop *closers) (*providerSet, error) {
	roots, device, releaseRoot, err := loadRoot(ctx, cfg, env, p.st, p.log)
	if err != nil {
		return nil, fmt.Errorf("loading the internal KMS root keys: %w", err)
	}
	stop.push(releaseRoot)
	internal := internalkms.New(roots, p.st)
	stop.push(internal.Close)
	registerHSMMetric(p.metrics, device)

	ac := cfg.aws.config()
	ac.OnCall = p.obs.awsCall
	ac.OnRegionEvent = p.obs.regionEvent
	ac.APIOptions = tracingAPIOptions(p.tracing)
	aws, err := awskms.New(ctx, ac)
	if err != nil {
		return nil, fmt.Errorf("setting up AWS KMS: %w", err)
	}
	// The kinds of customer managed key this service serves; the
	// key-provider service owns their registrations.
	awsKind, err := awskind.New(awskind.Config{Client: aws, Region: cfg.aws.region, DRRegions: cfg.aws.drRegions(),
		AllowSingleRegion: cfg.aws.allowSingleRegion,
		RegionHealth: func(region string) (bool, time.Time) {
			h := aws.RegionHealth(region)
			return h.Healthy, h.Since
		}})
	if err != nil {
		return nil, err
	}
	// KMIP keys: the customer's own key manager; the registration carries
	// its client certificate, and the client key is stored wrapped by the
	// internal KMS.
	kmipKind := kmipkind.New(kmipkind.Config{Timeout: ac.CallTimeout, OnCall: p.obs.kmipCall})
	kinds := []keyprovider.Kind{awsKind, kmipKind}

	keyProviders, err := keyprovider.New(keyprovider.Config{
		Store: p.st, Tenants: p.st, Kinds: kinds, Secrets: internal, Logger: p.log,
	})
	if err != nil {
		return nil, err
	}
	opts := []providers.Option{providers.WithCMKs(keyProviders), providers.WithObserver(p.obs.providerCall)}
	reg := providers.New(internal, append(opts, tracingRegistryOptions(p.tracing)...)...)
	return &providerSet{internal: internal, device: device, keyProviders: keyProviders, registry: reg}, nil
}

// core is the domain's services.
type core struct {
	ring         *keyring.Service
	monitor      *lifecycle.Monitor
	keyProviders *keyprovider.Service
	migrations   *migration.Service
	rotations    *rotation.Service
}

func openCore(ctx context.Context, cfg serveConfig, env func(string) string, p *platform, kp *providerSet, stop *closers) (*core, error) {
	// Out-of-turn key checks: the keyring asks for them, the monitor
	// (which needs the keyring) makes them.
	checks := lifecycle.NewRequests()
	lt := cfg.lifecycle.times()
	rc := cfg.keyring.config(lt.refresh)
	rc.Store = p.tracing.KeyringStore(p.st)
	rc.Providers = kp.registry
	rc.OnStateChange = p.obs.stateChange
	rc.OnKeyRotated = p.obs.keyRotated
	rc.OnKeyRefused = func(tenantID string, _ kms.Ref, _ error) { checks.Notify(tenantID) }
	rc.Logger = p.log
	ring, err := keyring.New(rc)
	if err != nil {
		return nil, err
	}
	stop.push(ring.Close)
	registerKeyringMetrics(p.metrics, ring)
	stop.push(followChanges(p.st, ring, p.metrics, lt.refresh, p.log))

	replica := replicaID(p.log)
	mc := cfg.lifecycle.config()
	mc.Store, mc.Tenants, mc.KeyProviders = p.st, ring, kp.keyProviders
	mc.Requests = checks
	mc.Checked, mc.Claimed = p.obs.keyChecked, p.obs.checksClaimed
	mc.Owner, mc.Logger = replica, p.log
	monitor, err := lifecycle.New(mc)
	if err != nil {
		return nil, err
	}
	monitor.Start()
	stop.push(monitor.Close)

	gc := cfg.migration.svc
	gc.Store, gc.KeyProviders, gc.Keyring, gc.Providers = p.st, kp.keyProviders, ring, kp.registry
	gc.Hooks = p.obs.migrationHooks()
	gc.Owner, gc.Logger = replica, p.log
	migrations, err := migration.New(gc)
	if err != nil {
		return nil, err
	}
	stop.push(migrations.Close)
	migrations.Start() // resumes unfinished migrations, now and whenever a replica leaves one

	rotations, err := startRotations(ctx, cfg, env, p, ring, kp, lt.refresh, stop)
	if err != nil {
		return nil, err
	}
	return &core{ring: ring, monitor: monitor, keyProviders: kp.keyProviders, migrations: migrations, rotations: rotations}, nil
}

// newAPI is the HTTP API over the core.
func newAPI(cfg serveConfig, p *platform, kp *providerSet, c *core) (*server.Server, error) {
	verifier, jwks, err := newVerifier(cfg.auth, cfg.dataDir, p.log)
	if err != nil {
		return nil, err
	}
	sc := cfg.server.api
	sc.Keyring, sc.Lifecycle = c.ring, c.monitor
	sc.KeyProviders, sc.Migrations, sc.InternalKMS = c.keyProviders, c.migrations, c.rotations
	sc.Auth, sc.JWKS = verifier, jwks
	sc.Ready = []server.Check{
		{Name: "database", Fn: func(ctx context.Context) error { _, err := p.st.ListTenants(ctx, "", 1); return err }},
		{Name: "internal-kms", Fn: kp.internal.Check},
	}
	sc.RevocationBound = cfg.lifecycle.revocationBound
	sc.Audit, sc.AuditLog = p.audit, &server.AuditReader{Store: p.st, PublicKeys: p.auditSigner.PublicKeys}
	sc.Console = newConsole(cfg.console, cfg.auth, cfg.dataDir, p.log)
	sc.Registry, sc.Logger, sc.Tracer, sc.Propagator = p.metrics, p.log, p.tracing.Tracer(), p.tracing.Propagator()
	return server.New(sc), nil
}

// startRotations starts the internal KMS's rotations: after a root key
// rotation, every tenant KEK is rewrapped under the current root version,
// in the background (package rotation, which also serves the internal
// KMS's rotation API); replicas doing the same at once are safe (each
// rewrap is a compare-and-swap).
func startRotations(ctx context.Context, cfg serveConfig, env func(string) string, p *platform, ring *keyring.Service,
	kp *providerSet, refresh time.Duration, stop *closers) (*rotation.Service, error) {
	rcfg := rotation.Config{KMS: kp.internal, Store: p.st, Tenants: ring, RootKeyFile: cfg.root.keyFile(cfg.dataDir, env), Logger: p.log}
	if kp.device != nil {
		rcfg.Device = deviceRotator{dev: kp.device, st: p.st}
	}
	rotations, err := rotation.New(rcfg)
	if err != nil {
		return nil, err
	}
	stop.push(rotations.Close)
	if err := rotations.Start(); err != nil {
		p.log.Error("rewrapping tenant KEKs under the current root key could not start; it is retried at the next start", "error", err.Error())
	}
	if kp.device != nil {
		// Replicas agree on the HSM root key version within a refresh.
		go followRootRecord(ctx, kp.device, p.st, refresh, func(ctx context.Context) error {
			_, err := rotations.ReloadRootKeys(ctx)
			return err
		}, p.log)
	}
	return rotations, nil
}

// listenAndServe serves svc on ln (with TLS unless in development mode)
// until ctx is done, then lets the requests in flight finish, within
// --shutdown-timeout.
func listenAndServe(ctx context.Context, cfg serveConfig, ln net.Listener, svc *service, stdout io.Writer, log *slog.Logger) error {
	httpSrv := cfg.server.httpServer(svc.api.Handler(), svc.api.ErrorLog())
	conns := server.NewConnLimiter(fitConnLimit(cfg.server.maxConns, log), cfg.server.maxConnsPerIP, svc.metrics)
	httpSrv.ConnState = conns.ConnState

	// The port was bound first thing (see serve); the limiter wraps it now.
	ln = conns.Listener(ln)
	scheme := "https"
	caFile := ""
	if cfg.tls.insecurePlaintext {
		scheme = "http"
		log.Warn("INSECURE: serving plain HTTP without TLS (--insecure-plaintext-http); tokens and keys cross the network in clear; never do this outside development")
	} else {
		tlsCfg, reloader, ca, err := newTLS(cfg.tls, cfg.listen, cfg.dataDir)
		if err != nil {
			ln.Close()
			return err
		}
		caFile = ca
		httpSrv.TLSConfig = tlsCfg
		ln = tlsListener(ln, tlsCfg)
		go reloader.Watch(ctx, cfg.tls.reloadInterval, func(err error) {
			log.Error("reloading the TLS certificate failed; keeping the previous one", "error", err.Error())
		})
		go reloadOnHUP(ctx, reloader, log)
	}
	addr := ln.Addr().String()
	if cfg.addrFile != "" {
		if err := writeFileAtomic(cfg.addrFile, []byte(addr+"\n")); err != nil {
			ln.Close()
			return fmt.Errorf("writing --addr-file: %w", err)
		}
	}
	log.Info("tenantcrypt serving", "url", scheme+"://"+addr, "database", svc.storeName, "ca_cert", caFile, "jwt_issuer", cfg.auth.verifier.Issuer)
	if caFile != "" {
		fmt.Fprintf(stdout, "tenantcrypt serving on %s://%s (trust the development CA in %s)\n", scheme, addr, caFile)
	} else {
		fmt.Fprintf(stdout, "tenantcrypt serving on %s://%s\n", scheme, addr)
	}

	errc := make(chan error, 1)
	go func() { errc <- httpSrv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests in flight", "timeout", cfg.server.shutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.server.shutdownTimeout)
	defer cancel()
	if err := httpSrv.Shutdown(sctx); err != nil {
		log.Warn("graceful shutdown timed out; closing connections", "error", err.Error())
		httpSrv.Close()
	}
	log.Info("tenantcrypt stopped")
	return nil
}

// registerHSMMetric counts the operations of the HSM that holds the root
// key (device; nil without one).
func registerHSMMetric(reg *prometheus.Registry, device internalkms.Device) {
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tenantcrypt_hsm_operations_total",
		Help: "Seals and opens of tenant KEKs by the HSM that holds the root key (0 without one): one per KEK cache miss, none per data-plane request."},
		func() float64 {
			if c, ok := device.(interface{ Operations() uint64 }); ok {
				return float64(c.Operations())
			}
			return 0
		}))
}

func registerKeyringMetrics(reg *prometheus.Registry, ring *keyring.Service) {
	stat := func(f func(keyring.CacheStats) float64) func() float64 {
		return func() float64 { return f(ring.CacheStats()) }
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tenantcrypt_datakey_cache_hits_total", Help: "Data-key cache hits."},
			stat(func(s keyring.CacheStats) float64 { return float64(s.Hits) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tenantcrypt_datakey_cache_misses_total", Help: "Data-key cache misses (each an unwrap by a KMS)."},
			stat(func(s keyring.CacheStats) float64 { return float64(s.Misses) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tenantcrypt_datakey_cache_evictions_total", Help: "Data keys evicted (and zeroed) from the cache."},
			stat(func(s keyring.CacheStats) float64 { return float64(s.Evictions) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tenantcrypt_datakey_cache_entries", Help: "Unwrapped data keys held in memory."},
			stat(func(s keyring.CacheStats) float64 { return float64(s.Entries) })),
	)
}

// providerLabel keeps the metric's cardinality bounded: the internal KMS's
// Ref, or cmkLabel for every customer managed key together (per-key detail
// belongs in the audit log, not in metric labels).
func providerLabel(ref kms.Ref) string {
	if ref.IsInternal() {
		return ref.String()
	}
	return cmkLabel
}

// cmkLabel is the provider label of every customer managed key.
const cmkLabel = "cmk"

func reloadOnHUP(ctx context.Context, r *tlsconfig.Reloader, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := r.Reload(); err != nil {
				log.Error("SIGHUP: reloading the TLS certificate failed; keeping the previous one", "error", err.Error())
			} else {
				log.Info("SIGHUP: TLS certificate reloaded")
			}
		}
	}
}
