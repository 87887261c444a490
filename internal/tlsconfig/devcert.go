package tlsconfig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The files EnsureDevCertificate keeps in its directory.
const (
	devCACertName = "ca.pem"
	devCAKeyName  = "ca-key.pem"
	devCertName   = "server.pem"
	devKeyName    = "server-key.pem"
	devLockName   = ".devcert.lock"
)

const (
	devCAName = "tenantcrypt development CA"
	devOrg    = "tenantcrypt development"
	// devCAYears is the CA's lifetime: long, because every client that
	// trusts ca.pem breaks when it is replaced.
	devCAYears = 10
	// devCertValidity stays below the 398 days that browsers and Apple
	// platforms accept for a TLS server certificate.
	devCertValidity = 365 * 24 * time.Hour
	// devRenewBefore is how long before its expiry a certificate is
	// reissued, so a server started today does not serve one that expires
	// tomorrow.
	devRenewBefore = 30 * 24 * time.Hour
	// devBackdate tolerates clients whose clocks are slightly behind.
	devBackdate = time.Hour
)

// defaultDevHosts are in every development certificate: what a client on
// the same machine dials.
var defaultDevHosts = []string{"localhost", "127.0.0.1", "::1"}

// DevFiles names the files of a development certificate made by
// [EnsureDevCertificate]. The CA's private key, ca-key.pem, sits beside
// them and is used only to issue server certificates.
type DevFiles struct {
	// CACert is the development CA's certificate (ca.pem, mode 0644), the
	// file that clients trust, for example through [ClientConfig].
	CACert string
	// Cert is the server certificate (server.pem, mode 0644), for
	// [Options.CertFile].
	Cert string
	// Key is the server certificate's private key (server-key.pem, mode
	// 0600), for [Options.KeyFile].
	Key string
}

// EnsureDevCertificate makes sure that dir (by convention the data
// directory's "tls" subdirectory, created with mode 0700 if missing) holds
// a development CA and a server certificate that it signed, and returns
// their paths, for `tenantcrypt serve` when the operator has given no
// certificate.
//
// The CA (ECDSA P-256, "tenantcrypt development CA", valid 10 years) is
// created once, as ca.pem (0644) and ca-key.pem (0600), and kept. The
// server certificate (server.pem, 0644, and server-key.pem, 0600; ECDSA
// P-256, valid one year) names localhost, 127.0.0.1 and ::1 plus hosts,
// which are DNS names (a leading "*." for a wildcard) or IP addresses;
// empty entries and unspecified addresses such as 0.0.0.0 are skipped.
// Existing files are reused as they are; the server certificate is
// reissued under the same CA when it expires within 30 days, lacks one of
// the hosts, or was not signed by the CA, so clients that trust ca.pem keep
// working.
//
// It refuses a private key file that its group or others may access
// rather than use a key that may have leaked, and a ca-key.pem that is not
// a private key rather than replace the CA that clients trust. Several
// processes may call it on one directory at once.
func EnsureDevCertificate(dir string, hosts []string) (DevFiles, error) {
	return ensureDevCertificate(dir, hosts, time.Now())
}

func ensureDevCertificate(dir string, hosts []string, now time.Time) (DevFiles, error) {
	want, err := parseHosts(append(slices.Clone(defaultDevHosts), hosts...))
	if err != nil {
		return DevFiles{}, err
	}
	files := DevFiles{
		CACert: filepath.Join(dir, devCACertName),
		Cert:   filepath.Join(dir, devCertName),
		Key:    filepath.Join(dir, devKeyName),
	}
	caKeyFile := filepath.Join(dir, devCAKeyName)

	// Usually everything is in place: check without writing anything, so
	// that no lock (and no writable directory) is needed.
	ca, err := readDevCA(files.CACert, caKeyFile, now)
	if err != nil {
		return DevFiles{}, err
	}
	if ca.usable() {
		ok, err := devCertUsable(files, ca, want, now)
		if err != nil || ok {
			return files, err
		}
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return DevFiles{}, fmt.Errorf("tlsconfig: development certificate directory: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return DevFiles{}, err
	}
	defer unlock()
	// Another process may have done the work while we waited: look again.
	ca, err = readDevCA(files.CACert, caKeyFile, now)
	if err != nil {
		return DevFiles{}, err
	}
	if ca.key == nil {
		if ca.key, err = newDevKey(caKeyFile); err != nil {
			return DevFiles{}, err
		}
		ca.cert = nil
	}
	if ca.cert == nil {
		// With the key it already has, if any: server certificates it
		// signed stay valid, and so does a ca.pem that a client copied.
		if ca.cert, err = newDevCACert(files.CACert, ca.key, now); err != nil {
			return DevFiles{}, err
		}
	}
	ok, err := devCertUsable(files, ca, want, now)
	if err != nil || ok {
		return files, err
	}
	if err := newDevCert(files, ca, want, now); err != nil {
		return DevFiles{}, err
	}
	return files, nil
}

// devCA is the development CA as found on disk.
type devCA struct {
	// key is nil if ca-key.pem does not exist.
	key crypto.Signer
	// cert is nil if ca.pem is missing, is not a CA certificate for key, or
	// expires before a server certificate issued now would.
	cert *x509.Certificate
}

func (ca devCA) usable() bool { return ca.key != nil && ca.cert != nil }

// readDevCA reads the development CA. It fails only where carrying on
// would be wrong: a key file that others may read or that holds no key.
func readDevCA(certFile, keyFile string, now time.Time) (devCA, error) {
	var ca devCA
	data, err := readFile(keyFile, true)
	if errors.Is(err, fs.ErrNotExist) {
		return ca, nil
	}
	if err != nil {
		return ca, fmt.Errorf("tlsconfig: development CA key: %w", err)
	}
	if ca.key, err = parsePrivateKeyPEM(data); err != nil {
		return ca, fmt.Errorf("tlsconfig: development CA key %s: %w "+
			"(remove it and %s to create a new development CA, which clients must then trust instead)",
			keyFile, err, filepath.Base(certFile))
	}
	data, err = readFile(certFile, false)
	if err != nil {
		return ca, nil // made anew from the key
	}
	certs, err := parseCertificatesPEM(data)
	if err != nil || len(certs) != 1 {
		return ca, nil
	}
	cert := certs[0]
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	switch {
	case !cert.BasicConstraintsValid || !cert.IsCA,
		!ok || !pub.Equal(ca.key.Public()),
		now.Before(cert.NotBefore),
		now.Add(devCertValidity + devRenewBefore).After(cert.NotAfter):
		return ca, nil
	}
	ca.cert = cert
	return ca, nil
}

// devCertUsable reports whether the server certificate on disk can be
// served: its key matches, the CA signed it for server authentication, it
// is valid for more than devRenewBefore and names every host in want.
func devCertUsable(files DevFiles, ca devCA, want hostSet, now time.Time) (bool, error) {
	keyData, err := readFile(files.Key, true)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("tlsconfig: development server key: %w", err)
	}
	defer clear(keyData)
	key, err := parsePrivateKeyPEM(keyData)
	if err != nil {
		return false, nil // ours, and of no use: reissue
	}
	certData, err := readFile(files.Cert, false)
	if err != nil {
		return false, nil
	}
	certs, err := parseCertificatesPEM(certData)
	if err != nil {
		return false, nil
	}
	leaf := certs[0]
	if pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(key.Public()) {
		return false, nil
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	_, err = leaf.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil || now.Add(devRenewBefore).After(leaf.NotAfter) {
		return false, nil
	}
	return want.coveredBy(leaf), nil
}

// newDevKey writes a new ECDSA P-256 key to path, mode 0600.
func newDevKey(path string) (crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tlsconfig: generating a key: %w", err)
	}
	data, err := encodePrivateKeyPEM(key)
	if err != nil {
		return nil, fmt.Errorf("tlsconfig: encoding a key: %w", err)
	}
	defer clear(data)
	if err := writeFileAtomic(path, data, 0o600); err != nil {
		return nil, err
	}
	return key, nil
}

// newDevCACert writes a self-signed CA certificate for key to path, mode
// 0644. The subject is always the same, so that a certificate made anew
// for the same key verifies the server certificates of the old one.
func newDevCACert(path string, key crypto.Signer, now time.Time) (*x509.Certificate, error) {
	tmpl := &x509.Certificate{
		// SerialNumber nil: CreateCertificate picks a random one.
		Subject:               pkix.Name{Organization: []string{devOrg}, CommonName: devCAName},
		NotBefore:             now.Add(-devBackdate),
		NotAfter:              now.AddDate(devCAYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // it signs server certificates, never another CA
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("tlsconfig: creating the development CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("tlsconfig: creating the development CA: %w", err)
	}
	if err := writeFileAtomic(path, encodeCertificatePEM(der), 0o644); err != nil {
		return nil, err
	}
	return cert, nil
}

// newDevCert issues a server certificate for hosts with a new key and
// writes both. The key goes first: a crash in between leaves a pair that
// does not match, which the next start replaces.
func newDevCert(files DevFiles, ca devCA, hosts hostSet, now time.Time) error {
	key, err := newDevKey(files.Key)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{devOrg}, CommonName: "tenantcrypt development server"},
		NotBefore:             now.Add(-devBackdate),
		NotAfter:              now.Add(devCertValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              hosts.dns,
		IPAddresses:           hosts.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return fmt.Errorf("tlsconfig: issuing the development server certificate: %w", err)
	}
	return writeFileAtomic(files.Cert, encodeCertificatePEM(der), 0o644)
}

// hostSet is the names a development certificate must carry.
type hostSet struct {
	dns []string // lower case, without a trailing dot
	ips []net.IP
}

// parseHosts sorts hosts into DNS names and IP addresses, dropping
// duplicates, empty entries and unspecified addresses, which no client
// dials.
func parseHosts(hosts []string) (hostSet, error) {
	var set hostSet
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if len(h) >= 2 && h[0] == '[' && h[len(h)-1] == ']' {
			h = h[1 : len(h)-1]
		}
		if h == "" {
			continue
		}
		if addr, err := netip.ParseAddr(h); err == nil {
			if addr.Zone() != "" {
				return hostSet{}, fmt.Errorf("tlsconfig: host %q: a certificate cannot name an IPv6 zone", h)
			}
			addr = addr.Unmap()
			if addr.IsUnspecified() {
				continue
			}
			ip := net.IP(addr.AsSlice())
			if !slices.ContainsFunc(set.ips, ip.Equal) {
				set.ips = append(set.ips, ip)
			}
			continue
		}
		name := strings.TrimSuffix(strings.ToLower(h), ".")
		if !validDNSName(name) {
			return hostSet{}, fmt.Errorf("tlsconfig: host %q is neither a DNS name nor an IP address", h)
		}
		if !slices.Contains(set.dns, name) {
			set.dns = append(set.dns, name)
		}
	}
	return set, nil
}

// validDNSName accepts what a certificate may name: labels of letters,
// digits, '-' and '_', at most 63 bytes each and 253 in all, the first of
// which may be a lone "*".
func validDNSName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for i, label := range strings.Split(name, ".") {
		if label == "*" && i == 0 && name != "*" {
			continue
		}
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// coveredBy reports whether cert names every host of s, literally: a
// wildcard is covered by the same wildcard only.
func (s hostSet) coveredBy(cert *x509.Certificate) bool {
	for _, name := range s.dns {
		if !slices.ContainsFunc(cert.DNSNames, func(n string) bool { return strings.EqualFold(n, name) }) {
			return false
		}
	}
	for _, ip := range s.ips {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}
