// Package tenantstatus assembles a tenant's encryption status: its
// lifecycle state, its key's state, its key provider with the DR
// compliance and failover, and the checks of its customer managed key.
//
// It is what GET /api/v1/encryption/status reports; the server only
// encodes a Report. The status works in every lifecycle state: it is how
// the admins of a refused tenant learn why.
package tenantstatus

import (
	"context"
	"errors"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
)

// Tenants is what the status needs of the keyring (a *keyring.Service).
type Tenants interface {
	// TenantStatus returns the tenant, its data keys and, on the internal
	// KMS, its key's description. Errors: keyring.ErrTenantNotFound,
	// *fault.StoreError.
	TenantStatus(ctx context.Context, id string) (keyring.TenantStatus, error)
	// Tenant returns the tenant as stored.
	Tenant(ctx context.Context, id string) (keyring.Tenant, error)
}

// KeyMonitor is what the status needs of the key monitor (a
// *lifecycle.Monitor).
type KeyMonitor interface {
	// KeyChecks returns the stored checks of the tenant's key, its own
	// region first.
	KeyChecks(ctx context.Context, tenantID string) ([]lifecycle.KeyCheck, error)
	// Check checks the tenant's key now and may move the tenant.
	Check(ctx context.Context, tenantID string) ([]lifecycle.KeyCheck, error)
	// Interval is how often every tenant's key is checked.
	Interval() time.Duration
	// Failover reports whether the tenant's key is served by its replica.
	Failover(ctx context.Context, t keyring.Tenant) (lifecycle.Failover, error)
}

// KeyProviders is what the status needs of the key providers (a
// *keyprovider.Service).
type KeyProviders interface {
	// Get returns the tenant's key provider with this fingerprint.
	Get(ctx context.Context, tenantID, fingerprint string) (keyprovider.Provider, error)
}

var (
	_ Tenants      = (*keyring.Service)(nil)
	_ KeyMonitor   = (*lifecycle.Monitor)(nil)
	_ KeyProviders = (*keyprovider.Service)(nil)
)

// Config configures a Service. Tenants is required; without a Monitor
// (no AWS KMS) a customer managed key's state is unknown, without
// KeyProviders its ARN and DR compliance are.
type Config struct {
	Tenants      Tenants
	Monitor      KeyMonitor
	KeyProviders KeyProviders
}

// Service assembles encryption statuses.
type Service struct{ cfg Config }

// New returns a Service for cfg.
func New(cfg Config) *Service { return &Service{cfg: cfg} }

// Report is a tenant's encryption status.
type Report struct {
	// Tenant is the tenant as the last check of its key left it.
	Tenant keyring.Tenant
	// Prefix is the text-form prefix of what the current provider issues.
	Prefix string
	// CipherKeys counts the tenant's stored data keys by provider.
	CipherKeys map[kms.Ref]int
	// KeyState is what is known of the current key's state.
	KeyState KeyState
	// CMK describes the customer managed key; nil on the internal KMS.
	CMK *CMK
}

// CMK is what the status knows of a tenant's customer managed key.
type CMK struct {
	Fingerprint string
	// Provider is the key's record; nil when it could not be read (the
	// status then lacks the ARN and the DR compliance).
	Provider *keyprovider.Provider
	// Checks are the last checks of the key, its own region first; none
	// before the first.
	Checks []lifecycle.KeyCheck
	// CheckInterval is how often the key is checked; 0 without a monitor.
	CheckInterval time.Duration
	// Degraded is set when the tenant is active but its key's last check
	// could not reach the KMS; DegradedReason says what then happens.
	Degraded       bool
	DegradedReason string
	// Failover is set when the key's calls go to its DR replica.
	Failover lifecycle.Failover
}

// KeyState is what the status says of the tenant's key: the state its KMS
// gives (AWS KMS's spelling, e.g. Enabled, Disabled, PendingDeletion), or,
// when that is not known, why. It is a text because AWS KMS names more
// states than tenantcrypt tells apart.
type KeyState string

// Key states the status reports when the key's own state is not known.
// Their texts are those clients have seen so far.
const (
	// KeyNotChecked: the customer managed key has no check yet.
	KeyNotChecked KeyState = "Unknown"
	// KeyUnreachable: the internal KMS did not answer (nor its root key,
	// nor the database behind it, in time).
	KeyUnreachable KeyState = "Service unavailable"
	// KeyThrottled: the KMS throttled the description.
	KeyThrottled KeyState = "KMS throttled"
	// KeyKMSNotConfigured: the service has no credentials for the KMS.
	KeyKMSNotConfigured KeyState = "KMS not configured"
	// KeyRefused: the KMS refused the key (disabled, access denied, not
	// found).
	KeyRefused KeyState = "Key unavailable"
	// KeyPendingDeletion: the KMS refused the key as pending deletion.
	KeyPendingDeletion KeyState = "Tenant locked"
	// KeyDescribeFailed: the description failed otherwise.
	KeyDescribeFailed KeyState = "Internal error"
)

// describeFailure is the key state of a key whose KMS failed to describe
// it with err.
func describeFailure(err error) KeyState {
	switch {
	case errors.Is(err, kms.ErrKeyDisabled), errors.Is(err, kms.ErrAccessDenied), errors.Is(err, kms.ErrKeyNotFound):
		return KeyRefused
	case errors.Is(err, kms.ErrKeyPendingDeletion):
		return KeyPendingDeletion
	case errors.Is(err, kms.ErrNotConfigured):
		return KeyKMSNotConfigured
	case errors.Is(err, kms.ErrThrottled):
		return KeyThrottled
	case errors.Is(err, kms.ErrUnavailable), errors.Is(err, fault.ErrStoreUnavailable), errors.Is(err, context.DeadlineExceeded):
		return KeyUnreachable
	}
	return KeyDescribeFailed
}

// Report returns the tenant's encryption status. A customer managed key
// never checked before (just registered, or a fresh migration) is checked
// now, which may move the tenant; the report says what the check decided.
// Errors: keyring.ErrTenantNotFound, *fault.StoreError, and the monitor's
// errors; a key provider record that cannot be read only leaves its part
// out.
func (s *Service) Report(ctx context.Context, tenantID string) (Report, error) {
	st, err := s.cfg.Tenants.TenantStatus(ctx, tenantID)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Tenant: st.Tenant, Prefix: st.Prefix, CipherKeys: st.CipherKeys, KeyState: KeyState(st.Key.State.String())}
	if st.Tenant.Provider.IsInternal() {
		if st.KeyErr != nil {
			rep.KeyState = describeFailure(st.KeyErr)
		}
		return rep, nil
	}
	fp, _ := st.Tenant.Provider.Fingerprint()
	cmk := &CMK{Fingerprint: fp}
	rep.CMK = cmk
	if s.cfg.Monitor != nil {
		if cmk.Checks, err = s.keyChecks(ctx, st.Tenant); err != nil {
			return Report{}, err
		}
		if len(cmk.Checks) > 0 {
			// The check may have moved the tenant; report what it decided.
			if t, err := s.cfg.Tenants.Tenant(ctx, tenantID); err == nil {
				rep.Tenant = t
			}
		}
	}
	if s.cfg.KeyProviders != nil {
		if p, err := s.cfg.KeyProviders.Get(ctx, tenantID, fp); err == nil {
			cmk.Provider = &p
		}
	}
	rep.KeyState = KeyNotChecked
	if len(cmk.Checks) > 0 {
		home := cmk.Checks[0]
		if home.KeyState != "" {
			rep.KeyState = KeyState(home.KeyState)
		}
		switch home.Result {
		case lifecycle.ResultThrottled, lifecycle.ResultUnavailable, lifecycle.ResultError:
			if rep.Tenant.State == keyring.StateActive {
				cmk.Degraded = true
				cmk.DegradedReason = home.Detail + "; cached data keys serve until their TTL, then requests that need the KMS fail with 503 and Retry-After"
			}
		}
	}
	if s.cfg.Monitor != nil {
		cmk.CheckInterval = s.cfg.Monitor.Interval()
		f, err := s.cfg.Monitor.Failover(ctx, rep.Tenant)
		if err != nil {
			return Report{}, err
		}
		if f.Active {
			cmk.Failover = f
			if cmk.Degraded {
				cmk.DegradedReason = "AWS KMS in " + f.From + " is unreachable; the key's calls fail over to its replica in " + f.To + " until it is back"
			}
		}
	}
	return rep, nil
}

// keyChecks returns the stored checks of the tenant's current key,
// checking it now if it never was (a key just registered, or a fresh
// migration). A check that fails leaves none: the key state is
// KeyNotChecked until the monitor's next check.
func (s *Service) keyChecks(ctx context.Context, t keyring.Tenant) ([]lifecycle.KeyCheck, error) {
	checks, err := s.cfg.Monitor.KeyChecks(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	if len(checks) > 0 && checks[0].Provider == t.Provider || t.State == keyring.StateDestroyed {
		return checks, nil
	}
	if fresh, err := s.cfg.Monitor.Check(ctx, t.ID); err == nil {
		return fresh, nil
	} else if ctx.Err() != nil {
		return nil, err
	}
	return nil, nil
}
