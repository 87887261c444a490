package keyring

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// StateChange is a tenant's move from one lifecycle state to another (or a
// new reason for the same state).
type StateChange struct {
	TenantID string
	// Provider is the provider whose key caused the change.
	Provider kms.Ref
	From, To TenantState
	Reason   string
	At       time.Time
}

// SetTenantState moves a tenant to state to, because of what was found of
// the key of provider (which must still be the tenant's provider). Leaving
// active purges every cached plaintext key of the tenant in this process at
// once; other processes follow within TenantRefresh. A destroyed tenant
// stays destroyed. It reports the change and whether there was one.
// Errors: ErrTenantNotFound; fault.ErrConflict when provider is no longer the
// tenant's or the tenant is destroyed.
func (s *Service) SetTenantState(ctx context.Context, id string, provider kms.Ref, to TenantState, reason string) (StateChange, bool, error) {
	at := s.now()
	// Taken before the write, so that a change another process pushes
	// after it is not mistaken for one this copy already reflects.
	te := s.entry(id)
	changes := te.changes.Load()
	prev, changed, err := s.cfg.Store.SetTenantState(ctx, id, provider, to, reason, at)
	switch {
	case errors.Is(err, fault.ErrNotFound):
		return StateChange{}, false, ErrTenantNotFound
	case errors.Is(err, fault.ErrConflict):
		return StateChange{}, false, fault.ErrConflict
	case err != nil:
		return StateChange{}, false, storeError("setting tenant state", err)
	}
	c := StateChange{TenantID: id, Provider: provider, From: prev.State, To: to, Reason: reason, At: at}
	if !changed {
		return c, false, nil
	}
	t := prev
	t.State, t.StateReason = to, reason
	if prev.State != to {
		t.StateChangedAt = at
	}
	if to != StateActive {
		te.active.Store(nil)
		s.cache.purge(id)
	}
	te.snap.Store(&tenantSnapshot{t: t, fetched: s.cfg.Now(), changes: changes})
	if prev.State != to {
		level := s.cfg.Logger.WarnContext
		if to == StateActive {
			level = s.cfg.Logger.InfoContext
		}
		level(ctx, "tenant state changed", "tenant", id, "provider", provider,
			"from", prev.State.String(), "to", to.String(), "reason", reason)
		if s.cfg.OnStateChange != nil {
			s.cfg.OnStateChange(c)
		}
	}
	return c, true, nil
}

// StateOnUse is the state a refusal of the tenant's key on use moves the
// tenant to: disabled or access denied make it key-unavailable, pending
// deletion locks it. A key not found makes it key-unavailable too: only the
// key monitor, asking the key's own region, may declare it destroyed,
// since that cannot be undone. Throttling, timeouts and other failures are
// not revocations (false).
func StateOnUse(err error) (TenantState, bool) {
	switch {
	case errors.Is(err, kms.ErrKeyDisabled), errors.Is(err, kms.ErrAccessDenied), errors.Is(err, kms.ErrKeyNotFound):
		return StateKeyUnavailable, true
	case errors.Is(err, kms.ErrKeyPendingDeletion):
		return StateLocked, true
	}
	return StateUnknown, false
}

// KeyRefusal words a KMS refusal for a tenant's admins: what the KMS said,
// to which operation, where.
func KeyRefusal(err error) string {
	what := "refused"
	switch {
	case errors.Is(err, kms.ErrKeyDisabled):
		what = "refused it: the key is disabled"
	case errors.Is(err, kms.ErrAccessDenied):
		what = "refused it: the key policy or grants deny this service access"
	case errors.Is(err, kms.ErrKeyPendingDeletion):
		what = "refused it: the key is scheduled for deletion"
	case errors.Is(err, kms.ErrKeyNotFound):
		what = "did not find the key"
	}
	op, where := "a call", ""
	var ke *kms.Error
	if errors.As(err, &ke) {
		if ke.Op != "" {
			op = ke.Op
		}
		if ke.Region != "" {
			where = " in " + ke.Region
		}
	}
	return fmt.Sprintf("the key management service%s %s (on %s)", where, what, op)
}

// noticeKeyError moves the tenant out of active when its current provider's
// key refuses a call, without waiting for the key monitor. A refusal by the
// key of another provider (a cipherkey not yet migrated away from an older
// key) fails that request only.
func (s *Service) noticeKeyError(ctx context.Context, tenantID string, ref kms.Ref, err error) {
	to, ok := StateOnUse(err)
	if !ok {
		return
	}
	if s.cfg.OnKeyRefused != nil {
		s.cfg.OnKeyRefused(tenantID, ref, err)
	}
	te := s.lookupEntry(tenantID)
	if te == nil {
		return
	}
	snap := te.snap.Load()
	if snap == nil || snap.t.Provider != ref || snap.t.State == to || snap.t.State == StateDestroyed {
		return
	}
	// The caller's request fails either way; the state change must not
	// depend on that caller staying connected.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, _, err := s.SetTenantState(ctx, tenantID, ref, to, KeyRefusal(err)); err != nil && !errors.Is(err, fault.ErrConflict) {
		s.cfg.Logger.ErrorContext(ctx, "recording a refused key failed; the key monitor retries", "tenant", tenantID, "error", err.Error())
	}
}
