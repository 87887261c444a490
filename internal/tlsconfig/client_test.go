package tlsconfig_test

import (
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/internal/tlsconfig"
)

func TestClientConfig(t *testing.T) {
	dev := ensureDev(t, devDir(t))
	cfg, _ := newServerConfig(t, tlsconfig.Options{CertFile: dev.Cert, KeyFile: dev.Key})
	addr := startServer(t, cfg)
	dir := t.TempDir()
	otherCA := filepath.Join(dir, "other-ca.pem")
	writeFile(t, otherCA, newTestCA(t, "tenantcrypt development CA").certPEM(), 0o644)
	both := filepath.Join(dir, "both.pem")
	writeFile(t, both, append(readFile(t, otherCA), readFile(t, dev.CACert)...), 0o644)

	for _, tt := range []struct {
		name    string
		caFile  string
		wantErr string // "": connects
	}{
		{"development CA", dev.CACert, ""},
		{"file with two CAs", both, ""},
		{"another CA", otherCA, "unknown authority"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client, err := tlsconfig.ClientConfig(tt.caFile)
			if err != nil {
				t.Fatalf("ClientConfig: %v", err)
			}
			if got, want := client.MinVersion, uint16(tls.VersionTLS12); got != want {
				t.Errorf("MinVersion = %s, want %s", tls.VersionName(got), tls.VersionName(want))
			}
			_, err = get(addr, client)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("err = %v, want a connection", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("err = %v, want one saying %q", err, tt.wantErr)
			}
		})
	}
}

func TestClientConfigErrors(t *testing.T) {
	dir := t.TempDir()
	keyOnly := filepath.Join(dir, "key.pem")
	writeFile(t, keyOnly, encodeKey(t, newECKey(t)), 0o600)
	for _, tt := range []struct {
		name    string
		caFile  string
		wantErr string
	}{
		{"no file", "", "needs a CA file"},
		{"missing file", filepath.Join(dir, "missing.pem"), "missing.pem"},
		{"no certificate in file", keyOnly, "no PEM certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tlsconfig.ClientConfig(tt.caFile)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
			}
			if cfg != nil {
				t.Errorf("config = %v with an error, want nil", cfg)
			}
		})
	}
}
