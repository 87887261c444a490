package tlsconfig_test

import (
	"crypto/fips140"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/tlsconfig"
)

func newServerConfig(t *testing.T, opts tlsconfig.Options) (*tls.Config, *tlsconfig.Reloader) {
	t.Helper()
	cfg, r, err := tlsconfig.NewServerConfig(opts)
	if err != nil {
		t.Fatalf("NewServerConfig: %v", err)
	}
	return cfg, r
}

// TestServerProtocols runs a real HTTPS server with NewServerConfig and
// checks which clients it accepts and what they negotiate.
func TestServerProtocols(t *testing.T) {
	// The development certificate (ECDSA) and an operator's RSA one.
	devFiles := ensureDev(t, devDir(t))
	rsaDir := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaCA := newTestCA(t, "RSA test CA")
	rsaCert, rsaKeyPEM := rsaCA.issue(t, leafOptions{cn: "rsa", key: rsaKey})
	writeFile(t, filepath.Join(rsaDir, "server.pem"), rsaCert, 0o644)
	writeFile(t, filepath.Join(rsaDir, "server-key.pem"), rsaKeyPEM, 0o600)
	writeFile(t, filepath.Join(rsaDir, "ca.pem"), rsaCA.certPEM(), 0o644)

	servers := make(map[string]string) // kind → address
	cas := map[string]string{"ecdsa": devFiles.CACert, "rsa": filepath.Join(rsaDir, "ca.pem")}
	for kind, opts := range map[string]tlsconfig.Options{
		"ecdsa":        {CertFile: devFiles.Cert, KeyFile: devFiles.Key},
		"rsa":          {CertFile: filepath.Join(rsaDir, "server.pem"), KeyFile: filepath.Join(rsaDir, "server-key.pem")},
		"ecdsa-tls1.3": {CertFile: devFiles.Cert, KeyFile: devFiles.Key, MinVersion: tls.VersionTLS13},
	} {
		cfg, _ := newServerConfig(t, opts)
		servers[kind] = startServer(t, cfg)
	}
	cas["ecdsa-tls1.3"] = cas["ecdsa"]

	const (
		tls10, tls11, tls12, tls13 = tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13
	)
	for _, tt := range []struct {
		name       string
		server     string
		min, max   uint16 // client versions; 0: Go's defaults
		suites     []uint16
		curves     []tls.CurveID
		wantErr    bool
		wantVer    uint16
		wantSuite  uint16 // 0: any
		wantCurve  tls.CurveID
		wantHTTP2  bool
		wantErrSay string
		// notFIPS: refused in FIPS 140-3 mode (not approved).
		notFIPS bool
	}{
		{name: "TLS 1.0 client", server: "ecdsa", min: tls10, max: tls10, wantErr: true, wantErrSay: "protocol version"},
		{name: "TLS 1.1 client", server: "ecdsa", min: tls10, max: tls11, wantErr: true, wantErrSay: "protocol version"},
		{name: "TLS 1.1 client, RSA certificate", server: "rsa", min: tls10, max: tls11, wantErr: true},
		{name: "TLS 1.2 AES-128-GCM", server: "ecdsa", max: tls12,
			suites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, wantVer: tls12, wantSuite: tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, wantHTTP2: true},
		{name: "TLS 1.2 AES-256-GCM", server: "ecdsa", max: tls12,
			suites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}, wantVer: tls12, wantSuite: tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, wantHTTP2: true},
		{name: "TLS 1.2 ChaCha20-Poly1305", server: "ecdsa", max: tls12,
			suites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}, wantVer: tls12, wantSuite: tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, wantHTTP2: true, notFIPS: true},
		{name: "TLS 1.2 CBC only", server: "ecdsa", max: tls12, wantErr: true, wantErrSay: "handshake failure",
			suites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}},
		{name: "TLS 1.2 RSA, ECDHE AES-GCM", server: "rsa", max: tls12,
			suites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}, wantVer: tls12, wantSuite: tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
		{name: "TLS 1.2 RSA, ECDHE ChaCha20-Poly1305", server: "rsa", max: tls12,
			suites: []uint16{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256}, wantVer: tls12, wantSuite: tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, notFIPS: true},
		{name: "TLS 1.2 RSA, CBC only", server: "rsa", max: tls12, wantErr: true,
			suites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA}},
		{name: "TLS 1.2 RSA key exchange (no forward secrecy)", server: "rsa", max: tls12, wantErr: true,
			suites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384}},
		{name: "TLS 1.2 P-384 only", server: "ecdsa", max: tls12, curves: []tls.CurveID{tls.CurveP384}, wantErr: true},
		{name: "TLS 1.2 P-256", server: "ecdsa", max: tls12, curves: []tls.CurveID{tls.CurveP256}, wantVer: tls12, wantCurve: tls.CurveP256},
		{name: "default client", server: "ecdsa", wantVer: tls13, wantCurve: tls.X25519MLKEM768, wantHTTP2: true},
		{name: "default client, RSA certificate", server: "rsa", wantVer: tls13, wantHTTP2: true},
		{name: "client allowing TLS 1.0 to 1.3", server: "ecdsa", min: tls10, max: tls13, wantVer: tls13},
		{name: "TLS 1.3 X25519", server: "ecdsa", min: tls13, curves: []tls.CurveID{tls.X25519}, wantVer: tls13, wantCurve: tls.X25519, notFIPS: true},
		{name: "TLS 1.3 P-256", server: "ecdsa", min: tls13, curves: []tls.CurveID{tls.CurveP256}, wantVer: tls13, wantCurve: tls.CurveP256},
		{name: "TLS 1.3 P-384 only", server: "ecdsa", min: tls13, curves: []tls.CurveID{tls.CurveP384}, wantErr: true},
		{name: "TLS 1.3 minimum, TLS 1.2 client", server: "ecdsa-tls1.3", max: tls12, wantErr: true, wantErrSay: "protocol version"},
		{name: "TLS 1.3 minimum, TLS 1.3 client", server: "ecdsa-tls1.3", wantVer: tls13},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := clientConfig(t, cas[tt.server])
			cfg.MinVersion, cfg.MaxVersion = tt.min, tt.max
			if tt.suites != nil {
				cfg.CipherSuites = tt.suites
			}
			cfg.CurvePreferences = tt.curves
			resp, err := get(servers[tt.server], cfg)
			if tt.notFIPS && fips140.Enabled() {
				if err == nil {
					t.Fatalf("connected with %s and %v in FIPS 140-3 mode, want a refused handshake",
						tls.CipherSuiteName(resp.state.CipherSuite), resp.state.CurveID)
				}
				return
			}
			if tt.wantErr && fips140.Enabled() && tt.min != 0 && tt.min < tls12 {
				// In FIPS mode the client itself refuses to offer them.
				tt.wantErrSay = "no supported versions"
			}
			if tt.wantErr {
				if err == nil {
					t.Fatalf("connected with TLS %s and %s, want a refused handshake",
						tls.VersionName(resp.state.Version), tls.CipherSuiteName(resp.state.CipherSuite))
				}
				if !strings.Contains(err.Error(), tt.wantErrSay) {
					t.Errorf("err = %v, want one saying %q", err, tt.wantErrSay)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v, want a connection", err)
			}
			if got, want := resp.state.Version, tt.wantVer; got != want {
				t.Errorf("version = %s, want %s", tls.VersionName(got), tls.VersionName(want))
			}
			if got, want := resp.state.CipherSuite, tt.wantSuite; want != 0 && got != want {
				t.Errorf("cipher suite = %s, want %s", tls.CipherSuiteName(got), tls.CipherSuiteName(want))
			}
			if got, want := resp.state.CurveID, tt.wantCurve; want != 0 && got != want {
				t.Errorf("key exchange = %v, want %v", got, want)
			}
			if got, want := resp.proto == "HTTP/2.0", tt.wantHTTP2; want && got != want {
				t.Errorf("protocol = %s, want HTTP/2.0", resp.proto)
			}
		})
	}
}

// TestServerConfigFields pins the settings of the returned config that the
// handshakes above cannot all show.
func TestServerConfigFields(t *testing.T) {
	files := ensureDev(t, devDir(t))
	cfg, _ := newServerConfig(t, tlsconfig.Options{CertFile: files.Cert, KeyFile: files.Key})
	if got, want := cfg.MinVersion, uint16(tls.VersionTLS12); got != want {
		t.Errorf("MinVersion = %s, want %s", tls.VersionName(got), tls.VersionName(want))
	}
	if got, want := strings.Join(cfg.NextProtos, ","), "h2,http/1.1"; got != want {
		t.Errorf("NextProtos = %s, want %s", got, want)
	}
	if cfg.GetCertificate == nil || len(cfg.Certificates) != 0 {
		t.Errorf("GetCertificate set = %v, %d fixed certificates; want the certificate from the Reloader only",
			cfg.GetCertificate != nil, len(cfg.Certificates))
	}
	if got, want := cfg.ClientAuth, tls.NoClientCert; got != want {
		t.Errorf("ClientAuth = %v, want %v", got, want)
	}
	insecure := make(map[uint16]bool)
	for _, s := range tls.InsecureCipherSuites() {
		insecure[s.ID] = true
	}
	for _, id := range cfg.CipherSuites {
		name := tls.CipherSuiteName(id)
		if insecure[id] || !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "_GCM_") || strings.Contains(name, "CHACHA20_POLY1305")) {
			t.Errorf("cipher suite %s is accepted; want ECDHE with an AEAD only", name)
		}
	}
}

func TestNewServerConfigErrors(t *testing.T) {
	dev := ensureDev(t, devDir(t))
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	writeFile(t, garbage, []byte("not PEM\n"), 0o600)
	otherKey := filepath.Join(dir, "other-key.pem")
	writeFile(t, otherKey, encodeKey(t, newECKey(t)), 0o600)
	ca := newTestCA(t, "test CA")
	expiredCert, expiredKey := ca.issue(t, leafOptions{cn: "expired", notAfter: time.Now().Add(-time.Minute)})
	writeFile(t, filepath.Join(dir, "expired.pem"), expiredCert, 0o644)
	writeFile(t, filepath.Join(dir, "expired-key.pem"), expiredKey, 0o600)

	for _, tt := range []struct {
		name    string
		opts    tlsconfig.Options
		wantErr string
	}{
		{"no certificate file", tlsconfig.Options{KeyFile: dev.Key}, "certificate file"},
		{"no key file", tlsconfig.Options{CertFile: dev.Cert}, "key file"},
		{"missing certificate file", tlsconfig.Options{CertFile: filepath.Join(dir, "missing.pem"), KeyFile: dev.Key}, "missing.pem"},
		{"garbage certificate", tlsconfig.Options{CertFile: garbage, KeyFile: dev.Key}, "garbage.pem"},
		{"key of another certificate", tlsconfig.Options{CertFile: dev.Cert, KeyFile: otherKey}, "does not match"},
		{"expired certificate", tlsconfig.Options{CertFile: filepath.Join(dir, "expired.pem"), KeyFile: filepath.Join(dir, "expired-key.pem")}, "expired"},
		{"TLS 1.1 minimum", tlsconfig.Options{CertFile: dev.Cert, KeyFile: dev.Key, MinVersion: tls.VersionTLS11}, "TLS 1.1"},
		{"unknown minimum", tlsconfig.Options{CertFile: dev.Cert, KeyFile: dev.Key, MinVersion: 0x0305}, "only TLS 1.2 and TLS 1.3"},
		{"client certificates without CA", tlsconfig.Options{CertFile: dev.Cert, KeyFile: dev.Key, RequireClientCert: true}, "client CA"},
		{"missing client CA", tlsconfig.Options{CertFile: dev.Cert, KeyFile: dev.Key, ClientCAFile: filepath.Join(dir, "missing-ca.pem")}, "missing-ca.pem"},
		{"client CA without certificates", tlsconfig.Options{CertFile: dev.Cert, KeyFile: dev.Key, ClientCAFile: garbage}, "no PEM certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, r, err := tlsconfig.NewServerConfig(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
			}
			if cfg != nil || r != nil {
				t.Errorf("config, reloader = %v, %v with an error; want nil, nil", cfg, r)
			}
		})
	}
}

// TestServerConfigFIPS: in FIPS 140-3 mode the configuration lists only
// approved suites and key exchanges; otherwise ChaCha20-Poly1305 and
// X25519 are offered too.
func TestServerConfigFIPS(t *testing.T) {
	t.Parallel()
	devFiles := ensureDev(t, devDir(t))
	cfg, _ := newServerConfig(t, tlsconfig.Options{CertFile: devFiles.Cert, KeyFile: devFiles.Key})
	client, err := tlsconfig.ClientConfig(devFiles.CACert)
	if err != nil {
		t.Fatal(err)
	}
	fips := fips140.Enabled()
	for _, suites := range [][]uint16{cfg.CipherSuites, client.CipherSuites} {
		if got := slices.Contains(suites, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256); got == fips {
			t.Errorf("FIPS mode %v: ChaCha20-Poly1305 offered: %v", fips, got)
		}
		if !slices.Contains(suites, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384) {
			t.Error("AES-256-GCM not offered")
		}
	}
	if got := slices.Contains(cfg.CurvePreferences, tls.X25519); got == fips {
		t.Errorf("FIPS mode %v: X25519 offered: %v", fips, got)
	}
	if !slices.Contains(cfg.CurvePreferences, tls.CurveP256) {
		t.Error("P-256 not offered")
	}
}
