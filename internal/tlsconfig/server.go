package tlsconfig

import (
	"crypto/fips140"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
)

// Options configures [NewServerConfig].
type Options struct {
	// CertFile is the server's certificate in PEM, followed by any
	// intermediate certificates. Required.
	CertFile string
	// KeyFile is the certificate's private key in PEM. Required.
	//
	// Unlike the development certificate's key, its mode is not checked:
	// it is provisioned by the operator's tools (a Kubernetes secret
	// volume, for one, is 0644 by default), which own its protection.
	KeyFile string
	// ClientCAFile, if set, turns on mutual TLS: client certificates are
	// verified against the CA certificates in this PEM file, and nothing
	// else, and must allow client authentication.
	ClientCAFile string
	// RequireClientCert refuses clients without a certificate. Without it
	// (and with ClientCAFile) a client may present no certificate, but one
	// it presents must verify. It requires ClientCAFile.
	RequireClientCert bool
	// MinVersion is the lowest TLS version accepted: tls.VersionTLS12 (the
	// default, for 0) or tls.VersionTLS13. Older versions are refused.
	MinVersion uint16
}

// cipherSuites are the TLS 1.2 suites accepted: ECDHE for forward secrecy
// and an AEAD, and nothing else (no CBC, no RSA key exchange). TLS 1.3
// suites are all AEAD and not configurable.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// curves are the key exchanges accepted, Go's own preference among them:
// the post-quantum hybrids, then X25519 and P-256.
var curves = []tls.CurveID{
	tls.X25519MLKEM768,
	tls.SecP256r1MLKEM768,
	tls.X25519,
	tls.CurveP256,
}

// fipsCipherSuites and fipsCurves are the same lists in FIPS 140-3 mode,
// without what FIPS 140-3 does not approve: ChaCha20-Poly1305 and plain
// X25519 (the ML-KEM hybrids are approved through ML-KEM, as Go's
// crypto/tls allows them in that mode). crypto/tls would drop those
// itself in FIPS mode; saying so here keeps the configuration honest.
var (
	fipsCipherSuites = []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	}
	fipsCurves = []tls.CurveID{
		tls.X25519MLKEM768,
		tls.SecP256r1MLKEM768,
		tls.CurveP256,
	}
)

// suitesAndCurves returns the lists for the process's FIPS 140-3 mode.
func suitesAndCurves() ([]uint16, []tls.CurveID) {
	if fips140.Enabled() {
		return slices.Clone(fipsCipherSuites), slices.Clone(fipsCurves)
	}
	return slices.Clone(cipherSuites), slices.Clone(curves)
}

// NewServerConfig returns the TLS configuration of a tenantcrypt listener
// and the [Reloader] that serves its certificate, having loaded the files
// named by opts once; it fails if they do not load, if the certificate has
// expired, or if opts is inconsistent.
//
// The config accepts TLS 1.2 and 1.3 (1.3 is negotiated whenever the
// client has it), only ECDHE AEAD cipher suites for TLS 1.2, key exchange
// with X25519, P-256 and their ML-KEM hybrids, and offers ALPN h2 and
// http/1.1. In FIPS 140-3 mode ChaCha20-Poly1305 and plain X25519 are
// left out. Hand it to tls.NewListener or http.Server.TLSConfig as it is.
// With ClientCAFile each handshake takes its settings from the Reloader's
// current state (so that a reloaded CA applies), so fields changed on the
// returned config then have no effect; the config still carries the CA
// loaded first, so that a copy without its GetConfigForClient never falls
// back to the system's roots.
func NewServerConfig(opts Options) (*tls.Config, *Reloader, error) {
	if opts.CertFile == "" || opts.KeyFile == "" {
		return nil, nil, errors.New("tlsconfig: a server certificate needs both a certificate file and a key file")
	}
	minVersion := opts.MinVersion
	switch minVersion {
	case 0:
		minVersion = tls.VersionTLS12
	case tls.VersionTLS12, tls.VersionTLS13:
	default:
		return nil, nil, fmt.Errorf("tlsconfig: minimum TLS version %s: only TLS 1.2 and TLS 1.3 are allowed",
			tls.VersionName(minVersion))
	}
	clientAuth := tls.NoClientCert
	switch {
	case opts.ClientCAFile != "" && opts.RequireClientCert:
		clientAuth = tls.RequireAndVerifyClientCert
	case opts.ClientCAFile != "":
		clientAuth = tls.VerifyClientCertIfGiven
	case opts.RequireClientCert:
		return nil, nil, errors.New("tlsconfig: requiring client certificates needs a client CA file to verify them")
	}

	suites, curves := suitesAndCurves()
	base := &tls.Config{
		MinVersion:       minVersion,
		CipherSuites:     suites,
		CurvePreferences: curves,
		NextProtos:       []string{"h2", "http/1.1"},
		ClientAuth:       clientAuth,
	}
	r := &Reloader{
		certFile:     opts.CertFile,
		keyFile:      opts.KeyFile,
		clientCAFile: opts.ClientCAFile,
		base:         base,
	}
	base.GetCertificate = r.GetCertificate
	if err := r.Reload(); err != nil {
		return nil, nil, err
	}
	cfg := base.Clone()
	if s := r.state.Load(); s.config != nil {
		cfg.ClientCAs = s.config.ClientCAs
		cfg.GetConfigForClient = r.configForClient
	}
	return cfg, r, nil
}
