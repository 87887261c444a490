package tlsconfig

import (
	"crypto/tls"
	"errors"
	"fmt"
)

// ClientConfig returns a client TLS configuration that trusts the CA
// certificates in the PEM file caFile and nothing else, not even the
// system's roots, with TLS 1.2 at least and, for TLS 1.2, the same AEAD
// suites as the server. It is for the CLI and tests talking to a server
// with the development certificate (caFile is then [DevFiles.CACert]) or a
// private CA. For mutual TLS, set Certificates on the result; the server
// name comes from the address dialed (http.Transport sets it).
func ClientConfig(caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, errors.New("tlsconfig: a client config needs a CA file to trust")
	}
	pool, err := loadCAPool(caFile)
	if err != nil {
		return nil, fmt.Errorf("tlsconfig: CA file: %w", err)
	}
	suites, _ := suitesAndCurves()
	return &tls.Config{
		RootCAs:      pool,
		MinVersion:   tls.VersionTLS12,
		CipherSuites: suites,
	}, nil
}
