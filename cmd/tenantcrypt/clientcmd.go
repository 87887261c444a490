package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/client"
	"github.com/tenantcrypt/tenantcrypt/internal/tlsconfig"
)

// clientFlags are the flags of every command that talks to a server.
type clientFlags struct {
	server    string
	token     string
	tokenFile string
	caCert    string
	dataDir   string
	timeout   time.Duration
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.server, "server", "https://127.0.0.1:8443", "the tenantcrypt server's URL")
	fs.StringVar(&c.token, "token", "", "bearer token (better given as TENANTCRYPT_TOKEN, which other users cannot see)")
	fs.StringVar(&c.tokenFile, "token-file", "", "read the bearer token from this file (re-read on every run)")
	fs.StringVar(&c.caCert, "ca-cert", "", "CA certificate to trust (default: DATA-DIR/tls/ca.pem if it exists, else the system's roots)")
	fs.StringVar(&c.dataDir, "data-dir", "tenantcrypt-data", "the server's data directory, to find its development CA")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "how long to wait for the server")
}

func (c *clientFlags) client() (*client.Client, error) {
	if c.token == "" && c.tokenFile != "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("reading --token-file: %w", err)
		}
		c.token = strings.TrimSpace(string(b))
	}
	if c.token == "" {
		return nil, errors.New("a token is required: set TENANTCRYPT_TOKEN, --token or --token-file (mint one with `tenantcrypt token`)")
	}
	opts := []client.Option{client.WithToken(c.token)}
	ca := c.caCert
	if ca == "" {
		if p := filepath.Join(c.dataDir, "tls", "ca.pem"); fileExists(p) {
			ca = p
		}
	}
	if ca != "" && strings.HasPrefix(c.server, "https://") {
		tlsCfg, err := tlsconfig.ClientConfig(ca)
		if err != nil {
			return nil, err
		}
		opts = append(opts, client.WithTLSConfig(tlsCfg))
	}
	return client.New(c.server, opts...)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// parseClientFlags parses a client command's flags, filling them from the
// environment, and returns the positional arguments. ok is false when the
// command must return code at once (-h: usage printed, 0; bad flags: 2).
func parseClientFlags(fs *flag.FlagSet, synopsis string, args []string, env func(string) string, stdout, stderr io.Writer) (pos []string, code int, ok bool) {
	// Flags may come before or after the positional arguments
	// (`tenant get acme --token-file t`), as people type them.
	for {
		if code, ok := parseFlags(fs, synopsis, args, stdout, stderr); !ok {
			return nil, code, false
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if err := resolveFlags(fs, "", env); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return nil, exitUsage, false
	}
	return pos, exitOK, true
}

// fail prints err and returns the exit code a script can branch on.
func fail(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
	if untrustedCertificate(err) {
		// Not retryable: the same call fails the same way until the CLI is
		// told which CA to trust.
		fmt.Fprintf(stderr, "%s: the server's TLS certificate is not trusted: give its CA with --ca-cert FILE, "+
			"or the server's data directory with --data-dir DIR (the CLI then trusts DIR/tls/ca.pem, the development CA); "+
			"--data-dir defaults to ./tenantcrypt-data in the current directory\n", cmd)
		return exitFailure
	}
	var ce *client.Error
	if !errors.As(err, &ce) {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED) {
			return exitUnavailable
		}
		// Many errors have a Timeout method (*os.PathError, *url.Error);
		// only those that say true are timeouts.
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() || strings.Contains(err.Error(), "connection refused") {
			return exitUnavailable
		}
		return exitFailure
	}
	switch {
	case ce.StatusCode == http.StatusNotFound:
		return exitNotFound
	case ce.StatusCode == http.StatusUnauthorized || ce.StatusCode == http.StatusForbidden && ce.Code == api.CodeForbidden:
		return exitAuth
	case ce.Retryable():
		return exitUnavailable
	}
	return exitFailure
}

// untrustedCertificate reports whether err is a failed verification of the
// server's certificate chain or name.
func untrustedCertificate(err error) bool {
	var (
		cve *tls.CertificateVerificationError
		ua  x509.UnknownAuthorityError
		ci  x509.CertificateInvalidError
		he  x509.HostnameError
	)
	return errors.As(err, &cve) || errors.As(err, &ua) || errors.As(err, &ci) || errors.As(err, &he)
}

func printJSON(w io.Writer, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	fmt.Fprintln(w, string(b))
}
