package keyring

import (
	"context"
	"errors"
	"fmt"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// useActiveKey takes one use of the tenant's active data key, reserving a
// new block of uses or rotating the key when this process has none left or
// the key is too old.
func (s *Service) useActiveKey(ctx context.Context, te *tenantEntry, t Tenant) (*activeKey, error) {
	if ak := te.active.Load(); ak != nil && s.fresh(ak) && ak.left.Add(-1) >= 0 {
		return ak, nil
	}
	te.mu.Lock()
	defer te.mu.Unlock()
	if te.removed {
		return nil, ErrTenantNotFound
	}
	// Another caller may have refilled it while we waited for the lock.
	if ak := te.active.Load(); ak != nil && s.fresh(ak) && ak.left.Add(-1) >= 0 {
		return ak, nil
	}
	ak, err := s.refillActiveKey(ctx, te, t)
	if err != nil {
		return nil, err
	}
	ak.left.Add(-1) // this caller's use
	te.active.Store(ak)
	return ak, nil
}

func (s *Service) fresh(ak *activeKey) bool {
	return s.cfg.Now().Sub(ak.createdAt) < s.cfg.MaxKeyAge
}

// refillActiveKey reserves a block of uses of the stored active key, or
// rotates to a new one. Rotation is a compare-and-swap in the store, so
// concurrent rotations (in this process or others) agree on one winner, and
// the store refuses a key of another provider than the tenant's: a process
// whose copy of the tenant missed a provider switch reads the tenant again
// and rotates to (or uses) a key of the new provider instead. te.mu is held.
func (s *Service) refillActiveKey(ctx context.Context, te *tenantEntry, t Tenant) (*activeKey, error) {
	const maxAttempts = 8
	for range maxAttempts {
		cur, err := s.cfg.Store.ActiveCipherKey(ctx, t.ID)
		var prev *envelope.KeyID
		switch {
		case errors.Is(err, fault.ErrNotFound):
			// No active key yet: make the first.
		case err != nil:
			return nil, storeError("reading active key", err)
		default:
			prev = &cur.ID
			// A key made by another provider than the tenant's current one
			// is replaced, so that after a provider switch new data is
			// encrypted under a key the new provider made.
			if s.cfg.Now().Sub(cur.CreatedAt) < s.cfg.MaxKeyAge && cur.Provider == t.Provider {
				_, err := s.cfg.Store.ReserveUses(ctx, t.ID, cur.ID, s.cfg.UseBlock, s.cfg.MaxKeyUses)
				if err == nil {
					return s.newActiveKey(t, cur), nil
				}
				if !errors.Is(err, ErrExhausted) && !errors.Is(err, fault.ErrNotFound) {
					return nil, storeError("reserving key uses", err)
				}
			}
		}
		next, err := s.rotate(ctx, t, prev)
		if errors.Is(err, fault.ErrConflict) {
			// Someone else rotated first (use theirs), or the tenant's
			// provider is no longer t's.
			now, err := s.Tenant(ctx, t.ID)
			if err != nil {
				return nil, err
			}
			if now.Provider != t.Provider {
				te.snap.Store(nil) // read again at next use
				if now.State != StateActive {
					return nil, stateError(now)
				}
				t = now
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		return next, nil
	}
	return nil, fmt.Errorf("keyring: rotating the active key of tenant %s: %w", t.ID, fault.ErrConflict)
}

// rotate makes a new data key with the tenant's current provider and makes
// it active in place of prev. Errors: fault.ErrConflict when prev is no longer the
// active key.
func (s *Service) rotate(ctx context.Context, t Tenant, prev *envelope.KeyID) (*activeKey, error) {
	ck, l, err := s.generate(ctx, t, PurposeEncryption, [32]byte{})
	if err != nil {
		return nil, err
	}
	ck.UsesReserved = s.cfg.UseBlock
	if err := s.cfg.Store.ActivateCipherKey(ctx, t.ID, prev, ck); err != nil {
		l.key.Destroy()
		if errors.Is(err, fault.ErrConflict) {
			return nil, fault.ErrConflict
		}
		if errors.Is(err, fault.ErrNotFound) {
			return nil, ErrTenantNotFound
		}
		return nil, storeError("activating a new data key", err)
	}
	s.cache.put(cacheKey{t.ID, ck.ID}, l)
	s.cfg.Logger.InfoContext(ctx, "data key rotated", "tenant", t.ID, "key", ck.ID.String(), "provider", ck.Provider)
	if s.cfg.OnKeyRotated != nil {
		s.cfg.OnKeyRotated(t.ID, ck.ID.String(), ck.Provider)
	}
	return s.newActiveKey(t, ck), nil
}

func (s *Service) newActiveKey(t Tenant, ck CipherKey) *activeKey {
	ak := &activeKey{id: ck.ID, prefix: s.cfg.Providers.Prefix(t.ID, ck.Provider), createdAt: ck.CreatedAt}
	ak.left.Store(s.cfg.UseBlock)
	return ak
}

// generate makes a fresh data key with the tenant's current provider and
// returns it as a cipherkey to store and as a plaintext to cache.
func (s *Service) generate(ctx context.Context, t Tenant, purpose Purpose, digest [32]byte) (CipherKey, loaded, error) {
	id, err := envelope.NewKeyID()
	if err != nil {
		return CipherKey{}, loaded{}, err
	}
	p, err := s.cfg.Providers.Provider(ctx, t.ID, t.Provider)
	if err != nil {
		return CipherKey{}, loaded{}, err
	}
	key, w, err := p.GenerateDataKey(ctx, binding(t.ID, id, purpose, digest))
	if err != nil {
		s.noticeKeyError(ctx, t.ID, t.Provider, err)
		return CipherKey{}, loaded{}, err
	}
	if err := s.markInUse(ctx, t.ID, p.Ref()); err != nil {
		key.Destroy()
		return CipherKey{}, loaded{}, err
	}
	if key.Len() != kms.DataKeySize {
		key.Destroy()
		return CipherKey{}, loaded{}, fmt.Errorf("keyring: provider %s generated a key of the wrong size", t.Provider)
	}
	ck := CipherKey{
		TenantID: t.ID, ID: id, Purpose: purpose, Provider: p.Ref(),
		KeyVersion: w.KeyVersion, Wrapped: w.Blob, CreatedAt: s.now(),
	}
	if purpose == PurposeDataKey {
		ck.ContextDigest = digest[:]
	}
	return ck, loaded{key: key, purpose: purpose, digest: digest}, nil
}
