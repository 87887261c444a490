package internalkms

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// Root is the versioned root key that seals tenants' KEKs: the root key
// file or environment value (*RootKeys, keys in memory), or an HSM (package
// internalkms/pkcs11, keys that never leave the device). The Service calls
// it only when a KEK is created, rewrapped, or loaded after a cache miss,
// never per data key. Implementations are safe for concurrent use.
type Root interface {
	// Current is the version that seals new and rewrapped KEKs; 0 if none.
	Current() uint32
	// Versions lists the versions this Root can use now, ascending.
	Versions() []uint32
	// Seal encrypts plaintext with AES-256-GCM under root version v, with
	// a fresh random 96-bit nonce and ad as associated data, and returns
	// nonce | ciphertext | tag. Errors: ErrRootVersionMissing; any other
	// error means the root key cannot be used now (device down, wrong
	// PIN, destroyed keys) and never contains key material.
	Seal(ctx context.Context, v uint32, plaintext *secret.Bytes, ad []byte) ([]byte, error)
	// Open reverses Seal. Errors: ErrRootVersionMissing, ErrSealedKEK (the
	// input does not authenticate under v and ad), or another error as
	// for Seal.
	Open(ctx context.Context, v uint32, sealed, ad []byte) (*secret.Bytes, error)
}

// Root errors.
var (
	// ErrRootVersionMissing: the Root has no such version (a file without
	// it, an HSM token without that key object).
	ErrRootVersionMissing = errors.New("root key version is not available")
	// ErrSealedKEK: a sealed value does not open under the given version
	// and associated data: the wrong root key, or altered data.
	ErrSealedKEK = errSealedKEK
)

var _ Root = (*RootKeys)(nil)

// Seal implements Root with the in-memory key of version v.
func (r *RootKeys) Seal(_ context.Context, v uint32, plaintext *secret.Bytes, ad []byte) ([]byte, error) {
	key := r.key(v)
	if key == nil {
		return nil, fmt.Errorf("%w: version %d (loaded: %v)", ErrRootVersionMissing, v, r.Versions())
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return aead.Seal(nil, nil, plaintext.Reveal(), ad), nil
}

// Open implements Root with the in-memory key of version v.
func (r *RootKeys) Open(_ context.Context, v uint32, sealed, ad []byte) (*secret.Bytes, error) {
	key := r.key(v)
	if key == nil {
		return nil, fmt.Errorf("%w: version %d (loaded: %v)", ErrRootVersionMissing, v, r.Versions())
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, nil, sealed, ad)
	if err != nil {
		return nil, errSealedKEK
	}
	return secret.New(pt), nil
}

// CombinedRoot uses next for its versions and everything else from prev:
// a Root for moving the KEKs from one kind of root key to another (file to
// HSM and back, `tenantcrypt rootkey migrate`), where next's current version
// seals and prev's versions still open what they sealed. The versions of
// the two must not overlap; NewCombinedRoot checks that.
type CombinedRoot struct {
	prev, next Root
}

var _ Root = (*CombinedRoot)(nil)

// NewCombinedRoot returns the Root that seals with next's current version
// and opens every version of prev and next. Errors: the two share a version.
func NewCombinedRoot(prev, next Root) (*CombinedRoot, error) {
	for _, v := range prev.Versions() {
		if slices.Contains(next.Versions(), v) {
			return nil, fmt.Errorf("internalkms: root key version %d exists in both the old and the new root keys; "+
				"the new root's versions must be above the old ones", v)
		}
	}
	return &CombinedRoot{prev: prev, next: next}, nil
}

// Current is next's current version.
func (c *CombinedRoot) Current() uint32 { return c.next.Current() }

// Versions lists both roots' versions.
func (c *CombinedRoot) Versions() []uint32 {
	vs := append(c.prev.Versions(), c.next.Versions()...)
	slices.Sort(vs)
	return slices.Compact(vs)
}

// pick prefers next: an HSM's Versions lists only the versions it has
// used so far, and opens the others on demand.
func (c *CombinedRoot) pick(v uint32) Root {
	if slices.Contains(c.next.Versions(), v) {
		return c.next
	}
	return c.prev
}

// Seal seals with whichever root holds v.
func (c *CombinedRoot) Seal(ctx context.Context, v uint32, plaintext *secret.Bytes, ad []byte) ([]byte, error) {
	return c.pick(v).Seal(ctx, v, plaintext, ad)
}

// Open opens with whichever root holds v.
func (c *CombinedRoot) Open(ctx context.Context, v uint32, sealed, ad []byte) (*secret.Bytes, error) {
	return c.pick(v).Open(ctx, v, sealed, ad)
}

// sealKEKWith seals a KEK under root version rootVersion in the KEK format
// (see format.go).
func sealKEKWith(ctx context.Context, root Root, tenantID string, kekVersion, rootVersion uint32, kek *secret.Bytes) ([]byte, error) {
	if kek.Len() != keySize {
		return nil, errKeyUnusable
	}
	sealed, err := root.Seal(ctx, rootVersion, kek, kekAD(tenantID, kekVersion, rootVersion))
	if err != nil {
		return nil, err
	}
	if len(sealed) != sealedKEKSize-1 {
		return nil, fmt.Errorf("root key version %d sealed a KEK into %d bytes, want %d", rootVersion, len(sealed), sealedKEKSize-1)
	}
	return append([]byte{formatV1}, sealed...), nil
}

// openKEKWith opens a KEK row with the root version that sealed it.
func openKEKWith(ctx context.Context, root Root, k KEK) (*secret.Bytes, error) {
	if len(k.Wrapped) != sealedKEKSize || k.Wrapped[0] != formatV1 {
		return nil, errSealedKEK
	}
	kek, err := root.Open(ctx, k.RootVersion, k.Wrapped[1:], kekAD(k.TenantID, k.Version, k.RootVersion))
	if err != nil {
		return nil, err
	}
	if kek.Len() != keySize {
		kek.Destroy()
		return nil, errSealedKEK
	}
	return kek, nil
}
