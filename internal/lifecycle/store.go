package lifecycle

import (
	"context"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// Store keeps what the monitor found. Implementations live in
// internal/store/... and pass internal/store/storetest.
type Store interface {
	// WatchedTenants returns up to limit tenants with ids greater than
	// after, in id order, whose provider is not the internal KMS
	// and whose state is not destroyed: the tenants whose key is checked.
	WatchedTenants(ctx context.Context, after string, limit int) ([]keyring.Tenant, error)
	// ReplaceKeyChecks replaces every stored check of the tenant by checks,
	// in one transaction. Errors: fault.ErrNotFound (no such tenant).
	ReplaceKeyChecks(ctx context.Context, tenantID string, checks []KeyCheck) error
	// KeyChecks returns the tenant's stored checks ordered by region; an
	// empty slice if there are none.
	KeyChecks(ctx context.Context, tenantID string) ([]KeyCheck, error)
	// CountTenantsByState counts every tenant by state.
	CountTenantsByState(ctx context.Context) (map[keyring.TenantState]int, error)

	// ClaimKeyChecks shares the checks out between replicas: it leases to
	// owner, for lease, up to limit watched tenants (see WatchedTenants)
	// whose check is due, and makes each one's next check due between
	// every−spread and every from now, at random, so that checks claimed
	// together drift apart (and with them the replicas that make them, and
	// the calls to the KMS).
	// A check is due when the tenant was never claimed, when its last
	// claim is every old and was finished (FinishKeyCheck), or when that
	// claim's lease lapsed unfinished (its owner died mid-check). Of
	// concurrent claims, from any replica, exactly one gets each tenant.
	// Times are the database's clock. The most overdue come first; Late is
	// how long past due each one is (zero for a tenant never checked).
	// An active tenant whose keys no replica holds (see
	// keyring.Store.MarkKeysInUse) is idle: with idle > 0 its check is
	// due only idle after its last claim; a tenant that is not active, or
	// whose keys some replica holds, keeps to every.
	ClaimKeyChecks(ctx context.Context, owner string, every, idle, spread, lease time.Duration, limit int) ([]Due, error)
	// FinishKeyCheck ends owner's claim on the tenant's check, which makes
	// the next check due at the time ClaimKeyChecks set. A claim owner does
	// not hold (it lapsed and another replica took it) is left alone.
	FinishKeyCheck(ctx context.Context, tenantID, owner string) error
}

// Due is a tenant whose key check a replica claimed.
type Due struct {
	Tenant keyring.Tenant
	// Late is how long past due the check was when claimed.
	Late time.Duration
}

// KeyCheck is the outcome of checking a tenant's key in one region.
type KeyCheck struct {
	TenantID string
	// Provider is the provider whose key was checked.
	Provider kms.Ref
	Region   string
	// KeyARN is the key's ARN in Region.
	KeyARN    string
	CheckedAt time.Time
	// Result is one of the Result* constants.
	Result string
	// KeyState is the key's state as AWS spells it ("Enabled",
	// "PendingDeletion"), empty when KMS did not describe it.
	KeyState string
	// Detail explains the result for the tenant's admins; never secret.
	Detail string
}

// Results of a key check (keyprovider's, under the names the monitor's
// callers know).
const (
	ResultOK              = keyprovider.ResultOK
	ResultDisabled        = keyprovider.ResultDisabled
	ResultPendingDeletion = keyprovider.ResultPendingDeletion
	ResultNotFound        = keyprovider.ResultNotFound
	ResultAccessDenied    = keyprovider.ResultAccessDenied
	ResultThrottled       = keyprovider.ResultThrottled
	ResultUnavailable     = keyprovider.ResultUnavailable
	ResultError           = keyprovider.ResultError
)
