package tlsconfig_test

import (
	"crypto/tls"
	"path/filepath"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/tlsconfig"
)

// mtlsSetup is a server that verifies client certificates against
// clientCA; serverCA is what clients trust.
type mtlsSetup struct {
	clientCA, otherCA *testCA
	serverCAFile      string
	clientCAFile      string
	reloader          *tlsconfig.Reloader
	addr              string
}

func newMTLSSetup(t *testing.T, require bool, maxVersion uint16) *mtlsSetup {
	t.Helper()
	dir := t.TempDir()
	s := &mtlsSetup{clientCA: newTestCA(t, "client CA"), otherCA: newTestCA(t, "other CA")}
	certFile, keyFile, caFile := operatorFiles(t, dir, newTestCA(t, "server CA"), "server")
	s.serverCAFile = caFile
	s.clientCAFile = filepath.Join(dir, "client-ca.pem")
	writeFile(t, s.clientCAFile, s.clientCA.certPEM(), 0o644)
	cfg, r := newServerConfig(t, tlsconfig.Options{
		CertFile:          certFile,
		KeyFile:           keyFile,
		ClientCAFile:      s.clientCAFile,
		RequireClientCert: require,
	})
	if maxVersion != 0 {
		// Through the per-connection config that the handshake uses.
		get := cfg.GetConfigForClient
		cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := get(hello)
			if c != nil {
				c = c.Clone()
				c.MaxVersion = maxVersion
			}
			return c, err
		}
	}
	s.reloader, s.addr = r, startServer(t, cfg)
	return s
}

// client returns a client config presenting the certificate named by
// which.
func (s *mtlsSetup) client(t *testing.T, which string) *tls.Config {
	t.Helper()
	cfg := clientConfig(t, s.serverCAFile)
	switch which {
	case "none":
	case "good":
		cfg.Certificates = []tls.Certificate{s.clientCA.clientCert(t, leafOptions{cn: "good client"})}
	case "other CA":
		// Presented even though the server asks for certificates of its
		// client CA (a Go client would otherwise send none), as by a
		// client that tries its luck.
		cert := s.otherCA.clientCert(t, leafOptions{cn: "other client"})
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	case "expired":
		cfg.Certificates = []tls.Certificate{s.clientCA.clientCert(t, leafOptions{cn: "expired client", notAfter: time.Now().Add(-time.Minute)})}
	case "server usage":
		certPEM, keyPEM := s.clientCA.issue(t, leafOptions{cn: "server-only client"}) // ExtKeyUsageServerAuth
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	default:
		t.Fatalf("no client %q", which)
	}
	return cfg
}

func TestMutualTLS(t *testing.T) {
	for _, tt := range []struct {
		name     string
		require  bool
		client   string
		wantPeer string // "": refused
	}{
		{"required, no certificate", true, "none", ""},
		{"required, certificate of the client CA", true, "good", "good client"},
		{"required, certificate of another CA", true, "other CA", ""},
		{"required, expired certificate", true, "expired", ""},
		{"required, certificate for servers only", true, "server usage", ""},
		{"if given, no certificate", false, "none", "-"},
		{"if given, certificate of the client CA", false, "good", "good client"},
		{"if given, certificate of another CA", false, "other CA", ""},
		{"if given, expired certificate", false, "expired", ""},
	} {
		for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			t.Run(tt.name+", "+tls.VersionName(version), func(t *testing.T) {
				s := newMTLSSetup(t, tt.require, version)
				resp, err := get(s.addr, s.client(t, tt.client))
				if tt.wantPeer == "" {
					if err == nil {
						t.Fatalf("connected, server saw client %q; want a refusal", resp.peer)
					}
					return
				}
				if err != nil {
					t.Fatalf("err = %v, want a connection", err)
				}
				if got, want := resp.peer, tt.wantPeer; got != want {
					t.Errorf("server saw client %q, want %q", got, want)
				}
				if got, want := resp.state.Version, version; got != want {
					t.Errorf("version = %s, want %s", tls.VersionName(got), tls.VersionName(want))
				}
			})
		}
	}
}

// TestMutualTLSReloadCA checks that a reloaded client CA file applies to
// the next handshake.
func TestMutualTLSReloadCA(t *testing.T) {
	s := newMTLSSetup(t, true, 0)
	good, other := s.client(t, "good"), s.client(t, "other CA")
	if _, err := get(s.addr, other); err == nil {
		t.Fatalf("client of the other CA connected before the reload")
	}

	writeFile(t, s.clientCAFile, s.otherCA.certPEM(), 0o644)
	if err := s.reloader.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	resp, err := get(s.addr, other)
	if err != nil {
		t.Fatalf("client of the new CA: %v", err)
	}
	if got, want := resp.peer, "other client"; got != want {
		t.Errorf("server saw client %q, want %q", got, want)
	}
	if _, err := get(s.addr, good); err == nil {
		t.Errorf("client of the replaced CA connected after the reload")
	}

	// A broken CA file keeps the current CA.
	writeFile(t, s.clientCAFile, []byte("garbage\n"), 0o644)
	if err := s.reloader.Reload(); err == nil {
		t.Errorf("Reload with a broken client CA file: err = nil, want an error")
	}
	if _, err := get(s.addr, other); err != nil {
		t.Errorf("after a failed reload: %v", err)
	}
}
