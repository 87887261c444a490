package internalkms

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// keyFile is the on-disk form of a root key file:
//
//	{"current": 2, "versions": [{"version": 1, "key": "<base64>", "createdAt": "…"}, …]}
//
// Key is a []byte, which encoding/json reads and writes as standard base64,
// so that the decoded key lands in memory this package can zero rather than
// in an immutable string.
type keyFile struct {
	Current  uint32           `json:"current"`
	Versions []keyFileVersion `json:"versions"`
}

type keyFileVersion struct {
	Version   uint32    `json:"version"`
	Key       []byte    `json:"key"`
	CreatedAt time.Time `json:"createdAt"`
}

// maxKeyFileSize bounds what is read: thousands of versions fit, a wrong
// path pointing at a large file does not get slurped.
const maxKeyFileSize = 1 << 20

func (kf *keyFile) destroy() {
	for _, v := range kf.Versions {
		clear(v.Key)
	}
}

// rootKeys validates kf and moves its keys into a RootKeys.
func (kf *keyFile) rootKeys() (*RootKeys, error) {
	versions := make([]rootVersion, len(kf.Versions))
	for i, v := range kf.Versions {
		versions[i] = rootVersion{version: v.Version, key: secret.New(v.Key), createdAt: v.CreatedAt}
		kf.Versions[i].Key = nil
	}
	return newRootKeys(versions, kf.Current)
}

func parseKeyFile(data []byte) (*keyFile, error) {
	var kf keyFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kf); err != nil {
		kf.destroy()
		return nil, fmt.Errorf("not a root key file: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		kf.destroy()
		return nil, errors.New("not a root key file: data after the JSON object")
	}
	return &kf, nil
}

// readKeyFile reads and parses path, refusing a file that others may read.
// The mode is checked on the opened file, so that a swap between the check
// and the read is impossible.
func readKeyFile(path string) (*keyFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("internalkms: root key file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("internalkms: root key file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("internalkms: root key file %s is not a regular file", path)
	}
	// Windows has no Unix permission bits to check; its ACLs are the operator's.
	if perm := info.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("internalkms: root key file %s has mode %#o, so users other than its owner may read it; "+
			"run `chmod 600 %s` (and consider the key exposed if others could read it)", path, perm, path)
	}
	if info.Size() > maxKeyFileSize {
		return nil, fmt.Errorf("internalkms: root key file %s is larger than %d bytes", path, maxKeyFileSize)
	}
	// One buffer of the right size, rather than io.ReadAll's growing ones,
	// leaves a single copy of the keys' base64 to clear. The size cannot
	// change under us: the file is only ever replaced by rename.
	data := make([]byte, info.Size())
	defer clear(data)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("internalkms: root key file %s: %w", path, err)
	}
	kf, err := parseKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("internalkms: root key file %s: %w", path, err)
	}
	return kf, nil
}

func loadRootKeyFile(path string) (*RootKeys, error) {
	kf, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	defer kf.destroy()
	r, err := kf.rootKeys()
	if err != nil {
		return nil, fmt.Errorf("internalkms: root key file %s: %w", path, err)
	}
	return r, nil
}

// LoadOrCreateRootKeyFile loads the root keys in the JSON file at path, or,
// if there is no such file, creates one holding a fresh version 1 with mode
// 0600. It refuses a file that its owner's group or others may access, since
// whoever reads it can open every tenant's KEKs.
//
// Creation never overwrites: if several processes start at once, one file
// wins and all of them use it. The directory must exist.
func LoadOrCreateRootKeyFile(path string) (*RootKeys, error) {
	r, err := loadRootKeyFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return r, err
	}
	key := make([]byte, keySize)
	_, _ = rand.Read(key) // crypto/rand.Read never fails; it crashes the program instead.
	kf := &keyFile{Current: 1, Versions: []keyFileVersion{{Version: 1, Key: key, CreatedAt: time.Now().UTC()}}}
	defer kf.destroy()
	data, err := json.MarshalIndent(kf, "", "  ")
	defer clear(data)
	if err != nil {
		return nil, fmt.Errorf("internalkms: root key file: %w", err)
	}
	err = writeFileAtomic(path, data, false)
	if errors.Is(err, fs.ErrExist) {
		return loadRootKeyFile(path) // Another process created it first.
	}
	if err != nil {
		return nil, err
	}
	return kf.rootKeys()
}

// CreateRootKeyFile creates a root key file at path holding one fresh
// version, version, with mode 0600, for moving the root key out of an HSM
// (whose versions it must be above). It never overwrites a file
// (fs.ErrExist).
func CreateRootKeyFile(path string, version uint32) (uint32, error) {
	if version == 0 {
		return 0, errors.New("internalkms: root key versions start at 1")
	}
	key := make([]byte, keySize)
	_, _ = rand.Read(key)
	kf := &keyFile{Current: version, Versions: []keyFileVersion{{Version: version, Key: key, CreatedAt: time.Now().UTC()}}}
	defer kf.destroy()
	data, err := json.MarshalIndent(kf, "", "  ")
	defer clear(data)
	if err != nil {
		return 0, fmt.Errorf("internalkms: root key file: %w", err)
	}
	if err := writeFileAtomic(path, data, false); err != nil {
		return 0, fmt.Errorf("internalkms: creating root key file %s: %w", path, err)
	}
	return version, nil
}

// RotateRootKeyFileAbove is RotateRootKeyFile with a new version above
// floor as well as above the file's versions, for moving the root key out
// of an HSM whose versions go up to floor.
func RotateRootKeyFileAbove(path string, floor uint32) (newVersion uint32, err error) {
	return addRootKeyVersionAbove(path, true, floor)
}

// LoadRootKeyFile loads the root keys in the JSON file at path, with the
// checks of LoadOrCreateRootKeyFile, but never creates the file: for a
// process that reloads its keys after the file was rotated.
func LoadRootKeyFile(path string) (*RootKeys, error) {
	return loadRootKeyFile(path)
}

// RotateRootKeyFile adds a fresh root key version to the file at path and
// makes it current, keeping every older version so that KEKs sealed by them
// still open. Running processes keep their loaded keys: restart (or reload)
// every one of them with the new file before running RewrapKEKs, and remove
// an old version from the file only after RewrapKEKs has moved every KEK off
// it.
//
// Two rotations of one file at a time are refused (ErrRootKeyFileLocked)
// rather than letting one silently discard the other's new key.
func RotateRootKeyFile(path string) (newVersion uint32, err error) {
	return addRootKeyVersion(path, true)
}

// StageRootKeyFile adds a fresh root key version to the file at path
// without making it current: a process that loads the file can open KEKs
// sealed by the new version, but keeps sealing with the current one. With
// several processes, load a staged version into every one of them before
// any makes it current (PromoteRootKeyVersion, then a reload), so that no
// process meets a KEK sealed by a version it has not loaded.
func StageRootKeyFile(path string) (newVersion uint32, err error) {
	return addRootKeyVersion(path, false)
}

// PromoteRootKeyVersion makes version, which the file at path holds
// already (see StageRootKeyFile), its current version. Promoting the current
// version again does nothing; an older version is refused, since KEKs
// sealed by the newer one would then be rewrapped back.
func PromoteRootKeyVersion(path string, version uint32) error {
	return updateKeyFile(path, func(kf *keyFile) error {
		if version == kf.Current {
			return nil
		}
		if version < kf.Current {
			return fmt.Errorf("version %d is older than the current version %d; promote only a newer version", version, kf.Current)
		}
		for _, v := range kf.Versions {
			if v.Version == version {
				kf.Current = version
				return nil
			}
		}
		return fmt.Errorf("the file has no root key version %d", version)
	})
}

func addRootKeyVersion(path string, makeCurrent bool) (newVersion uint32, err error) {
	return addRootKeyVersionAbove(path, makeCurrent, 0)
}

func addRootKeyVersionAbove(path string, makeCurrent bool, floor uint32) (newVersion uint32, err error) {
	err = updateKeyFile(path, func(kf *keyFile) error {
		last := floor
		for _, v := range kf.Versions {
			last = max(last, v.Version)
		}
		if last == math.MaxUint32 {
			return fmt.Errorf("no root key version left after %d", last)
		}
		newVersion = last + 1
		key := make([]byte, keySize)
		_, _ = rand.Read(key)
		kf.Versions = append(kf.Versions, keyFileVersion{Version: newVersion, Key: key, CreatedAt: time.Now().UTC()})
		if makeCurrent {
			kf.Current = newVersion
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return newVersion, nil
}

// updateKeyFile applies change to the key file at path under its lock, and
// writes the result atomically. It refuses to build on a file that would
// not load, and to write one that would not.
func updateKeyFile(path string, change func(kf *keyFile) error) error {
	unlock, err := lockKeyFile(path)
	if err != nil {
		return err
	}
	defer unlock()
	kf, err := readKeyFile(path)
	if err != nil {
		return err
	}
	defer kf.destroy()
	if err := validateKeyFile(kf); err != nil {
		return fmt.Errorf("internalkms: root key file %s: %w", path, err)
	}
	if err := change(kf); err != nil {
		return fmt.Errorf("internalkms: root key file %s: %w", path, err)
	}
	if err := validateKeyFile(kf); err != nil {
		return fmt.Errorf("internalkms: root key file %s: the change would make it invalid: %w", path, err)
	}
	data, err := json.MarshalIndent(kf, "", "  ")
	defer clear(data)
	if err != nil {
		return fmt.Errorf("internalkms: root key file: %w", err)
	}
	return writeFileAtomic(path, data, true)
}

// validateKeyFile checks that kf loads, on a copy of its keys (rootKeys
// takes the ones it is given).
func validateKeyFile(kf *keyFile) error {
	check := &keyFile{Current: kf.Current, Versions: make([]keyFileVersion, len(kf.Versions))}
	for i, v := range kf.Versions {
		check.Versions[i] = v
		check.Versions[i].Key = bytes.Clone(v.Key)
	}
	r, err := check.rootKeys()
	if err != nil {
		return err
	}
	r.Destroy()
	return nil
}

// ErrRootKeyFileLocked: another change of the root key file is running, or
// a crashed one left its lock file behind.
var ErrRootKeyFileLocked = errors.New("root key file is locked")

type keyFileLockedError struct{ lock string }

func (e *keyFileLockedError) Error() string {
	return fmt.Sprintf("internalkms: %s exists: another rotation of the root key file is running, "+
		"or a crashed one left it behind (remove it once no rotation is running)", e.lock)
}

func (e *keyFileLockedError) Is(target error) bool { return target == ErrRootKeyFileLocked }

// lockKeyFile takes an exclusive lock beside path with O_EXCL, which works on
// every platform and filesystem; the price is a stale lock after a crash,
// which the error tells the operator how to clear.
func lockKeyFile(path string) (unlock func(), err error) {
	lock := path + ".lock"
	f, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, &keyFileLockedError{lock: lock}
	}
	if err != nil {
		return nil, fmt.Errorf("internalkms: locking root key file: %w", err)
	}
	_ = f.Close()
	return func() { _ = os.Remove(lock) }, nil
}

// writeFileAtomic writes data to path so that a reader sees either the old
// file or the complete new one, durably: a temporary file (0600, as
// os.CreateTemp makes it) is synced, then renamed over path, or, when replace
// is false, hard-linked to it, which fails with fs.ErrExist instead of
// overwriting a key file that another process has just created.
func writeFileAtomic(path string, data []byte, replace bool) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("internalkms: writing root key file: %w", err)
	}
	tmpName := tmp.Name()
	defer func() {
		_ = tmp.Close()
		_ = os.Remove(tmpName) // A no-op once renamed.
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("internalkms: writing root key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("internalkms: writing root key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("internalkms: writing root key file: %w", err)
	}
	if replace {
		err = os.Rename(tmpName, path)
	} else {
		err = os.Link(tmpName, path)
	}
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		return fmt.Errorf("internalkms: writing root key file: %w", err)
	}
	return syncDir(dir)
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // Directories cannot be opened for syncing there.
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("internalkms: syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("internalkms: syncing %s: %w", dir, err)
	}
	return nil
}
