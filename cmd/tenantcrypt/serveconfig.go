package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strings"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
	"github.com/tenantcrypt/tenantcrypt/internal/telemetry"
)

// serveConfig is everything `tenantcrypt serve` can be told: where the
// process keeps its state and listens, and one part per subsystem. Each
// part registers its own flags, whose defaults are its subsystem's (the
// Default constants of its package, defined there once), validates
// itself, and gives its subsystem the Config that the flags filled;
// serve adds the subsystem's dependencies to it.
type serveConfig struct {
	dataDir  string
	listen   string
	database string
	addrFile string

	root      rootConfig      // the internal KMS's root key (internalkms.go)
	tls       tlsConfig       // the listener's certificate (tls.go)
	server    serverConfig    // the HTTP server's limits and timeouts (edge.go)
	auth      authConfig      // token verification (verifier.go)
	keyring   keyringConfig   // data keys, their cache, quotas
	lifecycle lifecycleConfig // the revocation bound and key checks (lifecycle.go)
	aws       awsConfig       // AWS KMS regions and endpoints (regions.go)
	migration migrationConfig // provider migrations
	audit     auditConfig     // the audit log (auditlog.go)
	console   consoleConfig   // the admin console (console.go)
	log       logConfig
}

func (c *serveConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.dataDir, "data-dir", "tenantcrypt-data", "directory for the SQLite database, the root key file, the issuer keys and the development TLS certificate")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8443", "address to serve HTTPS on (host:port; port 0 picks a free one)")
	fs.StringVar(&c.database, "database", "", "database: empty for SQLite in the data directory, sqlite:PATH, or a postgres:// DSN")
	fs.StringVar(&c.addrFile, "addr-file", "", "write the listening address to this file once serving (for scripts and tests)")
	c.root.flags(fs)
	c.tls.flags(fs)
	c.server.flags(fs)
	c.auth.flags(fs)
	c.keyring.flags(fs)
	c.lifecycle.flags(fs)
	c.aws.flags(fs)
	c.migration.flags(fs)
	c.console.flags(fs)
	c.audit.flags(fs)
	c.log.flags(fs)
}

// validate checks every part; env gives the settings that only the
// environment holds (an HSM PIN, the root keys, OpenTelemetry's).
func (c *serveConfig) validate(env func(string) string) error {
	return errors.Join(
		c.validateProcess(),
		c.tls.validate(),
		c.server.validate(),
		c.auth.validate(),
		c.lifecycle.validate(),
		c.keyring.validate(),
		c.log.validate(),
		c.aws.validate(),
		c.migration.validate(),
		c.audit.validate(),
		c.console.validate(c.auth),
		telemetry.Check(env),
		c.root.validate(env),
	)
}

func (c *serveConfig) validateProcess() error {
	var errs []error
	if c.dataDir == "" {
		errs = append(errs, errors.New("--data-dir must not be empty"))
	}
	if _, _, err := net.SplitHostPort(c.listen); err != nil {
		errs = append(errs, fmt.Errorf("--listen %q must be host:port", c.listen))
	}
	if c.database != "" && !isPostgres(c.database) && !strings.HasPrefix(c.database, "sqlite:") {
		errs = append(errs, errors.New("--database must be empty, sqlite:PATH or postgres://... (got a value of another form)"))
	}
	return errors.Join(errs...)
}

func isPostgres(database string) bool {
	return strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://")
}

// keyringConfig is the keyring's part: when data keys rotate, the cache
// of unwrapped data keys, and every tenant's default data-plane quota.
type keyringConfig struct {
	// ring holds what the flags set of keyring.Config: MaxKeyUses,
	// MaxKeyAge and Cache.
	ring        keyring.Config
	tenantRate  float64
	tenantBurst int
}

func (c *keyringConfig) flags(fs *flag.FlagSet) {
	fs.Int64Var(&c.ring.MaxKeyUses, "key-max-uses", keyring.DefaultMaxKeyUses, "encryptions after which a tenant's data key is rotated")
	fs.DurationVar(&c.ring.MaxKeyAge, "key-max-age", keyring.DefaultMaxKeyAge, "age after which a tenant's data key is rotated")
	fs.IntVar(&c.ring.Cache.MaxEntries, "cache-max-entries", keyring.DefaultCacheMaxEntries, "most unwrapped data keys held in memory")
	fs.DurationVar(&c.ring.Cache.TTL, "cache-ttl", keyring.DefaultCacheTTL, "hard limit on how long an unwrapped data key stays in memory")
	fs.DurationVar(&c.ring.Cache.IdleTimeout, "cache-idle", keyring.DefaultCacheIdleTimeout, "an unwrapped data key unused this long is dropped")
	fs.Float64Var(&c.tenantRate, "tenant-rate", 0, "each tenant's data-plane quota in operations per second, a batch counting its items (per replica; 0: no quota); a tenant's own quota overrides it")
	fs.IntVar(&c.tenantBurst, "tenant-burst", 0, "each tenant's data-plane burst, in operations (at least 1000, the largest batch; 0: one second's worth, at least 1000)")
}

func (c *keyringConfig) validate() error {
	var errs []error
	if c.ring.MaxKeyUses < 1 || c.ring.MaxKeyUses > keyring.MaxKeyUsesLimit {
		errs = append(errs, errors.New("--key-max-uses must be between 1 and 2^32 (the limit for random GCM nonces)"))
	}
	if c.tenantRate < 0 || c.tenantRate > keyring.MaxQuotaRate {
		errs = append(errs, fmt.Errorf("--tenant-rate must be from 0 (no quota) to %g", float64(keyring.MaxQuotaRate)))
	}
	if c.tenantBurst != 0 && c.tenantBurst < api.MaxBatchItems {
		errs = append(errs, fmt.Errorf("--tenant-burst must be at least %d (the largest batch), or 0 for one second's worth", api.MaxBatchItems))
	}
	return errors.Join(errs...)
}

// config is the keyring.Config of the flags, with the tenant refresh that
// the revocation bound allows (see lifecycleConfig.times); serve adds the
// keyring's dependencies.
func (c *keyringConfig) config(refresh time.Duration) keyring.Config {
	k := c.ring
	k.TenantRefresh = refresh
	k.TenantQuota = c.tenantQuota()
	return k
}

// tenantQuota is the server's default data-plane quota (--tenant-rate,
// --tenant-burst): none at rate 0; a burst of 0 is one second's worth, and
// never less than the largest batch.
func (c *keyringConfig) tenantQuota() keyring.Quota {
	if c.tenantRate <= 0 {
		return keyring.Quota{}
	}
	burst := c.tenantBurst
	if burst == 0 {
		burst = max(api.MaxBatchItems, int(math.Ceil(c.tenantRate)))
	}
	return keyring.Quota{Rate: c.tenantRate, Burst: burst}
}

// migrationConfig is the provider migrations' part.
type migrationConfig struct {
	// svc holds what the flags set of migration.Config: Rate, LeaseTTL.
	svc migration.Config
}

func (c *migrationConfig) flags(fs *flag.FlagSet) {
	fs.Float64Var(&c.svc.Rate, "migration-rate", migration.DefaultRate, "cipherkeys per second one tenant's migration rewraps (0: no cap); each is a Decrypt and an Encrypt at the KMS")
	fs.DurationVar(&c.svc.LeaseTTL, "migration-lease", migration.DefaultLeaseTTL, "how long a replica's lease on a migration lasts unless renewed: another replica takes over a migration this long after its replica died")
}

func (c *migrationConfig) validate() error {
	var errs []error
	if c.svc.Rate < 0 {
		errs = append(errs, errors.New("--migration-rate must not be negative (0 means no cap)"))
	}
	if c.svc.LeaseTTL < 300*time.Millisecond {
		errs = append(errs, errors.New("--migration-lease must be at least 300ms"))
	}
	return errors.Join(errs...)
}

// logConfig is the process log's part.
type logConfig struct {
	level, format string
}

func (c *logConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.level, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.format, "log-format", "json", "json or text")
}

func (c *logConfig) validate() error {
	_, err := parseLevel(c.level)
	if c.format != "json" && c.format != "text" {
		err = errors.Join(err, errors.New("--log-format must be json or text"))
	}
	return err
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
