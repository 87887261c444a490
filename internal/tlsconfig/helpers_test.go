package tlsconfig_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/tlsconfig"
)

// testCA is a CA made by a test, to issue operator and client certificates.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key := newECKey(t)
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	return &testCA{cert: createCert(t, tmpl, tmpl, key.Public(), key), key: key}
}

// certPEM is the CA certificate in PEM.
func (ca *testCA) certPEM() []byte { return encodeCert(ca.cert) }

// leafOptions describes a certificate for testCA.issue.
type leafOptions struct {
	cn       string
	client   bool      // for client authentication instead of server authentication
	notAfter time.Time // zero: in a day
	key      crypto.Signer
}

// issue returns a certificate for 127.0.0.1 and localhost with its key,
// both in PEM.
func (ca *testCA) issue(t *testing.T, o leafOptions) (certPEM, keyPEM []byte) {
	t.Helper()
	if o.key == nil {
		o.key = newECKey(t)
	}
	if o.notAfter.IsZero() {
		o.notAfter = time.Now().Add(24 * time.Hour)
	}
	usage := x509.ExtKeyUsageServerAuth
	if o.client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: o.cn},
		NotBefore:   o.notAfter.Add(-48 * time.Hour),
		NotAfter:    o.notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if _, ok := o.key.(*rsa.PrivateKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	return encodeCert(createCert(t, tmpl, ca.cert, o.key.Public(), ca.key)), encodeKey(t, o.key)
}

// clientCert returns a client certificate issued by ca for tls.Config.Certificates.
func (ca *testCA) clientCert(t *testing.T, o leafOptions) tls.Certificate {
	t.Helper()
	o.client = true
	certPEM, keyPEM := ca.issue(t, o)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func createCert(t *testing.T, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func encodeCert(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

func encodeKey(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// writeFile replaces path by rename, as deployment tools do, so that a
// reader never sees half a file.
func writeFile(t *testing.T, path string, data []byte, perm os.FileMode) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, perm); err != nil { // whatever the umask
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// loadPair reads a certificate and its key as EnsureDevCertificate wrote
// them.
func loadPair(t *testing.T, certFile, keyFile string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return pair.Leaf, pair.PrivateKey.(crypto.Signer)
}

// operatorFiles writes a server certificate with CN cn issued by ca, its
// key and ca's certificate to dir, and returns their paths.
func operatorFiles(t *testing.T, dir string, ca *testCA, cn string) (certFile, keyFile, caFile string) {
	t.Helper()
	certFile = filepath.Join(dir, "server.pem")
	keyFile = filepath.Join(dir, "server-key.pem")
	caFile = filepath.Join(dir, "ca.pem")
	certPEM, keyPEM := ca.issue(t, leafOptions{cn: cn})
	writeFile(t, certFile, certPEM, 0o644)
	writeFile(t, keyFile, keyPEM, 0o600)
	writeFile(t, caFile, ca.certPEM(), 0o644)
	return certFile, keyFile, caFile
}

// startServer serves HTTPS with cfg on 127.0.0.1 until the test ends and
// returns its address. Each response names the client certificate's CN,
// "-" without one.
func startServer(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			peer := "-"
			if len(r.TLS.PeerCertificates) > 0 {
				peer = r.TLS.PeerCertificates[0].Subject.CommonName
			}
			io.WriteString(w, peer)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       5 * time.Second,
		WriteTimeout:      5 * time.Second,
		IdleTimeout:       5 * time.Second,
		// Refused handshakes are what many tests are about; not noise.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(tls.NewListener(ln, cfg)) }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("closing the server: %v", err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want %v", err, http.ErrServerClosed)
		}
	})
	return ln.Addr().String()
}

// response is what a client saw of one request.
type response struct {
	state *tls.ConnectionState
	proto string // HTTP version
	peer  string // the server's answer: the client certificate's CN or "-"
}

// get makes one request to the server at addr on a new connection with
// client config cfg, which it does not modify.
func get(addr string, cfg *tls.Config) (response, error) {
	transport := &http.Transport{
		TLSClientConfig: cfg.Clone(), // the Transport adds "h2" to it in place

		ForceAttemptHTTP2: true,
		DisableKeepAlives: true,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	resp, err := client.Get("https://" + addr + "/")
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{state: resp.TLS, proto: resp.Proto, peer: string(body)}, nil
}

// servedCN returns the CN of the certificate that the server at addr
// presents to a new connection.
func servedCN(t *testing.T, addr string, cfg *tls.Config) string {
	t.Helper()
	resp, err := get(addr, cfg)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	return resp.state.PeerCertificates[0].Subject.CommonName
}

func clientConfig(t *testing.T, caFile string) *tls.Config {
	t.Helper()
	cfg, err := tlsconfig.ClientConfig(caFile)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
