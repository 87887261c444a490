package main

import (
	"bufio"
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	exampleConfig = "../../docs/examples/tenantcrypt.json"
	exampleUnit   = "../../docs/examples/tenantcrypt.service"
)

// TestExampleConfig: the sample config file in docs/examples is accepted by
// serve's own flag and config resolution and validation, and says what it
// seems to say. (Its paths are a production machine's, so no server starts.)
func TestExampleConfig(t *testing.T) {
	t.Parallel()
	noEnv := func(string) string { return "" }
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cfg serveConfig
	cfg.flags(fs)
	fs.String("config", "", "")
	if err := fs.Parse([]string{"--config", exampleConfig}); err != nil {
		t.Fatal(err)
	}
	if err := resolveFlags(fs, exampleConfig, noEnv); err != nil {
		t.Fatalf("%s: %v", exampleConfig, err)
	}
	if err := cfg.validate(noEnv); err != nil {
		t.Fatalf("%s does not validate:\n%v", exampleConfig, err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"data-dir", cfg.dataDir, "/var/lib/tenantcrypt"},
		{"listen", cfg.listen, "0.0.0.0:8443"},
		{"root-key-file", cfg.root.file, "/etc/tenantcrypt/keys/root-keys.json"},
		{"audit-key-file", cfg.audit.keyFile, "/etc/tenantcrypt/keys/audit-signing-keys.json"},
		{"tls-cert", cfg.tls.cert, "/etc/tenantcrypt/tls/server.pem"},
		{"jwks-url", cfg.auth.jwksURL, "https://idp.example.com/.well-known/jwks.json"},
		{"jwt-issuer", cfg.auth.verifier.Issuer, "https://idp.example.com/"},
		{"region", cfg.aws.region, "eu-west-1"},
		{"dr-region", strings.Join(cfg.aws.drRegion, ","), "eu-west-1=eu-west-3"},
		{"audit-retention", cfg.audit.log.Retention.String(), (8760 * time.Hour).String()},
	} {
		if c.got != c.want {
			t.Errorf("%s: %s = %q, want %q", exampleConfig, c.name, c.got, c.want)
		}
	}
	if !strings.HasPrefix(cfg.database, "postgres://") || cfg.migration.svc.Rate != 200 {
		t.Errorf("%s: database %q, migration-rate %v", exampleConfig, cfg.database, cfg.migration.svc.Rate)
	}

	// The real command reads the same file: with one setting overridden by
	// a bad value, that is the only problem it reports.
	var stderr bytes.Buffer
	code := run(t.Context(), []string{"serve", "--config", exampleConfig, "--listen", "nonsense"}, noEnv, strings.NewReader(""), io.Discard, &stderr)
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if code != exitUsage || len(lines) != 2 || !strings.Contains(lines[1], `--listen "nonsense"`) {
		t.Errorf("serve --config %s --listen nonsense: exit %d, stderr:\n%s\nwant exit 2 and only the --listen problem", exampleConfig, code, stderr.String())
	}
}

// TestExampleSystemdUnit: the sample unit runs serve with the sample config,
// lets it write only its data directory, and keeps the hardening the
// production checklist promises.
func TestExampleSystemdUnit(t *testing.T) {
	t.Parallel()
	f, err := os.Open(exampleUnit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	settings := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			settings[k] = append(settings[k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ExecStart":               "/usr/local/bin/tenantcrypt serve --config /etc/tenantcrypt/tenantcrypt.json",
		"ReadWritePaths":          "/var/lib/tenantcrypt",
		"LimitCORE":               "0",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"CapabilityBoundingSet":   "",
		"UMask":                   "0077",
		"MemoryDenyWriteExecute":  "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"SystemCallArchitectures": "native",
		"StateDirectory":          "tenantcrypt",
		"StateDirectoryMode":      "0700",
		"User":                    "tenantcrypt",
		"KillSignal":              "SIGTERM",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
	}
	for k, v := range want {
		if !slices.Contains(settings[k], v) {
			t.Errorf("%s: %s = %q, want %q", exampleUnit, k, settings[k], v)
		}
	}
	// The config's data directory is the one writable path.
	if got := filepath.Clean(settings["ReadWritePaths"][0]); got != "/var/lib/tenantcrypt" {
		t.Errorf("ReadWritePaths %q is not the sample config's data-dir", got)
	}
}
