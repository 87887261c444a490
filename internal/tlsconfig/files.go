package tlsconfig

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// maxFileSize bounds every certificate, key and CA file read; real ones are
// a few kilobytes, even with a chain.
const maxFileSize = 1 << 20

// readFile reads a certificate, key or CA file. With private set, it
// refuses a file that its group or others may access (secret.ReadFile:
// the mode is checked on the opened file, so a swap between the check and
// the read is impossible).
func readFile(path string, private bool) ([]byte, error) {
	if private {
		return secret.ReadFile(path, maxFileSize)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if info, err := f.Stat(); err != nil {
		return nil, err
	} else if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxFileSize)
	}
	return data, nil
}

// parseCertificatesPEM returns every CERTIFICATE block of data, in order,
// skipping other blocks; it fails if there is none.
func parseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

// parsePrivateKeyPEM returns the first private key in data, in any of the
// encodings that tls.X509KeyPair accepts.
func parsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key found")
		}
		if block.Type != "PRIVATE KEY" && !strings.HasSuffix(block.Type, " PRIVATE KEY") {
			continue
		}
		if key, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
			if signer, ok := key.(crypto.Signer); ok {
				return signer, nil
			}
			return nil, fmt.Errorf("a %T cannot sign", key)
		}
		if key, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
			return key, nil
		}
		if key, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
			return key, nil
		}
		return nil, fmt.Errorf("%s block is not a private key tenantcrypt can use", block.Type)
	}
}

// encodePrivateKeyPEM encodes key as a PKCS #8 "PRIVATE KEY" block.
func encodePrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	defer clear(der)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// encodeCertificatePEM encodes a DER certificate as a "CERTIFICATE" block.
func encodeCertificatePEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// writeFileAtomic replaces path with data, mode perm, so that a reader sees
// the old file or the complete new one, never a mix, and durably: a
// temporary file beside it is synced, then renamed over path.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("tlsconfig: writing %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer func() {
		_ = tmp.Close()
		_ = os.Remove(tmpName) // a no-op once renamed
	}()
	// Explicit, so that the umask plays no part; CreateTemp made it 0600
	// already, so a key is never readable by others, not even briefly.
	if err := tmp.Chmod(perm); err != nil && runtime.GOOS != "windows" {
		return fmt.Errorf("tlsconfig: writing %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("tlsconfig: writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("tlsconfig: writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("tlsconfig: writing %s: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("tlsconfig: writing %s: %w", path, err)
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for syncing there
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("tlsconfig: syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("tlsconfig: syncing %s: %w", dir, err)
	}
	return nil
}

const (
	// lockStale is the age after which a lock file is taken to be left
	// behind by a crashed process. Holding the lock takes milliseconds.
	lockStale = 10 * time.Second
	// lockWait is how long lockDir waits for the lock, longer than
	// lockStale so that a stale lock is always broken first.
	lockWait = 2 * lockStale
)

// lockDir takes an exclusive lock on dir with an O_EXCL lock file, which
// works on every platform and filesystem, so that two processes starting
// at once do not write halves of two different key pairs. A lock left by a
// crashed process is broken after lockStale. (Two processes breaking the
// same stale lock at the same instant could both proceed; that takes a
// crash inside a millisecond window followed by two simultaneous starts,
// and at worst costs one more regeneration at the next start.)
func lockDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, devLockName)
	deadline := time.Now().Add(lockWait)
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			_ = f.Close()
			return func() { _ = os.Remove(path) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("tlsconfig: locking %s: %w", dir, err)
		}
		if info, err := os.Stat(path); err == nil && time.Since(info.ModTime()) > lockStale {
			_ = os.Remove(path)
			continue
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("tlsconfig: %s exists: another process is creating the development certificate, "+
				"or a crashed one left it behind (remove it once no tenantcrypt is starting)", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
