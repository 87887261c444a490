package testkms

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"
)

// wrapperPkg is the test-only command that serves local-kms on loopback,
// relative to the module root.
const wrapperPkg = "./internal/testkms/localkms"

// built is the local-kms wrapper binary of this test process, built (or found
// in the cache) once.
var built struct {
	once sync.Once
	path string
	took time.Duration // building or finding the binary
	err  error
}

// binary returns the path of the wrapper binary, building it on first use.
//
// The binary is cached across test processes in
// os.TempDir()/tenantcrypt-testkms-<uid>/<key>/, where key hashes everything
// the binary is made of: the Go version, GOOS/GOARCH, go.mod and go.sum (so
// every dependency version, local-kms's included) and the wrapper's source.
// Parallel test processes may build it at the same time; each writes a
// temporary file and renames it into place, which is atomic.
func binary() (string, error) {
	built.once.Do(func() {
		start := time.Now()
		built.path, built.err = buildBinary()
		built.took = time.Since(start)
	})
	return built.path, built.err
}

func buildBinary() (string, error) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return "", errNoGo
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	key, err := cacheKey(root)
	if err != nil {
		return "", err
	}
	cache, err := cacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, key)
	exe := filepath.Join(dir, "localkms")
	if runtime.GOOS == "windows" {
		exe += ".exe"
	}
	if fi, err := os.Stat(exe); err == nil && fi.Mode().IsRegular() {
		return exe, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := exe + ".tmp-" + hex.EncodeToString(rnd[:])
	defer os.Remove(tmp) // after a failed build or rename
	cmd := exec.Command(goCmd, "build", "-o", tmp, wrapperPkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", wrapperPkg, err, out)
	}
	if err := os.Rename(tmp, exe); err != nil {
		return "", err
	}
	return exe, nil
}

// cacheDir returns the user's cache directory for wrapper binaries. It is in
// a shared, world-writable directory, so it must be the user's alone: a
// directory that others may write to could hold someone else's binary.
func cacheDir() (string, error) {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("tenantcrypt-testkms-%d", os.Getuid()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() || runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("testkms: %s is not a private directory (mode %v): remove it", dir, fi.Mode())
	}
	return dir, nil
}

// errNoGo makes Start skip the test rather than fail it.
var errNoGo = errors.New("testkms: the go command is not in PATH, and it is needed to build local-kms")

// moduleRoot finds the directory of tenantcrypt's go.mod: from this source
// file's directory if the test binary was built without -trimpath, else from
// the working directory, which go test sets to the package under test.
func moduleRoot() (string, error) {
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		for {
			if _, err := os.Stat(filepath.Join(dir, wrapperPkg, "main.go")); err == nil {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", errors.New("testkms: cannot find the tenantcrypt module (with " + wrapperPkg + ") above the working directory")
}

// cacheKey hashes what the wrapper binary is built from.
func cacheKey(root string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	files, err := filepath.Glob(filepath.Join(root, wrapperPkg, "*.go"))
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	for _, f := range append([]string{filepath.Join(root, "go.mod"), filepath.Join(root, "go.sum")}, files...) {
		fh, err := os.Open(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\n", filepath.Base(f))
		_, err = io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:12]), nil
}
