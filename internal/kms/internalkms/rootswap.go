package internalkms

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// ErrRootKeysRefused: SetRootKeys refused the new root keys, because using
// them would leave KEKs that no longer open; the error says why, and the
// Service keeps the keys it has.
var ErrRootKeysRefused = errors.New("root keys refused")

// rootHolder lets SetRootKeys replace a Service's root keys while other
// goroutines use them. Users hold the read lock for as long as they use a
// root key (a few seals or opens, never a store call), so once SetRootKeys
// holds the write lock no one uses the replaced keys any more, and they can
// be zeroed at once. Root keys are off the hot path: a tenant's KEKs are
// opened once per cache TTL, not per data key.
type rootHolder struct {
	mu    sync.RWMutex
	keys  Root
	owned bool // keys came from SetRootKeys, so the Service zeroes them
}

// with runs fn with the root keys, which stay in place until fn returns.
func (h *rootHolder) with(fn func(r Root) error) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return fn(h.keys)
}

func (h *rootHolder) current() uint32 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.keys.Current()
}

// RootKeyVersions returns the root key version that seals new KEKs and
// every loaded version, in ascending order.
func (s *Service) RootKeyVersions() (current uint32, loaded []uint32) {
	s.root.mu.RLock()
	defer s.root.mu.RUnlock()
	return s.root.keys.Current(), s.root.keys.Versions()
}

// KEKsByRootVersion counts the KEKs of every tenant by the root key version
// that seals them, from the store: a version that seals none can be removed
// from the key file. Errors: kms.ErrUnavailable.
func (s *Service) KEKsByRootVersion(ctx context.Context) (map[uint32]int, error) {
	counts, err := s.store.CountKEKsByRootVersion(ctx)
	if err != nil {
		return nil, opError("KEKsByRootVersion", kms.ErrUnavailable, fmt.Errorf("counting KEKs by root version: %w", err))
	}
	return counts, nil
}

// SetRootKeys makes next the root keys of s, for a key file that was
// rotated or edited while the process runs. Operations in flight finish
// with the keys they started with; from the return on, new KEKs are sealed
// by next's current version, and RewrapKEKs moves the others to it.
//
// It refuses (ErrRootKeysRefused) keys that would strand KEKs or go back:
// next must hold the loaded current version and every loaded version that
// still seals a KEK in the store, each with the same key, and its current
// version must not be older than the loaded one. Other processes that share
// the store are not consulted: see docs/operations.md before removing a
// version that they may still use.
//
// On success s owns next and zeroes it when it is replaced in turn or at
// Close; the keys it replaces are zeroed at once if they came from an
// earlier SetRootKeys, and left to their owner if they were given to New. On
// error next stays the caller's. Errors: ErrRootKeysRefused,
// kms.ErrUnavailable (the store could not count the KEKs).
func (s *Service) SetRootKeys(ctx context.Context, next *RootKeys) error {
	if next == nil || next.Current() == 0 {
		return fmt.Errorf("internalkms: %w: no root keys given", ErrRootKeysRefused)
	}
	// Counted before the swap: a KEK sealed meanwhile by this process uses
	// the loaded current version, which next must hold anyway.
	counts, err := s.KEKsByRootVersion(ctx)
	if err != nil {
		return err
	}
	h := s.root
	h.mu.Lock()
	prev, isFile := h.keys.(*RootKeys)
	owned := h.owned
	if !isFile {
		h.mu.Unlock()
		return fmt.Errorf("internalkms: %w: this server's root key is not a key file (it is in an HSM); "+
			"rotate it with `tenantcrypt rootkey rotate` and the HSM flags", ErrRootKeysRefused)
	}
	if prev == next {
		h.mu.Unlock()
		return nil
	}
	if err := compatibleRootKeys(prev, next, counts); err != nil {
		h.mu.Unlock()
		return fmt.Errorf("internalkms: %w: %v", ErrRootKeysRefused, err)
	}
	h.keys, h.owned = next, true
	h.mu.Unlock()
	if owned {
		prev.Destroy()
	}
	return nil
}

// compatibleRootKeys says why next cannot replace prev, if it cannot. The
// reasons name versions and counts, never keys.
func compatibleRootKeys(prev, next *RootKeys, keks map[uint32]int) error {
	if pc, nc := prev.Current(), next.Current(); nc < pc {
		return fmt.Errorf("the new current root key version %d is older than the loaded current version %d; "+
			"a reload never goes back (restart with the older keys if you must)", nc, pc)
	}
	if cur := prev.Current(); next.key(cur) == nil {
		return fmt.Errorf("the new root keys lack version %d, the loaded current version, which seals the KEKs made until now", cur)
	}
	for _, v := range prev.Versions() {
		nk := next.key(v)
		if nk == nil {
			continue
		}
		if subtle.ConstantTimeCompare(nk.Reveal(), prev.key(v).Reveal()) != 1 {
			return fmt.Errorf("root key version %d differs from the loaded version %d: is this the right key file?", v, v)
		}
	}
	for _, v := range slices.Sorted(maps.Keys(keks)) {
		if n := keks[v]; n > 0 && prev.key(v) != nil && next.key(v) == nil {
			return fmt.Errorf("the new root keys lack version %d, which still seals %d tenant KEK(s); "+
				"keep it until they are rewrapped under the current version", v, n)
		}
	}
	return nil
}

// Close zeroes every cached KEK and the root keys that SetRootKeys handed
// over (the ones given to New stay their owner's to destroy). Call it at
// shutdown, once nothing uses s: later operations fail or reload.
func (s *Service) Close() {
	s.root.mu.Lock()
	if rk, ok := s.root.keys.(*RootKeys); ok && s.root.owned {
		rk.Destroy()
	}
	s.root.mu.Unlock()
	s.cache.purge()
}
