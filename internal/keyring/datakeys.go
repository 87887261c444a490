package keyring

import (
	"context"
	"errors"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// IssuedDataKey is a fresh data key for a caller's local envelope
// encryption: the plaintext, which the caller must Destroy after use, and
// the handle that resolves to it again.
type IssuedDataKey struct {
	Plaintext *secret.Bytes
	Handle    string
}

// IssuePlaintextDataKey makes a fresh data key for the tenant, bound to
// ectx, stores it wrapped by the tenant's current provider, and hands out its
// plaintext and handle.
// Errors: ErrTenantNotFound, *TenantStateError, *fault.InputError, KMS errors.
func (s *Service) IssuePlaintextDataKey(ctx context.Context, tenantID string, ectx envelope.Context) (IssuedDataKey, error) {
	digest, err := ectx.Digest()
	if err != nil {
		return IssuedDataKey{}, &fault.InputError{Field: "context", Reason: err.Error()}
	}
	var (
		t  Tenant
		ck CipherKey
		l  loaded
	)
	// The store refuses a key wrapped by a provider the tenant has left (a
	// switch made by another process that this one's copy of the tenant
	// has not caught up with yet): read the tenant again and make the key
	// with its new provider.
	for attempt := 1; ; attempt++ {
		var te *tenantEntry
		if te, t, err = s.usableTenant(ctx, tenantID); err != nil {
			return IssuedDataKey{}, err
		}
		if ck, l, err = s.generate(ctx, t, PurposeDataKey, digest); err != nil {
			return IssuedDataKey{}, err
		}
		err = s.cfg.Store.InsertCipherKey(ctx, ck)
		if err == nil {
			break
		}
		l.key.Destroy()
		if !errors.Is(err, fault.ErrConflict) || attempt == 3 {
			return IssuedDataKey{}, storeError("storing data key", err)
		}
		te.snap.Store(nil)
	}
	bin, err := envelope.Handle{KeyID: ck.ID}.MarshalBinary()
	if err != nil {
		l.key.Destroy()
		return IssuedDataKey{}, err
	}
	handle, err := envelope.FormatText(s.cfg.Providers.Prefix(t.ID, ck.Provider), bin)
	if err != nil {
		l.key.Destroy()
		return IssuedDataKey{}, err
	}
	plaintext := l.key.Clone()
	s.cache.put(cacheKey{t.ID, ck.ID}, l)
	return IssuedDataKey{Plaintext: plaintext, Handle: handle}, nil
}

// ResolvePlaintextDataKey returns the plaintext of a data key issued by
// IssuePlaintextDataKey for the same tenant and ectx; the caller must
// Destroy it. Any handle that does not resolve is ErrDecrypt.
func (s *Service) ResolvePlaintextDataKey(ctx context.Context, tenantID string, ectx envelope.Context, handle string) (*secret.Bytes, error) {
	_, bin, err := envelope.ParseText(handle)
	if err != nil {
		return nil, ErrDecrypt
	}
	h, err := envelope.ParseHandle(bin)
	if err != nil {
		return nil, ErrDecrypt
	}
	digest, err := ectx.Digest()
	if err != nil {
		return nil, &fault.InputError{Field: "context", Reason: err.Error()}
	}
	if _, _, err := s.usableTenant(ctx, tenantID); err != nil {
		return nil, err
	}
	var out *secret.Bytes
	load := func(ctx context.Context) (loaded, error) {
		return s.unwrap(ctx, tenantID, h.KeyID, PurposeDataKey, digest)
	}
	err = s.cache.use(ctx, cacheKey{tenantID, h.KeyID}, PurposeDataKey, digest, load, func(key []byte) error {
		out = secret.New(append([]byte(nil), key...))
		return nil
	})
	return out, err
}
