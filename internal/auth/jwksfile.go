package auth

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// jwksFileCheckEvery is how often a JWKSFile looks at the file's
// modification time.
const jwksFileCheckEvery = 2 * time.Second

// JWKSFile is a [KeySource] reading a JWKS document from a file, for
// deployments that distribute the identity provider's keys as files. It
// notices when the file changes (checking at most every 2 seconds) and then
// reads it again; if the new content is not a valid JWKS, it keeps serving
// the keys it has.
type JWKSFile struct {
	path       string
	checkEvery time.Duration
	now        func() time.Time

	set       atomic.Pointer[keySet]
	nextCheck atomic.Int64 // UnixNano

	mu      sync.Mutex // held while checking the file; guards the fields below
	info    os.FileInfo
	lastErr error // of the last reload, nil if it succeeded
}

var _ KeySource = (*JWKSFile)(nil)

// NewJWKSFile reads the JWKS document at path and returns a key source
// serving its keys. It fails if the file cannot be read, is larger than
// [MaxJWKSSize], or holds private or symmetric keys (see [StaticKeys] for
// what else is refused). Keys of types this package cannot use are
// skipped.
func NewJWKSFile(path string) (*JWKSFile, error) {
	f := &JWKSFile{path: path, checkEvery: jwksFileCheckEvery, now: time.Now}
	set, info, err := readJWKSFile(path)
	if err != nil {
		return nil, err
	}
	f.set.Store(set)
	f.info = info
	f.nextCheck.Store(f.now().Add(f.checkEvery).UnixNano())
	return f, nil
}

// Key implements KeySource. If the file changed but could not be read
// again, the error of an unknown key id says so.
func (f *JWKSFile) Key(_ context.Context, kid string) (jose.JSONWebKey, error) {
	f.maybeReload()
	if k, ok := f.set.Load().lookup(kid); ok {
		return k, nil
	}
	f.mu.Lock()
	lastErr := f.lastErr
	f.mu.Unlock()
	if lastErr != nil {
		return jose.JSONWebKey{}, fmt.Errorf("%w (reloading the key file failed: %v)", ErrKeyNotFound, lastErr)
	}
	return jose.JSONWebKey{}, ErrKeyNotFound
}

// maybeReload reads the file again if it changed; only one caller checks,
// the others carry on with the keys they have.
func (f *JWKSFile) maybeReload() {
	now := f.now()
	if now.UnixNano() < f.nextCheck.Load() || !f.mu.TryLock() {
		return
	}
	defer f.mu.Unlock()
	f.nextCheck.Store(now.Add(f.checkEvery).UnixNano())
	info, err := os.Stat(f.path)
	if err != nil {
		f.lastErr = err
		return
	}
	if os.SameFile(info, f.info) && info.ModTime().Equal(f.info.ModTime()) && info.Size() == f.info.Size() {
		return
	}
	set, info, err := readJWKSFile(f.path)
	if err != nil {
		f.lastErr = err
		return
	}
	f.set.Store(set)
	f.info, f.lastErr = info, nil
}

func readJWKSFile(path string) (*keySet, os.FileInfo, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: JWKS file: %w", err)
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("auth: JWKS file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("auth: JWKS file %s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(file, MaxJWKSSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("auth: JWKS file: %w", err)
	}
	if len(data) > MaxJWKSSize {
		return nil, nil, fmt.Errorf("auth: JWKS file %s is larger than %d bytes", path, MaxJWKSSize)
	}
	set, err := parseJWKS(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return set, info, nil
}
