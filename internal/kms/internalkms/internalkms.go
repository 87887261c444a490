// Package internalkms is tenantcrypt's own key management system, the
// default kms.Provider of every tenant that has not brought a customer
// managed key.
//
// Its key hierarchy has three levels:
//
//	root key (Root: a key file or TENANTCRYPT_ROOT_KEYS as RootKeys, or an HSM
//	          through package internalkms/pkcs11; versioned, never in the database)
//	  └─ per-tenant KEK (versioned, stored sealed in a Store)
//	       └─ data keys (kms.Wrapped blobs, kept by the keyring)
//
// Use New to build the Service once at start, ForTenant to get a tenant's
// kms.Provider, RotateTenantKEK (+ RewrapDataKey) and RotateRootKeyFile +
// SetRootKeys + RewrapKEKs to rotate, Forget after deleting a tenant, Check
// for readiness and Close at shutdown. All ciphers are
// AES-256-GCM with random nonces; every sealed value authenticates the tenant
// and versions that select its key, so rows and blobs cannot be moved.
package internalkms

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// Defaults for the Options.
const (
	// DefaultKEKCacheSize bounds how many tenants' KEKs stay unwrapped in
	// memory; a miss costs one store read and a root-key open.
	DefaultKEKCacheSize = 10_000
	// DefaultKEKCacheTTL bounds how long another replica's KEK rotation
	// goes unnoticed (new wraps keep using the previous, still valid,
	// version) and how long a deleted tenant's KEKs linger on replicas that
	// were not told to Forget it.
	DefaultKEKCacheTTL = 5 * time.Minute
	// DefaultRewrapBatchSize is how many KEK rows RewrapKEKs reads at a time.
	DefaultRewrapBatchSize = 100
)

// Service is the internal KMS. It is safe for concurrent use; several
// processes may share one Store as long as they load the same root keys.
type Service struct {
	root        *rootHolder // a pointer, so that printing a Service by value copies no lock
	store       Store
	cache       *kekCache
	rewrapBatch int
}

// Option tunes a Service.
type Option func(*options)

type options struct {
	cacheSize   int
	cacheTTL    time.Duration
	rewrapBatch int
}

// WithKEKCacheSize sets how many tenants' KEKs are kept unwrapped in
// memory; n <= 0 disables the cache, so every operation reads the store.
func WithKEKCacheSize(n int) Option { return func(o *options) { o.cacheSize = n } }

// WithKEKCacheTTL sets how long unwrapped KEKs stay cached after they are
// loaded; d <= 0 disables the cache.
func WithKEKCacheTTL(d time.Duration) Option { return func(o *options) { o.cacheTTL = d } }

// WithRewrapBatchSize sets how many KEK rows RewrapKEKs handles per store
// read; n <= 0 keeps DefaultRewrapBatchSize.
func WithRewrapBatchSize(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.rewrapBatch = n
		}
	}
}

// New returns the internal KMS sealing KEKs with roots and keeping them in
// store. It does not take ownership of roots. Nil roots or store is a wiring
// bug and panics.
func New(roots Root, store Store, opts ...Option) *Service {
	if rk, ok := roots.(*RootKeys); roots == nil || store == nil || (ok && rk == nil) {
		panic("internalkms: New needs root keys and a store")
	}
	o := options{cacheSize: DefaultKEKCacheSize, cacheTTL: DefaultKEKCacheTTL, rewrapBatch: DefaultRewrapBatchSize}
	for _, opt := range opts {
		opt(&o)
	}
	return &Service{
		root:        &rootHolder{keys: roots},
		store:       store,
		cache:       newKEKCache(o.cacheSize, o.cacheTTL),
		rewrapBatch: o.rewrapBatch,
	}
}

// ForTenant returns tenantID's view of the internal KMS. The tenant's first
// KEK is created on its first Wrap or GenerateDataKey, not here, so this is
// cheap and never fails; an empty tenantID makes every call fail.
func (s *Service) ForTenant(tenantID string) kms.Provider {
	return &provider{s: s, tenantID: tenantID}
}

// Forget zeroes and drops tenantID's cached KEKs. Call it after the tenant's
// KEKs were deleted from the store, so that this process stops unwrapping
// its data keys at once instead of at the end of the cache TTL.
func (s *Service) Forget(tenantID string) {
	s.cache.forget(tenantID)
}

// Check reports whether the current root key is loaded and seals and opens,
// for a readiness probe. It reads no store.
func (s *Service) Check(ctx context.Context) error {
	return s.checkRoot(ctx, "Check")
}

// String describes s without any key material.
func (s Service) String() string {
	return fmt.Sprintf("internalkms.Service{root: v%d, cachedTenants: %d}", s.root.current(), s.cache.len())
}

// Format prints String for every verb, so that no formatting path can reach
// cached KEKs through reflection. Value receivers, as on RootKeys, cover a
// dereferenced Service too.
func (s Service) Format(f fmt.State, _ rune) {
	_, _ = io.WriteString(f, s.String())
}

var errNoTenant = errors.New("internalkms: empty tenant id")

func opError(op string, kind, cause error) *kms.Error {
	return &kms.Error{Op: op, Provider: kms.InternalRef().String(), Kind: kind, Err: cause}
}

// invalidCiphertext is deliberately bare: which check failed would help
// only an attacker probing the format.
func invalidCiphertext(op string) *kms.Error {
	return opError(op, kms.ErrInvalidCiphertext, nil)
}

// ctxError turns a done context into ErrUnavailable while keeping
// errors.Is(err, context.Canceled) true for callers that care why.
func ctxError(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return opError(op, kms.ErrUnavailable, err)
	}
	return nil
}

func (s *Service) checkRoot(ctx context.Context, op string) error {
	if err := ctxError(ctx, op); err != nil {
		return err
	}
	return s.root.with(func(r Root) error {
		cur := r.Current()
		if cur == 0 {
			return opError(op, kms.ErrUnavailable, errors.New("no current root key version"))
		}
		ad := appendString(nil, probeDomain)
		probe := secret.New([]byte("readiness probe"))
		defer probe.Destroy()
		sealed, err := r.Seal(ctx, cur, probe, ad)
		if err != nil {
			return opError(op, kms.ErrUnavailable, fmt.Errorf("root key version %d: %w", cur, err))
		}
		got, err := r.Open(ctx, cur, sealed, ad)
		if err != nil {
			return opError(op, kms.ErrUnavailable, fmt.Errorf("root key version %d does not round-trip: %w", cur, err))
		}
		defer got.Destroy()
		if string(got.Reveal()) != string(probe.Reveal()) {
			return opError(op, kms.ErrUnavailable, fmt.Errorf("root key version %d does not round-trip", cur))
		}
		return nil
	})
}

// kekSet returns tenantID's KEKs with a cache reference taken, loading them
// on a miss. With create, a tenant without KEKs gets version 1.
func (s *Service) kekSet(ctx context.Context, op, tenantID string, create bool) (*kekSet, error) {
	if set := s.cache.acquire(tenantID); set != nil {
		return set, nil
	}
	return s.load(ctx, op, tenantID, create)
}

func (s *Service) load(ctx context.Context, op, tenantID string, create bool) (*kekSet, error) {
	gen := s.cache.generation()
	rows, err := s.store.KEKs(ctx, tenantID)
	if err != nil {
		return nil, opError(op, kms.ErrUnavailable, fmt.Errorf("reading KEKs of tenant %q: %w", tenantID, err))
	}
	if len(rows) == 0 {
		if !create {
			// No KEK at all: the tenant was deleted (crypto-shredded), or
			// never wrapped anything, so nothing can have been wrapped for it.
			return nil, opError(op, kms.ErrKeyNotFound, fmt.Errorf("tenant %q has no KEK", tenantID))
		}
		if err := s.insertKEK(ctx, op, tenantID, 1); err != nil && !errors.Is(err, ErrKEKExists) {
			return nil, err
		}
		// Whether ours or a concurrent creator's won, use what is stored.
		rows, err = s.store.KEKs(ctx, tenantID)
		if err != nil {
			return nil, opError(op, kms.ErrUnavailable, fmt.Errorf("reading KEKs of tenant %q: %w", tenantID, err))
		}
		if len(rows) == 0 {
			return nil, opError(op, kms.ErrKeyNotFound, fmt.Errorf("tenant %q's new KEK vanished; was the tenant deleted?", tenantID))
		}
	}
	set, err := s.openKEKs(ctx, op, tenantID, rows)
	if err != nil {
		return nil, err
	}
	return s.cache.addIfCurrent(set, gen), nil
}

// insertKEK seals a fresh KEK version under the current root key and stores
// it. Errors: a *kms.Error, or ErrKEKExists from the store unwrapped, for
// callers that resolve the race themselves.
func (s *Service) insertKEK(ctx context.Context, op, tenantID string, version uint32) error {
	kek, err := secret.Random(keySize)
	if err != nil {
		return opError(op, kms.ErrUnavailable, err)
	}
	defer kek.Destroy()
	var rootVersion uint32
	var sealed []byte
	err = s.root.with(func(r Root) error {
		rootVersion = r.Current()
		if rootVersion == 0 {
			return opError(op, kms.ErrUnavailable, errors.New("no current root key version"))
		}
		var err error
		if sealed, err = sealKEKWith(ctx, r, tenantID, version, rootVersion, kek); err != nil {
			return opError(op, kms.ErrUnavailable, fmt.Errorf("sealing KEK under root key version %d: %w", rootVersion, err))
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = s.store.InsertKEK(ctx, KEK{
		TenantID:    tenantID,
		Version:     version,
		RootVersion: rootVersion,
		Wrapped:     sealed,
		CreatedAt:   time.Now().UTC(),
	})
	if errors.Is(err, ErrKEKExists) {
		return ErrKEKExists
	}
	if err != nil {
		return opError(op, kms.ErrUnavailable, fmt.Errorf("storing KEK v%d of tenant %q: %w", version, tenantID, err))
	}
	return nil
}

// openKEKs unwraps a tenant's KEK rows. A row that will not open is the
// operator's problem (a missing or wrong root key, an altered row), not the
// caller's ciphertext, so it is ErrUnavailable, never ErrInvalidCiphertext,
// and never ErrKeyNotFound, which would read as a destroyed tenant.
func (s *Service) openKEKs(ctx context.Context, op, tenantID string, rows []KEK) (_ *kekSet, err error) {
	set := &kekSet{tenantID: tenantID, keys: make(map[uint32]*secret.Bytes, len(rows))}
	defer func() {
		if err != nil {
			set.destroy()
		}
	}()
	err = s.root.with(func(r Root) error {
		for _, row := range rows {
			if row.TenantID != tenantID || row.Version == 0 {
				return opError(op, kms.ErrUnavailable, fmt.Errorf("store returned KEK v%d of tenant %q for tenant %q", row.Version, row.TenantID, tenantID))
			}
			kek, err := openKEKWith(ctx, r, row)
			if err != nil {
				return opError(op, kms.ErrUnavailable, kekOpenError(row, r, err))
			}
			if _, dup := set.keys[row.Version]; dup {
				kek.Destroy()
				return opError(op, kms.ErrUnavailable, fmt.Errorf("store returned KEK v%d of tenant %q twice", row.Version, tenantID))
			}
			set.keys[row.Version] = kek
			set.current = max(set.current, row.Version)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return set, nil
}

// kekOpenError says why a KEK row did not open, for the operator.
func kekOpenError(row KEK, r Root, err error) error {
	switch {
	case errors.Is(err, ErrRootVersionMissing):
		return fmt.Errorf("KEK v%d of tenant %q is sealed by root key version %d, which this process has not loaded (loaded: %v)",
			row.Version, row.TenantID, row.RootVersion, r.Versions())
	case errors.Is(err, errSealedKEK):
		return fmt.Errorf("KEK v%d of tenant %q does not open under root key version %d: wrong root key, or the row was altered",
			row.Version, row.TenantID, row.RootVersion)
	}
	return fmt.Errorf("opening KEK v%d of tenant %q under root key version %d: %w", row.Version, row.TenantID, row.RootVersion, err)
}
