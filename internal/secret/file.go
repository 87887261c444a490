package secret

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
)

// ErrFileExposed: a file of secrets may be read by users other than its
// owner (its mode gives group or others any access).
var ErrFileExposed = errors.New("secret file readable by others")

// ReadFile reads a file of secrets (private keys, seeds) of at most maxSize
// bytes, refusing one that is not a regular file or that users other than
// its owner may access: whoever could read it holds the keys. Errors name
// the file and what to do, never its contents; an exposed file's error
// matches ErrFileExposed. Windows has no such mode bits; its ACLs are the
// operator's.
func ReadFile(path string, maxSize int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("%w: %s has mode %#o, so users other than its owner may read it; "+
			"run `chmod 600 %s` (and consider its keys exposed if others could read it)", ErrFileExposed, path, perm, path)
	}
	if info.Size() > maxSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxSize)
	}
	// One buffer of the file's size leaves a single copy to clear.
	data := make([]byte, info.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return data, nil
}
