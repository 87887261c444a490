// Package rotation rotates the internal KMS's keys while the service runs,
// and rewraps what they protect in the background.
//
// The internal KMS (package internalkms) has root keys that seal per-tenant
// KEKs, which wrap the tenants' data keys (cipherkeys). A Service:
//
//   - rotates the root key file and reloads it without a restart
//     (RotateRootKey, ReloadRootKeys), then reseals every KEK under the new
//     current root version;
//   - rotates one tenant's KEK (RotateTenantKey), then rewraps the tenant's
//     cipherkeys that older KEK versions wrap under the new one;
//   - at start (Start), reseals the KEKs left under an older root version by
//     a rotation made while the process was down.
//
// The background work runs in one Job per process, one run at a time, and
// stops at Close. Nothing it does changes a data key's plaintext: every
// ciphertext keeps decrypting throughout, and a run stopped half way leaves
// keys that all work, under the old version or the new one.
package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
)

// KMS is what rotations need of the internal KMS (an *internalkms.Service).
type KMS interface {
	RootKeyVersions() (current uint32, loaded []uint32)
	// KEKsByRootVersion errors: kms.ErrUnavailable.
	KEKsByRootVersion(ctx context.Context) (map[uint32]int, error)
	// SetRootKeys errors: internalkms.ErrRootKeysRefused,
	// kms.ErrUnavailable. It owns next only when it returns nil.
	SetRootKeys(ctx context.Context, next *internalkms.RootKeys) error
	RewrapKEKsReporting(ctx context.Context, progress func(rewrapped, lost int)) (int, error)
	RotateTenantKEK(ctx context.Context, tenantID string) (uint32, error)
	// RewrapDataKey errors: kms.ErrInvalidCiphertext, kms.ErrKeyNotFound,
	// kms.ErrUnavailable.
	RewrapDataKey(ctx context.Context, tenantID string, w kms.Wrapped, b kms.Binding, minVersion uint32) (kms.Wrapped, error)
}

var _ KMS = (*internalkms.Service)(nil)

// Store is the persistence a tenant's cipherkey rewrap needs.
// Implementations live in internal/store/... and pass
// internal/store/storetest.
type Store interface {
	// CipherKeysWrappedByOtherVersion returns up to limit of the tenant's
	// cipherkeys whose Provider is ref and whose KeyVersion is not
	// keyVersion, with ids greater than after, in id order (bytewise).
	CipherKeysWrappedByOtherVersion(ctx context.Context, tenantID string, ref kms.Ref, keyVersion string, after envelope.KeyID, limit int) ([]keyring.CipherKey, error)
	// RewrapCipherKeys applies the rewraps in one transaction, each only if
	// the cipherkey is still wrapped as its Old says, and returns how many
	// it applied (see keyring.Rewrap).
	RewrapCipherKeys(ctx context.Context, rs []keyring.Rewrap) (int, error)
}

// Tenants reads tenants (a *keyring.Service).
type Tenants interface {
	// Tenant errors: keyring.ErrTenantNotFound.
	Tenant(ctx context.Context, id string) (keyring.Tenant, error)
}

// Config configures a Service. KMS, Store and Tenants are required.
type Config struct {
	KMS     KMS
	Store   Store
	Tenants Tenants
	// RootKeyFile is the file the root keys were loaded from; empty when
	// they come from the environment (TENANTCRYPT_ROOT_KEYS), which only a
	// restart changes, or from an HSM (Device).
	RootKeyFile string
	// Device, when the root key is in an HSM, rotates it (a new version in
	// the HSM, recorded in the database) and reloads the version the
	// database records; RootKeyFile is then ignored.
	Device Device
	// BatchSize is how many cipherkeys a tenant's rewrap reads, and stores
	// in one transaction, at a time. Default 256.
	BatchSize int
	Logger    *slog.Logger
	Now       func() time.Time
}

// Device is a root key in an HSM (see internalkms.RotateDevice and
// internalkms.ReloadDevice).
type Device interface {
	// Rotate creates a new root key version in the HSM, makes it current
	// and records it in the database; it returns the new version.
	Rotate(ctx context.Context) (uint32, error)
	// Reload makes the version the database records current; it returns
	// that version.
	Reload(ctx context.Context) (uint32, error)
}

// Errors of the Service's methods, besides the job's (ErrBusy, ErrClosed).
var (
	// ErrRootKeysFromEnvironment: the root keys come from the environment,
	// which a running process cannot change.
	ErrRootKeysFromEnvironment = errors.New("the root keys come from the environment variable TENANTCRYPT_ROOT_KEYS, " +
		"which a running server cannot change: append a new version to it (\",N:<base64 of 32 random bytes>\" with N above " +
		"every version in it; `tenantcrypt rootkey generate` prints a key) on every server, then restart them; " +
		"each rewraps the tenant KEKs under the new version at start")
	// ErrNotInternal: the tenant's keys are wrapped by a customer managed
	// key, so its internal KMS key protects nothing.
	ErrNotInternal = errors.New("the tenant uses a customer managed key, not the internal KMS; " +
		"rotate that key in AWS KMS (automatic or on-demand rotation is transparent to tenantcrypt)")
	// ErrRootKeysRefused is internalkms.ErrRootKeysRefused, for callers
	// that know the internal KMS only through this package: the root key
	// file would strand KEKs or go back, and the process keeps its keys.
	ErrRootKeysRefused = internalkms.ErrRootKeysRefused
)

// KeyFileError: the root key file could not be changed or loaded. Nothing
// changed in the process; Err says why, never with key material.
type KeyFileError struct {
	Op   string // "rotating", "loading"
	Path string
	Err  error
}

func (e *KeyFileError) Error() string { return e.Op + " the root key file: " + e.Err.Error() }

// Unwrap returns the cause, such as internalkms.ErrRootKeyFileLocked.
func (e *KeyFileError) Unwrap() error { return e.Err }

// Source is where the root keys come from.
type Source int

// Sources. The zero value is invalid.
const (
	SourceUnknown Source = iota
	// SourceFile: a key file, which the Service can rotate and reload.
	SourceFile
	// SourceEnvironment: TENANTCRYPT_ROOT_KEYS, changed by a restart.
	SourceEnvironment
	// SourcePKCS11: key objects in an HSM, reached over PKCS#11.
	SourcePKCS11
)

// String is the source as the API spells it.
func (s Source) String() string {
	switch s {
	case SourceFile:
		return "file"
	case SourceEnvironment:
		return "environment"
	case SourcePKCS11:
		return "pkcs11"
	}
	return "unknown"
}

// Document describes the internal KMS's root keys and the job.
type Document struct {
	Source Source
	// Current is the root key version that seals new KEKs.
	Current uint32
	// Versions are the loaded versions, and any other that still seals
	// KEKs (Loaded false: this process cannot open those), ascending.
	Versions []Version
	Job      Status
}

// Version is one root key version.
type Version struct {
	Version         uint32
	Current, Loaded bool
	// KEKs counts the tenant KEKs it seals, in the shared database.
	KEKs int
}

// TenantRotation is a started rotation of a tenant's KEK.
type TenantRotation struct {
	TenantID string
	// KEKVersion is the tenant's new KEK version.
	KEKVersion uint32
	Job        Status
}

// Service rotates the internal KMS's keys. It is safe for concurrent use.
type Service struct {
	cfg Config
	log *slog.Logger
	job *Job
}

// New returns a Service; Close stops its background work.
func New(cfg Config) (*Service, error) {
	if cfg.KMS == nil || cfg.Store == nil || cfg.Tenants == nil {
		return nil, errors.New("rotation: KMS, Store and Tenants are required")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 256
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg, log: cfg.Logger, job: NewJob(cfg.Logger, cfg.Now)}, nil
}

// Close stops the background run in progress, if any, and waits for it.
// What it rewrapped stays rewrapped; KEKs are picked up again at the next
// start, a tenant's cipherkeys at its next rotation.
func (s *Service) Close() { s.job.Close() }

// Job returns the Service's job, for its status and for waiting on it.
func (s *Service) Job() *Job { return s.job }

// Start starts resealing, in the background, the KEKs that a root key
// rotation made while the process was down left under an older root
// version. Processes that start together race harmlessly (each reseal is a
// compare-and-swap). Errors: ErrBusy, ErrClosed.
func (s *Service) Start() error {
	_, err := s.job.Start(context.Background(), Task{
		Kind: KindRewrapKEKs, Trigger: "start",
		Prepare: func(context.Context) (uint32, error) {
			cur, _ := s.cfg.KMS.RootKeyVersions()
			return cur, nil
		},
		Run: s.rewrapKEKs,
	})
	return err
}

// Document describes the root keys, the KEKs each seals, and the job.
// Errors: kms.ErrUnavailable.
func (s *Service) Document(ctx context.Context) (Document, error) {
	cur, loaded := s.cfg.KMS.RootKeyVersions()
	counts, err := s.cfg.KMS.KEKsByRootVersion(ctx)
	if err != nil {
		return Document{}, err
	}
	doc := Document{Source: SourceFile, Current: cur, Versions: []Version{}, Job: s.job.Status()}
	switch {
	case s.cfg.Device != nil:
		doc.Source = SourcePKCS11
	case s.cfg.RootKeyFile == "":
		doc.Source = SourceEnvironment
	}
	all := append(slices.Collect(maps.Keys(counts)), loaded...)
	slices.Sort(all)
	for _, v := range slices.Compact(all) {
		doc.Versions = append(doc.Versions, Version{
			Version: v, Current: v == cur, Loaded: slices.Contains(loaded, v), KEKs: counts[v],
		})
	}
	return doc, nil
}

// RotateRootKey adds a fresh root key version to the key file, makes it
// current, loads the file, and starts resealing every tenant KEK under the
// new version in the background. It first reloads the file as it is, so
// that a file this process would refuse is not rotated either.
//
// With several processes, each must load a new version before any seals
// with it: see docs/operations.md (StageRootKeyFile, ReloadRootKeys).
// Errors: ErrRootKeysFromEnvironment, ErrBusy, ErrClosed, *KeyFileError,
// internalkms.ErrRootKeysRefused, kms.ErrUnavailable.
func (s *Service) RotateRootKey(ctx context.Context) (Document, error) {
	if s.cfg.Device != nil {
		return s.deviceAction(ctx, "rotate-root-key", s.cfg.Device.Rotate)
	}
	path := s.cfg.RootKeyFile
	if path == "" {
		return Document{}, ErrRootKeysFromEnvironment
	}
	_, err := s.job.Start(ctx, Task{
		Kind: KindRewrapKEKs, Trigger: "rotate-root-key",
		Prepare: func(ctx context.Context) (uint32, error) {
			if err := s.load(ctx); err != nil {
				return 0, err
			}
			v, err := internalkms.RotateRootKeyFile(path)
			if err != nil {
				return 0, &KeyFileError{Op: "rotating", Path: path, Err: err}
			}
			s.log.InfoContext(ctx, "internal KMS: root key file rotated", "root_key_file", path, "root_version", v)
			if err := s.load(ctx); err != nil {
				return 0, fmt.Errorf("the root key file now makes version %d current, but this server keeps its previous keys: %w", v, err)
			}
			return v, nil
		},
		Run: s.rewrapKEKs,
	})
	if err != nil {
		return Document{}, err
	}
	return s.Document(ctx)
}

// ReloadRootKeys loads the root key file again, after an operator rotated
// it (`tenantcrypt rootkey rotate`) or distributed a new copy, and starts
// resealing, in the background, the KEKs not under its current version (if
// the current version did not change, there are usually none). A file that
// would strand KEKs is refused and the process keeps its keys.
// Errors: ErrRootKeysFromEnvironment, ErrBusy, ErrClosed, *KeyFileError,
// internalkms.ErrRootKeysRefused, kms.ErrUnavailable.
func (s *Service) ReloadRootKeys(ctx context.Context) (Document, error) {
	if s.cfg.Device != nil {
		return s.deviceAction(ctx, "reload-root-keys", s.cfg.Device.Reload)
	}
	if s.cfg.RootKeyFile == "" {
		return Document{}, ErrRootKeysFromEnvironment
	}
	_, err := s.job.Start(ctx, Task{
		Kind: KindRewrapKEKs, Trigger: "reload-root-keys",
		Prepare: func(ctx context.Context) (uint32, error) {
			if err := s.load(ctx); err != nil {
				return 0, err
			}
			cur, loaded := s.cfg.KMS.RootKeyVersions()
			s.log.InfoContext(ctx, "internal KMS: root key file reloaded", "root_key_file", s.cfg.RootKeyFile,
				"root_version", cur, "loaded_versions", fmt.Sprint(loaded))
			return cur, nil
		},
		Run: s.rewrapKEKs,
	})
	if err != nil {
		return Document{}, err
	}
	return s.Document(ctx)
}

// deviceAction rotates or reloads an HSM root key and starts resealing
// the KEKs under its current version. An HSM that does not answer is
// kms.ErrUnavailable.
func (s *Service) deviceAction(ctx context.Context, trigger string, fn func(context.Context) (uint32, error)) (Document, error) {
	_, err := s.job.Start(ctx, Task{
		Kind: KindRewrapKEKs, Trigger: trigger,
		Prepare: func(ctx context.Context) (uint32, error) {
			v, err := fn(ctx)
			if err != nil {
				return 0, &kms.Error{Op: trigger, Provider: kms.InternalRef().String(), Kind: kms.ErrUnavailable, Err: err}
			}
			s.log.InfoContext(ctx, "internal KMS: HSM root key "+trigger, "root_version", v)
			return v, nil
		},
		Run: s.rewrapKEKs,
	})
	if err != nil {
		return Document{}, err
	}
	return s.Document(ctx)
}

// load reads the key file and hands its keys to the KMS.
func (s *Service) load(ctx context.Context) error {
	keys, err := internalkms.LoadRootKeyFile(s.cfg.RootKeyFile)
	if err != nil {
		return &KeyFileError{Op: "loading", Path: s.cfg.RootKeyFile, Err: err}
	}
	if err := s.cfg.KMS.SetRootKeys(ctx, keys); err != nil {
		keys.Destroy()
		return err
	}
	return nil
}

func (s *Service) rewrapKEKs(ctx context.Context, target uint32, p *Progress) error {
	n, err := s.cfg.KMS.RewrapKEKsReporting(ctx, func(done, lost int) { p.Add(done, lost, 0) })
	if err != nil {
		return err
	}
	if n > 0 {
		s.log.Info("tenant KEKs rewrapped under the current root key", "count", n, "root_version", target)
	}
	return nil
}

// RotateTenantKey adds a KEK version for the tenant, which wraps its new
// data keys from now on in this process (in others once their KEK cache
// expires, within internalkms.DefaultKEKCacheTTL), and starts moving, in
// the background, its cipherkeys that older KEK versions wrap to the new
// one. Errors: keyring.ErrTenantNotFound, ErrNotInternal, ErrBusy,
// ErrClosed, kms.ErrUnavailable, fault.ErrStoreUnavailable.
func (s *Service) RotateTenantKey(ctx context.Context, tenantID string) (TenantRotation, error) {
	t, err := s.cfg.Tenants.Tenant(ctx, tenantID)
	if err != nil {
		return TenantRotation{}, err
	}
	if !t.Provider.IsInternal() {
		return TenantRotation{}, ErrNotInternal
	}
	st, err := s.job.Start(ctx, Task{
		Kind: KindRewrapCipherKeys, Trigger: "rotate-key", TenantID: tenantID,
		Prepare: func(ctx context.Context) (uint32, error) {
			v, err := s.cfg.KMS.RotateTenantKEK(ctx, tenantID)
			if err == nil {
				s.log.InfoContext(ctx, "internal KMS: tenant KEK rotated", "tenant", tenantID, "kek_version", v)
			}
			return v, err
		},
		Run: func(ctx context.Context, target uint32, p *Progress) error {
			return s.rewrapCipherKeys(ctx, tenantID, target, p)
		},
	})
	if err != nil {
		return TenantRotation{}, err
	}
	return TenantRotation{TenantID: tenantID, KEKVersion: st.Target, Job: st}, nil
}
