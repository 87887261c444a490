package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/tlsconfig"
)

// tlsConfig is the listener's part: its certificate, client certificates,
// and the development mode without TLS.
type tlsConfig struct {
	cert, key         string
	clientCA          string
	requireClient     bool
	hosts             listFlag
	insecurePlaintext bool
	reloadInterval    time.Duration
}

func (c *tlsConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.cert, "tls-cert", "", "server certificate (PEM); without it a development certificate is generated in DATA-DIR/tls")
	fs.StringVar(&c.key, "tls-key", "", "server certificate's private key (PEM)")
	fs.StringVar(&c.clientCA, "tls-client-ca", "", "CA file for client certificates (mutual TLS)")
	fs.BoolVar(&c.requireClient, "tls-require-client-cert", false, "refuse clients without a certificate signed by --tls-client-ca")
	fs.Var(&c.hosts, "tls-host", "extra host name or IP for the development certificate (repeatable)")
	fs.BoolVar(&c.insecurePlaintext, "insecure-plaintext-http", false, "DEVELOPMENT ONLY: serve plain HTTP without TLS")
	fs.DurationVar(&c.reloadInterval, "tls-reload-interval", 30*time.Second, "how often to check the certificate files for changes (SIGHUP reloads at once)")
}

func (c *tlsConfig) validate() error {
	var errs []error
	if (c.cert == "") != (c.key == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	if c.requireClient && c.clientCA == "" {
		errs = append(errs, errors.New("--tls-require-client-cert needs --tls-client-ca"))
	}
	if c.insecurePlaintext && (c.cert != "" || c.clientCA != "") {
		errs = append(errs, errors.New("--insecure-plaintext-http cannot be combined with TLS settings"))
	}
	return errors.Join(errs...)
}

// newTLS builds the listener's TLS config from the operator's certificate,
// or else from a development certificate in the data directory. It
// returns the development CA's path for clients to trust ("" with an
// operator certificate).
func newTLS(cfg tlsConfig, listen, dataDir string) (*tls.Config, *tlsconfig.Reloader, string, error) {
	opts := tlsconfig.Options{CertFile: cfg.cert, KeyFile: cfg.key, ClientCAFile: cfg.clientCA, RequireClientCert: cfg.requireClient}
	ca := ""
	if cfg.cert == "" {
		hosts := append([]string(nil), cfg.hosts...)
		if h, _, err := net.SplitHostPort(listen); err == nil && h != "" && h != "0.0.0.0" && h != "::" {
			hosts = append(hosts, h)
		}
		dev, err := tlsconfig.EnsureDevCertificate(filepath.Join(dataDir, "tls"), hosts)
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
