package main

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
	"github.com/tenantcrypt/tenantcrypt/internal/server"
)

func parseServeConfig(t *testing.T, args ...string) serveConfig {
	t.Helper()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cfg serveConfig
	cfg.flags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parsing %q: %v", args, err)
	}
	return cfg
}

// TestServeConfigDefaults: without flags the configuration is valid, and
// each part hands its subsystem that subsystem's own defaults.
func TestServeConfigDefaults(t *testing.T) {
	t.Parallel()
	noEnv := func(string) string { return "" }
	cfg := parseServeConfig(t)
	if err := cfg.validate(noEnv); err != nil {
		t.Fatalf("the defaults do not validate: %v", err)
	}
	ring := cfg.keyring.config(cfg.lifecycle.times().refresh)
	mon := cfg.lifecycle.config()
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"key-max-uses", ring.MaxKeyUses, int64(keyring.DefaultMaxKeyUses)},
		{"key-max-age", ring.MaxKeyAge, keyring.DefaultMaxKeyAge},
		{"cache-max-entries", ring.Cache.MaxEntries, keyring.DefaultCacheMaxEntries},
		{"cache-ttl", ring.Cache.TTL, keyring.DefaultCacheTTL},
		{"cache-idle", ring.Cache.IdleTimeout, keyring.DefaultCacheIdleTimeout},
		{"tenant refresh", ring.TenantRefresh, lifecycle.DefaultRevocationBound / 5},
		{"key-check-interval", mon.Interval, lifecycle.DefaultInterval},
		{"key-check-concurrency", mon.Concurrency, lifecycle.DefaultConcurrency},
		{"max-request-bytes", cfg.server.api.MaxBodyBytes, int64(server.DefaultMaxBodyBytes)},
		{"keyprovider-reads-per-minute", cfg.server.api.ReadsPerMinute, server.DefaultReadsPerMinute},
		{"keyprovider-writes-per-minute", cfg.server.api.WritesPerMinute, server.DefaultWritesPerMinute},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestServeConfigValidation: each part refuses its own bad settings, with
// a message naming the flag, and only those.
func TestServeConfigValidation(t *testing.T) {
	t.Parallel()
	noEnv := func(string) string { return "" }
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--data-dir", ""}, "--data-dir must not be empty"},
		{[]string{"--database", "mysql://x"}, "--database must be"},
		{[]string{"--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--max-inflight", "0"}, "--max-inflight must be at least 1"},
		{[]string{"--body-read-timeout", "1ms"}, "--body-read-timeout must be at least 100ms"},
		{[]string{"--jwks-url", "http://idp"}, "--jwks-url must be an https:// URL"},
		{[]string{"--key-max-uses", "0"}, "--key-max-uses must be between 1 and 2^32"},
		{[]string{"--tenant-burst", "10"}, "--tenant-burst must be at least 1000"},
		{[]string{"--revocation-bound", "500ms"}, "--revocation-bound must be at least 1s"},
		{[]string{"--key-check-interval", "9s"}, "does not fit the --revocation-bound"},
		{[]string{"--region", "moon"}, `--region "moon" is not an AWS region name`},
		{[]string{"--kms-timeout", "1ms"}, "--kms-timeout must be at least 100ms"},
		{[]string{"--migration-lease", "1ms"}, "--migration-lease must be at least 300ms"},
		{[]string{"--audit-data-plane", "never"}, "--audit-data-plane must be per-minute or per-request"},
		{[]string{"--console-dev-tokens", "--jwks-file", "j.json"}, "--console-dev-tokens needs the built-in JWT issuer"},
		{[]string{"--log-format", "xml"}, "--log-format must be json or text"},
		{[]string{"--root-key-file", "k.json", "--pkcs11-module", "m.so"}, "excludes --root-key-file"},
	} {
		cfg := parseServeConfig(t, c.args...)
		err := cfg.validate(noEnv)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: validate() = %v, want an error saying %q", c.args, err, c.want)
		}
	}
}

// TestClosersStopInReverse: the parts stop in the reverse order of their
// making.
func TestClosersStopInReverse(t *testing.T) {
	t.Parallel()
	var stopped []int
	var c closers
	for i := range 3 {
		c.push(func() { stopped = append(stopped, i) })
	}
	c.close()
	if want := []int{2, 1, 0}; !slices.Equal(stopped, want) {
		t.Errorf("stopped %v, want %v", stopped, want)
	}
}
