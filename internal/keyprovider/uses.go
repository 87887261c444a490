package keyprovider

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// What the rest of the service asks of registrations, by a provider Ref:
// the registry opens them (Open), the key monitor inspects them (Inspect,
// RecordCompliance, Home, Failover) and migrations name and stamp them
// (KeyARN, Stamp). Each caller declares the few of these it uses.

// registration returns the registration ref names. Errors:
// keyring.ErrUnknownProvider for a Ref that names none (the internal KMS,
// a registration deleted since), *fault.StoreError.
func (s *Service) registration(ctx context.Context, tenantID string, ref kms.Ref) (Provider, error) {
	fp, ok := ref.Fingerprint()
	if !ok {
		return Provider{}, keyring.ErrUnknownProvider
	}
	p, err := s.Get(ctx, tenantID, fp)
	if errors.Is(err, ErrNotFound) {
		return Provider{}, keyring.ErrUnknownProvider
	}
	return p, err
}

// settingsRecheck is how long Open serves a provider it opened before it
// reads the registration again: settings changed through another replica
// (a KMIP certificate renewed by PATCH) reach this one within it.
const settingsRecheck = 30 * time.Second

// opened is a provider Open keeps, with the digest of the settings it was
// opened with and when they were last found current.
type opened struct {
	p       kms.Provider
	digest  [sha256.Size]byte
	checked atomic.Int64 // unix nanoseconds
}

// settingsDigest identifies a registration's settings: what Open gives
// its kind beside the registration's identity.
func settingsDigest(p Provider) [sha256.Size]byte {
	h := sha256.New()
	for _, part := range [][]byte{[]byte(p.Kind), p.Config, p.WrappedSecret} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	return [sha256.Size]byte(h.Sum(nil))
}

// Open returns the provider ref names for the tenant, through its kind,
// and keeps it for the next Open until the registration's settings change
// (here at once; through another replica within settingsRecheck). It
// calls no key manager. Errors: keyring.ErrUnknownProvider (no such
// registration, or of a kind this service was not given),
// *fault.StoreError, the kind's Open errors, errors unwrapping its
// secret (kms errors of the internal KMS).
func (s *Service) Open(ctx context.Context, tenantID string, ref kms.Ref) (kms.Provider, error) {
	key := openedKey{tenantID, ref}
	v, ok := s.opened.Load(key)
	if ok && s.cfg.Now().Sub(time.Unix(0, v.(*opened).checked.Load())) < settingsRecheck {
		return v.(*opened).p, nil
	}
	p, err := s.registration(ctx, tenantID, ref)
	switch {
	case ok && errors.Is(err, fault.ErrStoreUnavailable):
		// The database is down: what is open stays good, as the data
		// keys in the keyring's cache do.
		return v.(*opened).p, nil
	case err != nil:
		s.drop(key)
		return nil, err
	}
	digest := settingsDigest(p)
	if ok && v.(*opened).digest == digest {
		v.(*opened).checked.Store(s.cfg.Now().UnixNano())
		return v.(*opened).p, nil
	}
	kind, err := s.kindOf(p)
	if errors.Is(err, ErrUnknownKind) {
		return nil, keyring.ErrUnknownProvider
	}
	if err != nil {
		return nil, err
	}
	sec, err := s.unwrapSecret(ctx, p)
	if err != nil {
		return nil, err
	}
	defer sec.Destroy()
	kp, err := kind.Open(ctx, Target{Provider: p, Secret: sec}, ref)
	if err != nil {
		return nil, err
	}
	o := &opened{p: kp, digest: digest}
	o.checked.Store(s.cfg.Now().UnixNano())
	if old, loaded := s.opened.Swap(key, o); loaded {
		closeProvider(old.(*opened).p)
	}
	return kp, nil
}

// drop forgets the provider Open kept under key, if any.
func (s *Service) drop(key openedKey) {
	if old, loaded := s.opened.LoadAndDelete(key); loaded {
		closeProvider(old.(*opened).p)
	}
}

// closeProvider releases what a provider holds open (a KMIP client's idle
// connections) once nothing new will use it; calls in flight finish.
func closeProvider(p kms.Provider) {
	if c, ok := p.(interface{ Close() }); ok {
		c.Close()
	}
}

// Forget drops the providers Open kept for the tenant, after it was
// deleted (keyring.TenantForgetter).
func (s *Service) Forget(tenantID string) {
	s.opened.Range(func(k, _ any) bool {
		if k.(openedKey).tenantID == tenantID {
			s.drop(k.(openedKey))
		}
		return true
	})
}

// Inspect checks the key ref names through its kind (see
// Inspector.Inspect); ok is false when its kind does not inspect keys.
// Errors: keyring.ErrUnknownProvider, *fault.StoreError, errors
// unwrapping its secret.
func (s *Service) Inspect(ctx context.Context, tenantID string, ref kms.Ref, probe bool) (in Inspection, ok bool, err error) {
	p, err := s.registration(ctx, tenantID, ref)
	if err != nil {
		return Inspection{}, false, err
	}
	kind, err := s.kindOf(p)
	if err != nil {
		return Inspection{}, false, err
	}
	inspector, ok := kind.(Inspector)
	if !ok {
		return Inspection{}, false, nil
	}
	sec, err := s.unwrapSecret(ctx, p)
	if err != nil {
		return Inspection{}, false, err
	}
	defer sec.Destroy()
	return inspector.Inspect(ctx, Target{Provider: p, Secret: sec}, probe), true, nil
}

// RecordCompliance records the DR compliance a key check found, if it
// differs from the stored one (changed is false otherwise).
// Errors: keyring.ErrUnknownProvider, *fault.StoreError.
func (s *Service) RecordCompliance(ctx context.Context, tenantID string, ref kms.Ref, c Compliance, at time.Time) (changed bool, err error) {
	p, err := s.registration(ctx, tenantID, ref)
	if err != nil {
		return false, err
	}
	if c.DRCompliant == p.DRCompliant && c.Error == p.Compliance {
		return false, nil
	}
	if err := s.cfg.Store.SetKeyProviderCompliance(ctx, tenantID, p.Fingerprint, c.DRCompliant, c.Error, at); err != nil {
		if errors.Is(err, fault.ErrNotFound) {
			return false, keyring.ErrUnknownProvider
		}
		return false, &fault.StoreError{Op: "recording DR compliance", Err: err}
	}
	return true, nil
}

// Home returns the place whose check decides the state of the tenant on
// ref's key ("" if its kind names none).
// Errors: keyring.ErrUnknownProvider, *fault.StoreError.
func (s *Service) Home(ctx context.Context, tenantID string, ref kms.Ref) (string, error) {
	p, err := s.registration(ctx, tenantID, ref)
	if err != nil {
		return "", err
	}
	if h, ok := s.kinds[p.Kind].(HomeReporter); ok && p.Key != nil {
		return h.Home(Target{Provider: p}), nil
	}
	return "", nil
}

// Failover reports whether calls for ref's key go to a replica now (the
// zero Failover for a kind without replicas).
// Errors: keyring.ErrUnknownProvider, *fault.StoreError.
func (s *Service) Failover(ctx context.Context, tenantID string, ref kms.Ref) (Failover, error) {
	p, err := s.registration(ctx, tenantID, ref)
	if err != nil {
		return Failover{}, err
	}
	if f, ok := s.kinds[p.Kind].(FailoverReporter); ok && p.Key != nil {
		return f.Failover(Target{Provider: p}), nil
	}
	return Failover{}, nil
}

// KeyARN names the customer managed key ref stands for, as registered
// (its canonical identity), or by its fingerprint when the registration is
// gone; "" for a Ref that names no customer managed key.
func (s *Service) KeyARN(ctx context.Context, tenantID string, ref kms.Ref) string {
	fp, ok := ref.Fingerprint()
	if !ok {
		return ""
	}
	if p, err := s.Get(ctx, tenantID, fp); err == nil {
		return p.ARN
	}
	return fp
}

// Stamp records that a migration made the registration ref names the
// tenant's current provider (promoted) or made it stop being so, at at. A
// Ref that names no registration (the internal KMS, one deleted since) is
// no error. Errors: *fault.StoreError.
func (s *Service) Stamp(ctx context.Context, tenantID string, ref kms.Ref, promoted bool, at time.Time) error {
	p, err := s.registration(ctx, tenantID, ref)
	if errors.Is(err, keyring.ErrUnknownProvider) {
		return nil
	}
	if err != nil {
		return err
	}
	if promoted {
		p.PromotedAt = at
	} else {
		p.DemotedAt = at
	}
	if err := s.cfg.Store.UpdateKeyProvider(ctx, p); err != nil && !errors.Is(err, fault.ErrNotFound) {
		return &fault.StoreError{Op: "stamping key provider", Err: err}
	}
	return nil
}
