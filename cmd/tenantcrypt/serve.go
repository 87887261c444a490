package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/audit"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
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

// serveConfig is everything `tenantcrypt serve` can be told.
type serveConfig struct {
	dataDir  string
	listen   string
	database string
	addrFile string

	rootKeyFile string
	hsm         hsmConfig

	tlsCert, tlsKey     string
	tlsClientCA         string
	tlsRequireClient    bool
	tlsHosts            listFlag
	insecurePlaintext   bool
	tlsReloadInterval   time.Duration
	maxRequestBytes     int64
	shutdownTimeout     time.Duration
	readHeaderTimeout   time.Duration
	requestTimeout      time.Duration
	idleTimeout         time.Duration
	bodyReadTimeout     time.Duration
	maxInflight         int
	maxConns            int
	maxConnsPerIP       int
	jwksFile, jwksURL   string
	jwtIssuer           string
	jwtAudience         string
	jwtSkew             time.Duration
	jwtMaxLifetime      time.Duration
	revocationBound     time.Duration
	keyCheckInterval    time.Duration
	idleCheckInterval   time.Duration
	keyCheckConcurrency int
	keyMaxUses          int64
	keyMaxAge           time.Duration
	cacheMaxEntries     int
	cacheTTL            time.Duration
	cacheIdle           time.Duration
	logLevel, logFmt    string
	disableSelfIssuer   bool
	region              string
	drRegion            listFlag
	kmsEndpoint         listFlag
	allowSingleRegion   bool
	kmsTimeout          time.Duration
	kmsProbeInterval    time.Duration
	auditKeyFile        string
	auditDataPlane      string
	auditRetention      time.Duration
	migrationRate       float64
	migrationLease      time.Duration
	kpReadsPerMinute    int
	kpWritesPerMinute   int
	tenantRate          float64
	tenantBurst         int
	consoleDevTokens    bool
}

func (c *serveConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.dataDir, "data-dir", "tenantcrypt-data", "directory for the SQLite database, the root key file, the issuer keys and the development TLS certificate")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8443", "address to serve HTTPS on (host:port; port 0 picks a free one)")
	fs.StringVar(&c.database, "database", "", "database: empty for SQLite in the data directory, sqlite:PATH, or a postgres:// DSN")
	fs.StringVar(&c.addrFile, "addr-file", "", "write the listening address to this file once serving (for scripts and tests)")
	fs.StringVar(&c.rootKeyFile, "root-key-file", "", "internal KMS root key file (default DATA-DIR/root-keys.json; created 0600); TENANTCRYPT_ROOT_KEYS=\"1:<base64>,...\" gives the keys themselves instead")
	c.hsm.flags(fs)
	fs.StringVar(&c.tlsCert, "tls-cert", "", "server certificate (PEM); without it a development certificate is generated in DATA-DIR/tls")
	fs.StringVar(&c.tlsKey, "tls-key", "", "server certificate's private key (PEM)")
	fs.StringVar(&c.tlsClientCA, "tls-client-ca", "", "CA file for client certificates (mutual TLS)")
	fs.BoolVar(&c.tlsRequireClient, "tls-require-client-cert", false, "refuse clients without a certificate signed by --tls-client-ca")
	fs.Var(&c.tlsHosts, "tls-host", "extra host name or IP for the development certificate (repeatable)")
	fs.BoolVar(&c.insecurePlaintext, "insecure-plaintext-http", false, "DEVELOPMENT ONLY: serve plain HTTP without TLS")
	fs.DurationVar(&c.tlsReloadInterval, "tls-reload-interval", 30*time.Second, "how often to check the certificate files for changes (SIGHUP reloads at once)")
	fs.Int64Var(&c.maxRequestBytes, "max-request-bytes", 1<<20, "largest request body accepted")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 20*time.Second, "how long a graceful shutdown waits for requests in flight")
	fs.DurationVar(&c.readHeaderTimeout, "read-header-timeout", 5*time.Second, "server timeout for reading request headers")
	fs.DurationVar(&c.requestTimeout, "request-timeout", 30*time.Second, "server timeout for reading a request and writing its answer")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 60*time.Second, "how long an idle keep-alive connection (HTTP/1.1 or HTTP/2) stays open; a load balancer in front should time out its idle connections sooner")
	fs.DurationVar(&c.bodyReadTimeout, "body-read-timeout", 10*time.Second, "how long a request body may take to arrive (408 beyond it)")
	fs.IntVar(&c.maxInflight, "max-inflight", server.DefaultMaxInflight, "most requests in progress on the whole server; beyond it 503 with Retry-After (/livez, /readyz and /metrics are exempt)")
	fs.IntVar(&c.maxConns, "max-conns", defaultMaxConns, "most open client connections; at the bound a new one replaces the longest idle one, or is closed if none is idle (lowered to fit the open-file limit)")
	fs.IntVar(&c.maxConnsPerIP, "max-conns-per-ip", 0, "most open connections per client address (0: no bound; behind a load balancer or on loopback every caller shares one address)")
	fs.StringVar(&c.jwksFile, "jwks-file", "", "verify tokens against the public keys in this JWKS file")
	fs.StringVar(&c.jwksURL, "jwks-url", "", "verify tokens against the JWKS at this https URL")
	fs.StringVar(&c.jwtIssuer, "jwt-issuer", auth.DefaultIssuerName, "required \"iss\" of tokens")
	fs.StringVar(&c.jwtAudience, "jwt-audience", auth.DefaultAudience, "required \"aud\" of tokens")
	fs.DurationVar(&c.jwtSkew, "jwt-skew", auth.DefaultSkew, "clock skew allowed when checking exp and nbf")
	fs.DurationVar(&c.jwtMaxLifetime, "jwt-max-lifetime", auth.DefaultMaxLifetime, "longest token lifetime accepted (iat, or now, to exp); 0: no limit")
	fs.BoolVar(&c.disableSelfIssuer, "disable-self-issuer", false, "do not publish the built-in issuer's keys (implied by --jwks-file/--jwks-url)")
	fs.DurationVar(&c.revocationBound, "revocation-bound", 10*time.Second, "longest time a tenant state change (a revoked key) takes to reach this process")
	fs.DurationVar(&c.keyCheckInterval, "key-check-interval", 0, "how often every customer managed key is checked (DescribeKey per tenant and region); 0: half the revocation bound")
	fs.DurationVar(&c.idleCheckInterval, "idle-key-check-interval", time.Hour, "how often the key of an idle tenant (active, and no replica holds any of its keys) is checked, for the status page and DR compliance; 0: every tenant every --key-check-interval")
	fs.IntVar(&c.keyCheckConcurrency, "key-check-concurrency", lifecycle.DefaultConcurrency, "how many tenants' keys are checked at once")
	fs.Int64Var(&c.keyMaxUses, "key-max-uses", 1<<30, "encryptions after which a tenant's data key is rotated")
	fs.DurationVar(&c.keyMaxAge, "key-max-age", 30*24*time.Hour, "age after which a tenant's data key is rotated")
	fs.IntVar(&c.cacheMaxEntries, "cache-max-entries", 10000, "most unwrapped data keys held in memory")
	fs.DurationVar(&c.cacheTTL, "cache-ttl", 15*time.Minute, "hard limit on how long an unwrapped data key stays in memory")
	fs.DurationVar(&c.cacheIdle, "cache-idle", 5*time.Minute, "an unwrapped data key unused this long is dropped")
	fs.StringVar(&c.region, "region", "us-east-1", "the service's own AWS region")
	fs.Var(&c.drRegion, "dr-region", "REGION=DR: the disaster-recovery region of a region (repeatable; defaults cover the common AWS regions)")
	fs.Var(&c.kmsEndpoint, "kms-endpoint", "REGION=URL: the AWS KMS endpoint of a region, e.g. a local-kms (repeatable)")
	fs.BoolVar(&c.allowSingleRegion, "allow-single-region-keys", false, "let tenants register customer managed keys that are not multi-region keys (no DR replica)")
	fs.DurationVar(&c.kmsTimeout, "kms-timeout", 5*time.Second, "timeout of one call attempt to a customer's key manager (AWS KMS; KMIP: per server of the cluster)")
	fs.DurationVar(&c.kmsProbeInterval, "kms-probe-interval", awskms.DefaultProbeInterval, "while a region's outage makes multi-region keys fail over to the DR region, how often the region is tried again")
	fs.Float64Var(&c.migrationRate, "migration-rate", migration.DefaultRate, "cipherkeys per second one tenant's migration rewraps (0: no cap); each is a Decrypt and an Encrypt at the KMS")
	fs.DurationVar(&c.migrationLease, "migration-lease", migration.DefaultLeaseTTL, "how long a replica's lease on a migration lasts unless renewed: another replica takes over a migration this long after its replica died")
	fs.IntVar(&c.kpReadsPerMinute, "keyprovider-reads-per-minute", 1000, "per-tenant limit of key-provider API reads (per replica)")
	fs.IntVar(&c.kpWritesPerMinute, "keyprovider-writes-per-minute", 100, "per-tenant limit of key-provider API writes (per replica)")
	fs.Float64Var(&c.tenantRate, "tenant-rate", 0, "each tenant's data-plane quota in operations per second, a batch counting its items (per replica; 0: no quota); a tenant's own quota overrides it")
	fs.IntVar(&c.tenantBurst, "tenant-burst", 0, "each tenant's data-plane burst, in operations (at least 1000, the largest batch; 0: one second's worth, at least 1000)")
	fs.BoolVar(&c.consoleDevTokens, "console-dev-tokens", false, "DEVELOPMENT ONLY: the console at /console/ mints tenant-admin tokens of the built-in issuer for anyone who can reach it")
	fs.StringVar(&c.auditKeyFile, "audit-key-file", "", "Ed25519 keys that sign audit checkpoints (default DATA-DIR/audit-signing-keys.json; created 0600); every replica needs the same file")
	fs.StringVar(&c.auditDataPlane, "audit-data-plane", "per-minute", "audit data-plane use as counts per minute (per-minute) or one event per request (per-request; requests are refused while the audit log cannot keep up)")
	fs.DurationVar(&c.auditRetention, "audit-retention", 0, "prune audit events older than this, at a signed checkpoint (0: keep every event)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFmt, "log-format", "json", "json or text")
}

func (c *serveConfig) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.dataDir == "" {
		bad("--data-dir must not be empty")
	}
	if _, _, err := net.SplitHostPort(c.listen); err != nil {
		bad("--listen %q must be host:port", c.listen)
	}
	if c.database != "" && !strings.HasPrefix(c.database, "postgres://") && !strings.HasPrefix(c.database, "postgresql://") && !strings.HasPrefix(c.database, "sqlite:") {
		bad("--database must be empty, sqlite:PATH or postgres://... (got a value of another form)")
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		bad("--tls-cert and --tls-key go together")
	}
	if c.tlsRequireClient && c.tlsClientCA == "" {
		bad("--tls-require-client-cert needs --tls-client-ca")
	}
	if c.insecurePlaintext && (c.tlsCert != "" || c.tlsClientCA != "") {
		bad("--insecure-plaintext-http cannot be combined with TLS settings")
	}
	if c.jwksFile != "" && c.jwksURL != "" {
		bad("give either --jwks-file or --jwks-url, not both")
	}
	if c.jwksURL != "" && !strings.HasPrefix(c.jwksURL, "https://") {
		bad("--jwks-url must be an https:// URL")
	}
	if c.jwtMaxLifetime < 0 {
		bad("--jwt-max-lifetime must not be negative (0 means no limit)")
	}
	if c.revocationBound < time.Second {
		bad("--revocation-bound must be at least 1s")
	}
	if c.revocationBound >= time.Second {
		if err := c.validateLifecycle(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.keyMaxUses < 1 || c.keyMaxUses > 1<<32 {
		bad("--key-max-uses must be between 1 and 2^32 (the limit for random GCM nonces)")
	}
	if c.maxRequestBytes < 1024 {
		bad("--max-request-bytes must be at least 1024")
	}
	if c.maxInflight < 1 {
		bad("--max-inflight must be at least 1")
	}
	if c.maxConns < 1 {
		bad("--max-conns must be at least 1")
	}
	if c.maxConnsPerIP < 0 {
		bad("--max-conns-per-ip must not be negative (0 means no bound)")
	}
	if c.bodyReadTimeout < 100*time.Millisecond {
		bad("--body-read-timeout must be at least 100ms")
	}
	if _, err := parseLevel(c.logLevel); err != nil {
		errs = append(errs, err)
	}
	if !regionPattern.MatchString(c.region) {
		bad("--region %q is not an AWS region name such as eu-west-1", c.region)
	}
	if _, err := drRegions(c.drRegion); err != nil {
		errs = append(errs, err)
	}
	if _, err := kmsEndpoints(c.kmsEndpoint); err != nil {
		errs = append(errs, err)
	}
	if c.kmsTimeout < 100*time.Millisecond {
		bad("--kms-timeout must be at least 100ms")
	}
	if c.kmsProbeInterval < 10*time.Millisecond {
		bad("--kms-probe-interval must be at least 10ms")
	}
	if c.kpReadsPerMinute < 1 || c.kpWritesPerMinute < 1 {
		bad("--keyprovider-reads-per-minute and --keyprovider-writes-per-minute must be at least 1")
	}
	if c.tenantRate < 0 || c.tenantRate > keyring.MaxQuotaRate {
		bad("--tenant-rate must be from 0 (no quota) to %g", float64(keyring.MaxQuotaRate))
	}
	if c.tenantBurst != 0 && c.tenantBurst < api.MaxBatchItems {
		bad("--tenant-burst must be at least %d (the largest batch), or 0 for one second's worth", api.MaxBatchItems)
	}
	if c.migrationRate < 0 {
		bad("--migration-rate must not be negative (0 means no cap)")
	}
	if c.migrationLease < 300*time.Millisecond {
		bad("--migration-lease must be at least 300ms")
	}
	if err := c.validateAudit(); err != nil {
		errs = append(errs, err)
	}
	if err := c.validateConsole(); err != nil {
		errs = append(errs, err)
	}
	if c.logFmt != "json" && c.logFmt != "text" {
		bad("--log-format must be json or text")
	}
	return errors.Join(errs...)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level must be debug, info, warn or error")
	}
	return l, nil
}

func newLogger(w io.Writer, format, level string) *slog.Logger {
	l, _ := parseLevel(level)
	opts := &slog.HandlerOptions{Level: l}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

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
	if err := errors.Join(cfg.validate(), telemetry.Check(env), cfg.validateHSM(env)); err != nil {
		fmt.Fprintf(stderr, "serve: invalid configuration:\n%v\n", err)
		return exitUsage
	}
	log := newLogger(stderr, cfg.logFmt, cfg.logLevel)
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

func openStore(ctx context.Context, cfg serveConfig) (store, func(), string, error) {
	switch {
	case strings.HasPrefix(cfg.database, "postgres://"), strings.HasPrefix(cfg.database, "postgresql://"):
		st, err := postgres.Open(ctx, cfg.database)
		if err != nil {
			return nil, nil, "", err
		}
		return st, st.Close, "postgres", nil
	default:
		path := strings.TrimPrefix(cfg.database, "sqlite:")
		if path == "" {
			path = filepath.Join(cfg.dataDir, "tenantcrypt.db")
		}
		st, err := sqlite.Open(ctx, path)
		if err != nil {
			return nil, nil, "", err
		}
		return st, func() { st.Close() }, "sqlite " + path, nil
	}
}

func loadRootKeys(cfg serveConfig, env func(string) string, log *slog.Logger) (*internalkms.RootKeys, error) {
	if v := env("TENANTCRYPT_ROOT_KEYS"); v != "" {
		log.Info("internal KMS root keys from the environment")
		return internalkms.ParseRootKeys(v)
	}
	path := cfg.rootKeyFile
	if path == "" {
		path = filepath.Join(cfg.dataDir, "root-keys.json")
	}
	if cfg.database == "" && filepath.Dir(path) == filepath.Clean(cfg.dataDir) {
		log.Warn("the root key file is in the same directory as the database: fine for development; in production keep it apart (--root-key-file or TENANTCRYPT_ROOT_KEYS)", "root_key_file", path)
	}
	return internalkms.LoadOrCreateRootKeyFile(path)
}

// validateHSM checks the --pkcs11-* flags, which exclude the other root
// key sources.
func (c *serveConfig) validateHSM(env func(string) string) error {
	err := c.hsm.validate(env)
	if c.hsm.enabled() && (c.rootKeyFile != "" || env("TENANTCRYPT_ROOT_KEYS") != "") {
		err = errors.Join(err, errors.New("an HSM root key (--pkcs11-*) excludes --root-key-file and TENANTCRYPT_ROOT_KEYS; "+
			"to move a file's keys into the HSM, see `tenantcrypt rootkey migrate`"))
	}
	return err
}

// loadRoot opens the internal KMS's root key: in the HSM the --pkcs11-*
// flags name (device is then that HSM), or else from the environment or the
// root key file, after checking that the database does not record an HSM
// root key, so that a start without the HSM is refused before it creates
// a key file. release closes or zeroes what it opened.
func loadRoot(ctx context.Context, cfg serveConfig, env func(string) string, st store, log *slog.Logger) (root internalkms.Root, device internalkms.Device, release func(), err error) {
	if cfg.hsm.enabled() {
		dev, err := cfg.hsm.open(env)
		if err != nil {
			return nil, nil, nil, err
		}
		rec, err := internalkms.OpenDevice(ctx, dev, st)
		if err != nil {
			dev.Close()
			return nil, nil, nil, err
		}
		log.Info("internal KMS root key in an HSM (PKCS#11)", "pkcs11_module", cfg.hsm.module, "pkcs11_token", rec.Token,
			"key_label", rec.KeyLabel, "root_version", rec.Current)
		return dev, dev, dev.Close, nil
	}
	if err := internalkms.CheckFileRoot(ctx, st); err != nil {
		return nil, nil, nil, err
	}
	roots, err := loadRootKeys(cfg, env, log)
	if err != nil {
		return nil, nil, nil, err
	}
	return roots, nil, roots.Destroy, nil
}

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
	// Tracing starts first and stops last, so that the last spans go out.
	tracing, stopTracing, err := setupTracing(ctx, env, log)
	if err != nil {
		return fmt.Errorf("configuring OpenTelemetry: %w", err)
	}
	defer stopTracing()
	st, closeStore, storeName, err := openStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("opening the database: %w", err)
	}
	defer closeStore()
	// The audit log starts first and closes last, after everything that
	// records into it has stopped, so that no event is lost at shutdown.
	auditLog, auditSigner, err := openAudit(cfg, st, log)
	if err != nil {
		return fmt.Errorf("opening the audit log: %w", err)
	}
	defer auditLog.Close()
	sink := auditSink{log: auditLog, slg: log}
	roots, device, releaseRoot, err := loadRoot(ctx, cfg, env, st, log)
	if err != nil {
		return fmt.Errorf("loading the internal KMS root keys: %w", err)
	}
	defer releaseRoot()
	internal := internalkms.New(roots, st)
	defer internal.Close()
	reg := prometheus.NewRegistry()
	registerFIPSMetric(reg)
	logFIPSMode(log)
	kmsCalls := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tenantcrypt_kms_operations_total",
		Help: "Calls to key providers (KMSs) by provider, operation and result.",
	}, []string{"provider", "op", "result"})
	reg.MustRegister(kmsCalls)
	initKMSSeries(kmsCalls)
	registerAuditMetrics(reg, auditLog)
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tenantcrypt_hsm_operations_total",
		Help: "Seals and opens of tenant KEKs by the HSM that holds the root key (0 without one): one per KEK cache miss, none per data-plane request."},
		func() float64 {
			if c, ok := device.(interface{ Operations() uint64 }); ok {
				return float64(c.Operations())
			}
			return 0
		}))
	drs, _ := drRegions(cfg.drRegion)
	endpoints, _ := kmsEndpoints(cfg.kmsEndpoint)
	regionEvents := newRegionMetrics(reg, log, homeRegions(cfg.region, drs)...)
	aws, err := awskms.New(ctx, awskms.Config{Region: cfg.region, Endpoints: endpoints, CallTimeout: cfg.kmsTimeout,
		ProbeInterval: cfg.kmsProbeInterval, OnCall: sink.kmsCall, APIOptions: tracingAPIOptions(tracing),
		OnRegionEvent: func(e awskms.RegionEvent) { regionEvents(e); sink.regionEvent(e) }})
	if err != nil {
		return fmt.Errorf("setting up AWS KMS: %w", err)
	}
	// The kinds of customer managed key this service serves; the
	// key-provider service owns their registrations.
	awsKind, err := awskind.New(awskind.Config{Client: aws, Region: cfg.region, DRRegions: drs,
		AllowSingleRegion: cfg.allowSingleRegion,
		RegionHealth: func(region string) (bool, time.Time) {
			h := aws.RegionHealth(region)
			return h.Healthy, h.Since
		}})
	if err != nil {
		return err
	}
	// KMIP keys: the customer's own key manager; the registration carries
	// its client certificate, and the client key is stored wrapped by the
	// internal KMS.
	kmipKind := kmipkind.New(kmipkind.Config{Timeout: cfg.kmsTimeout, OnCall: sink.kmipCall})
	keyProviders, err := keyprovider.New(keyprovider.Config{
		Store: st, Tenants: st, Kinds: []keyprovider.Kind{awsKind, kmipKind}, Secrets: internal, Logger: log,
	})
	if err != nil {
		return err
	}
	providers := providers.New(internal, append([]providers.Option{providers.WithCMKs(keyProviders), providers.WithObserver(func(ref kms.Ref, op string, err error) {
		kmsCalls.WithLabelValues(providerLabel(ref), op, kms.Outcome(err)).Inc()
	})}, tracingRegistryOptions(tracing)...)...)

	lt := cfg.lifecycleTimes()
	lm := newLifecycleMetrics(reg, st, log)
	initLifecycleSeries(lm, homeRegions(cfg.region, drs))
	var monitor *lifecycle.Monitor // set below; the keyring tells it of keys refused on use
	ring, err := keyring.New(keyring.Config{
		Store: tracing.KeyringStore(st), Providers: providers,
		MaxKeyUses: cfg.keyMaxUses, MaxKeyAge: cfg.keyMaxAge,
		// A state change made by another process is seen within a fifth
		// of the revocation bound.
		TenantRefresh: lt.refresh,
		Cache:         keyring.CacheConfig{MaxEntries: cfg.cacheMaxEntries, TTL: cfg.cacheTTL, IdleTimeout: cfg.cacheIdle},
		TenantQuota:   cfg.tenantQuota(),
		OnStateChange: func(c keyring.StateChange) { lm.stateChanged(c); sink.stateChange(c) },
		OnKeyRotated:  sink.keyRotated,
		OnKeyRefused:  func(tenantID, _ string, _ error) { monitor.Notify(tenantID) },
		Logger:        log,
	})
	if err != nil {
		return err
	}
	defer ring.Close()
	defer followChanges(st, ring, reg, lt.refresh, log)()
	replica := replicaID(log)
	monitor, err = lifecycle.New(lifecycle.Config{
		Store: st, Tenants: ring, KeyProviders: keyProviders,
		Interval: lt.interval, IdleInterval: cfg.idleCheckInterval, Timeout: lt.timeout, Concurrency: cfg.keyCheckConcurrency, Owner: replica,
		Checked: func(region, result string) { lm.checks.WithLabelValues(region, result).Inc() },
		Claimed: func(_ int, late time.Duration) { lm.lag.Set(late.Seconds()) },
		Logger:  log,
	})
	if err != nil {
		return err
	}
	monitor.Start()
	defer monitor.Close()

	migRewrapped := prometheus.NewCounter(prometheus.CounterOpts{Name: "tenantcrypt_migration_cipherkeys_rewrapped_total",
		Help: "Cipherkeys rewrapped by provider migrations (its rate is the migrations' speed)."})
	migFailures := prometheus.NewCounter(prometheus.CounterOpts{Name: "tenantcrypt_migration_batch_failures_total",
		Help: "Migration batches that failed and are retried."})
	migRunning := prometheus.NewGauge(prometheus.GaugeOpts{Name: "tenantcrypt_migrations_running",
		Help: "Provider migrations this process is working on."})
	reg.MustRegister(migRewrapped, migFailures, migRunning)
	migrations, err := migration.New(migration.Config{
		Store: st, KeyProviders: keyProviders, Keyring: ring, Providers: providers, Rate: cfg.migrationRate, Logger: log,
		Owner: replica, LeaseTTL: cfg.migrationLease,
		Hooks: migration.Hooks{
			Rewrapped:   func(n int) { migRewrapped.Add(float64(n)) },
			BatchFailed: migFailures.Inc,
			Running:     func(d int) { migRunning.Add(float64(d)) },
		},
	})
	if err != nil {
		return err
	}
	defer migrations.Close()
	migrations.Start() // resumes unfinished migrations, now and whenever a replica leaves one

	// After a root key rotation, rewrap every tenant KEK under the current
	// root version, in the background (package rotation, which also serves
	// the internal KMS's rotation API); replicas doing the same at once are
	// safe (each rewrap is a compare-and-swap).
	rcfg := rotation.Config{KMS: internal, Store: st, Tenants: ring, RootKeyFile: rootKeyFile(cfg, env), Logger: log}
	if device != nil {
		rcfg.Device = deviceRotator{dev: device, st: st}
	}
	rotations, err := rotation.New(rcfg)
	if err != nil {
		return err
	}
	defer rotations.Close()
	if err := rotations.Start(); err != nil {
		log.Error("rewrapping tenant KEKs under the current root key could not start; it is retried at the next start", "error", err.Error())
	}
	if device != nil {
		// Replicas agree on the HSM root key version within a refresh.
		go followRootRecord(ctx, device, st, lt.refresh, func(ctx context.Context) error {
			_, err := rotations.ReloadRootKeys(ctx)
			return err
		}, log)
	}

	verifier, jwks, err := newVerifier(cfg, log)
	if err != nil {
		return err
	}

	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerKeyringMetrics(reg, ring)

	srv := server.New(server.Config{
		Keyring: ring,
		Auth:    verifier,
		JWKS:    jwks,
		Ready: []server.Check{
			{Name: "database", Fn: func(ctx context.Context) error { _, err := st.ListTenants(ctx, "", 1); return err }},
			{Name: "internal-kms", Fn: internal.Check},
		},
		Registry:        reg,
		MaxBodyBytes:    cfg.maxRequestBytes,
		MaxInflight:     cfg.maxInflight,
		BodyReadTimeout: cfg.bodyReadTimeout,
		RevocationBound: cfg.revocationBound,
		KeyProviders:    keyProviders,
		Migrations:      migrations,
		InternalKMS:     rotations,
		Lifecycle:       monitor,
		Audit:           auditLog,
		AuditLog:        &server.AuditReader{Store: st, PublicKeys: auditSigner.PublicKeys},
		ReadsPerMinute:  cfg.kpReadsPerMinute,
		WritesPerMinute: cfg.kpWritesPerMinute,
		Console:         newConsole(cfg, log),
		Logger:          log,
		Tracer:          tracing.Tracer(),
		Propagator:      tracing.Propagator(),
	})
	httpSrv := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: cfg.readHeaderTimeout,
		ReadTimeout:       cfg.requestTimeout,
		WriteTimeout:      cfg.requestTimeout,
		IdleTimeout:       cfg.idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          srv.ErrorLog(),
		HTTP2:             http2Config(cfg),
	}
	conns := server.NewConnLimiter(fitConnLimit(cfg.maxConns, log), cfg.maxConnsPerIP, reg)
	httpSrv.ConnState = conns.ConnState

	// The port was bound first thing (see above); the limiter wraps it now.
	ln = conns.Listener(ln)
	scheme := "https"
	caFile := ""
	if cfg.insecurePlaintext {
		scheme = "http"
		log.Warn("INSECURE: serving plain HTTP without TLS (--insecure-plaintext-http); tokens and keys cross the network in clear; never do this outside development")
	} else {
		tlsCfg, reloader, ca, err := newTLS(cfg)
		if err != nil {
			ln.Close()
			return err
		}
		caFile = ca
		httpSrv.TLSConfig = tlsCfg
		ln = tlsListener(ln, tlsCfg)
		go reloader.Watch(ctx, cfg.tlsReloadInterval, func(err error) {
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
	log.Info("tenantcrypt serving", "url", scheme+"://"+addr, "database", storeName, "ca_cert", caFile, "jwt_issuer", cfg.jwtIssuer)
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
	log.Info("shutting down: finishing requests in flight", "timeout", cfg.shutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if err := httpSrv.Shutdown(sctx); err != nil {
		log.Warn("graceful shutdown timed out; closing connections", "error", err.Error())
		httpSrv.Close()
	}
	log.Info("tenantcrypt stopped")
	return nil
}

func newVerifier(cfg serveConfig, log *slog.Logger) (*auth.Verifier, func() any, error) {
	var keys auth.KeySource
	var jwks func() any
	switch {
	case cfg.jwksFile != "":
		f, err := auth.NewJWKSFile(cfg.jwksFile)
		if err != nil {
			return nil, nil, err
		}
		keys = f
	case cfg.jwksURL != "":
		u, err := auth.NewJWKSURL(cfg.jwksURL, &http.Client{Timeout: 10 * time.Second}, 5*time.Minute)
		if err != nil {
			return nil, nil, err
		}
		keys = u
	default:
		iss, err := auth.LoadOrCreateIssuer(cfg.dataDir, cfg.jwtIssuer)
		if err != nil {
			return nil, nil, fmt.Errorf("loading the built-in issuer's keys: %w", err)
		}
		keys = iss.KeySource()
		if !cfg.disableSelfIssuer {
			jwks = func() any { return iss.JWKS() }
		}
		log.Info("verifying tokens of the built-in issuer; mint them with `tenantcrypt token`", "issuer", cfg.jwtIssuer)
	}
	maxLifetime := cfg.jwtMaxLifetime
	if maxLifetime == 0 {
		maxLifetime = -1 // the verifier's "no limit"
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{Issuer: cfg.jwtIssuer, Audience: cfg.jwtAudience, Skew: cfg.jwtSkew,
		MaxLifetime: maxLifetime, Keys: keys})
	if err != nil {
		return nil, nil, err
	}
	return v, jwks, nil
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

// tenantQuota is the server's default data-plane quota (--tenant-rate,
// --tenant-burst): none at rate 0; a burst of 0 is one second's worth, and
// never less than the largest batch.
func (c *serveConfig) tenantQuota() keyring.Quota {
	if c.tenantRate <= 0 {
		return keyring.Quota{}
	}
	burst := c.tenantBurst
	if burst == 0 {
		burst = max(api.MaxBatchItems, int(math.Ceil(c.tenantRate)))
	}
	return keyring.Quota{Rate: c.tenantRate, Burst: burst}
}
