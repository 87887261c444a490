package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/tenantcrypt/tenantcrypt/internal/tlsconfig"
)

// newTLS builds the listener's TLS config from the operator's certificate,
// or else from a development certificate in the data directory. It
// returns the development CA's path for clients to trust ("" with an
// operator certificate).
func newTLS(cfg serveConfig) (*tls.Config, *tlsconfig.Reloader, string, error) {
	opts := tlsconfig.Options{CertFile: cfg.tlsCert, KeyFile: cfg.tlsKey, ClientCAFile: cfg.tlsClientCA, RequireClientCert: cfg.tlsRequireClient}
	ca := ""
	if cfg.tlsCert == "" {
		hosts := append([]string(nil), cfg.tlsHosts...)
		if h, _, err := net.SplitHostPort(cfg.listen); err == nil && h != "" && h != "0.0.0.0" && h != "::" {
			hosts = append(hosts, h)
		}
		dev, err := tlsconfig.EnsureDevCertificate(filepath.Join(cfg.dataDir, "tls"), hosts)
		if err != nil {
			return nil, nil, "", fmt.Errorf("preparing the development TLS certificate: %w", err)
		}
		opts.CertFile, opts.KeyFile, ca = dev.Cert, dev.Key, dev.CACert
	}
	tlsCfg, reloader, err := tlsconfig.NewServerConfig(opts)
	if err != nil {
		return nil, nil, "", err
	}
	return tlsCfg, reloader, ca, nil
}

func tlsListener(ln net.Listener, cfg *tls.Config) net.Listener { return tls.NewListener(ln, cfg) }

// writeFileAtomic writes data to path through a temporary file and a rename,
// so that a reader never sees half of it.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
