package tlsconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// defaultWatchInterval is Watch's polling interval when given none.
const defaultWatchInterval = 30 * time.Second

// Reloader holds the certificate (and client CA) that a config from
// [NewServerConfig] serves, and swaps in new ones from the same files
// without a restart. Handshakes read the current state without locking;
// a reload replaces it at once, so every handshake sees the old state or
// the new one, never a mix.
//
// Wire it in main: call [Reloader.Reload] on SIGHUP and log its error,
// and, where a tool replaces the files (cert-manager, certbot), run
// [Reloader.Watch] in a goroutine. Connections already established keep
// the certificate they were made with.
//
// Only [NewServerConfig] makes a Reloader; its methods are safe for
// concurrent use.
type Reloader struct {
	certFile, keyFile, clientCAFile string
	// base is the config that per-connection configs (with a client CA)
	// are cloned from.
	base *tls.Config

	mu    sync.Mutex // serializes reloads, so an older read never replaces a newer one
	state atomic.Pointer[reloaderState]
}

// reloaderState is what one successful load produced; it is never changed.
type reloaderState struct {
	cert *tls.Certificate
	// config is the per-connection config with the client CA; nil without
	// one.
	config *tls.Config
	// files are the stamps of the files taken before they were read, so a
	// change during the read shows up as a change later.
	files []fileStamp
}

// Reload reads the certificate, key and client CA files again and, if all
// of them load, the certificate matches the key and it has not expired,
// serves them from the next handshake on. Otherwise it returns the error
// and keeps serving the previous ones; the caller logs the error.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, err := r.load()
	if err != nil {
		return err
	}
	r.state.Store(s)
	return nil
}

func (r *Reloader) load() (*reloaderState, error) {
	s := &reloaderState{files: r.stat()}
	certPEM, err := readFile(r.certFile, false)
	if err != nil {
		return nil, fmt.Errorf("tlsconfig: server certificate: %w", err)
	}
	keyPEM, err := readFile(r.keyFile, false)
	if err != nil {
		return nil, fmt.Errorf("tlsconfig: server key: %w", err)
	}
	defer clear(keyPEM)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsconfig: server certificate %s with key %s: %w", r.certFile, r.keyFile, err)
	}
	if cert.Leaf == nil { // only with GODEBUG=x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tlsconfig: server certificate %s: %w", r.certFile, err)
		}
	}
	// Serving a certificate that every client refuses helps no one, and on
	// a reload the previous one may still be good.
	if now := time.Now(); now.After(cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("tlsconfig: server certificate %s expired at %s",
			r.certFile, cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	s.cert = &cert
	if r.clientCAFile != "" {
		pool, err := loadCAPool(r.clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tlsconfig: client CA: %w", err)
		}
		s.config = r.base.Clone()
		s.config.ClientCAs = pool
	}
	return s, nil
}

// GetCertificate returns the current certificate whatever the client
// asks for; it is the config's tls.Config.GetCertificate, and has that
// signature so that a hand-made config can use it too.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.state.Load().cert, nil
}

// Leaf returns the certificate being served, for logging which one a
// reload installed and for watching its expiry.
func (r *Reloader) Leaf() *x509.Certificate {
	return r.state.Load().cert.Leaf
}

// configForClient is the config's tls.Config.GetConfigForClient when
// client certificates are verified: the current client CA applies to the
// handshake.
func (r *Reloader) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	return r.state.Load().config, nil
}

// Watch checks the files every interval (30 s if interval is not
// positive) and reloads them when one changed (its size, modification
// time or identity, so a file replaced by a rename counts), until ctx is
// done. It calls onErr, if not nil, on its own goroutine with each failed
// reload's error; the previous certificate stays in use. A failure is reported once and
// retried when the files change again, which also covers a tool caught
// between writing the certificate and the key.
func (r *Reloader) Watch(ctx context.Context, interval time.Duration, onErr func(error)) {
	if interval <= 0 {
		interval = defaultWatchInterval
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var failed []fileStamp
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		files := r.stat()
		if sameStamps(files, r.state.Load().files) || (failed != nil && sameStamps(files, failed)) {
			continue
		}
		if err := r.Reload(); err != nil {
			failed = files
			if onErr != nil {
				onErr(err)
			}
			continue
		}
		failed = nil
	}
}

// fileStamp identifies one version of a file; info is nil if the file
// could not be examined.
type fileStamp struct {
	info fs.FileInfo
}

func (r *Reloader) stat() []fileStamp {
	paths := []string{r.certFile, r.keyFile}
	if r.clientCAFile != "" {
		paths = append(paths, r.clientCAFile)
	}
	stamps := make([]fileStamp, len(paths))
	for i, p := range paths {
		if info, err := os.Stat(p); err == nil {
			stamps[i].info = info
		}
	}
	return stamps
}

func sameStamps(a, b []fileStamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i].info, b[i].info
		switch {
		case x == nil && y == nil:
		case x == nil || y == nil:
			return false
		case !os.SameFile(x, y), x.Size() != y.Size(), !x.ModTime().Equal(y.ModTime()):
			return false
		}
	}
	return true
}

// loadCAPool reads the CA certificates in the PEM file at path into a new
// pool, which trusts them and nothing else.
func loadCAPool(path string) (*x509.CertPool, error) {
	data, err := readFile(path, false)
	if err != nil {
		return nil, err
	}
	certs, err := parseCertificatesPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}
