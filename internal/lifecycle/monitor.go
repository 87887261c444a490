// Package lifecycle watches each tenant's customer managed key and moves the
// tenant through the lifecycle states: active, key-unavailable (the key is
// disabled or its policy denies this service), locked (the key is pending
// deletion) and destroyed (the key no longer exists; terminal).
//
// A Monitor checks every watched tenant's key once per Interval, with
// DescribeKey in each region the tenant uses, and at once when the keyring
// reports a refusal on use (Notify). Replicas share the periodic checks
// through the store (ClaimKeyChecks): each check is claimed by one replica,
// and a claim whose replica died lapses and is taken over, so that N
// replicas make the calls of one, not N times as many. What a check finds is stored per
// region (KeyChecks) for the tenant's status. Only answers about the key
// change a tenant's state; throttling, timeouts and KMS errors never do
// (the tenant is then "degraded": still active, serving from cached keys).
package lifecycle

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// Tenants is what the monitor needs of the keyring.
type Tenants interface {
	Tenant(ctx context.Context, id string) (keyring.Tenant, error)
	SetTenantState(ctx context.Context, id string, provider kms.Ref, to keyring.TenantState, reason string) (keyring.StateChange, bool, error)
}

// KeyProviders inspects tenants' registered keys through their kinds, and
// records what it found (a *keyprovider.Service). Every method fails with
// keyring.ErrUnknownProvider for a Ref that names no registration, and
// with store errors.
type KeyProviders interface {
	// Inspect checks the key (see keyprovider.Inspector); ok is false for
	// a kind that does not inspect its keys.
	Inspect(ctx context.Context, tenantID string, ref kms.Ref, probe bool) (in keyprovider.Inspection, ok bool, err error)
	// RecordCompliance stores a DR compliance, if it changed.
	RecordCompliance(ctx context.Context, tenantID string, ref kms.Ref, c keyprovider.Compliance, at time.Time) (changed bool, err error)
	// Home is the place whose check decides the tenant's state.
	Home(ctx context.Context, tenantID string, ref kms.Ref) (string, error)
	// Failover says whether the key's calls go to a replica now.
	Failover(ctx context.Context, tenantID string, ref kms.Ref) (keyprovider.Failover, error)
}

// Defaults. DefaultRevocationBound is the bound that the serve command
// splits into Interval, Timeout and the keyring's tenant refresh;
// DefaultInterval and DefaultConcurrency are Config's. DefaultIdleInterval
// is the serve command's idle interval: Config.IdleInterval's zero value
// means that no tenant is idle.
const (
	DefaultRevocationBound = 10 * time.Second
	DefaultInterval        = DefaultRevocationBound / 2
	DefaultIdleInterval    = time.Hour
	DefaultConcurrency     = 16
)

// Config configures a Monitor. Store, Tenants and KeyProviders are
// required.
type Config struct {
	Store        Store
	Tenants      Tenants
	KeyProviders KeyProviders
	// Interval is how often every watched tenant's key is checked, by
	// whichever replica claims the check: at most Interval passes between
	// two claims of a tenant's check while a replica has a free slot. It
	// is the main term of the revocation bound. Default DefaultInterval.
	Interval time.Duration
	// IdleInterval is how often the key of an idle tenant is checked: one
	// that is active and whose keys no replica holds (see
	// keyring.Store.MarkKeysInUse). Such a tenant cannot use its key
	// without calling the KMS, which refuses a revoked key on use, so the
	// revocation bound does not need it checked every Interval. 0: every
	// tenant every Interval.
	IdleInterval time.Duration
	// Timeout bounds one tenant's check (every region). Default the
	// smaller of Interval and 5 s.
	Timeout time.Duration
	// Concurrency is how many tenants this replica checks at once.
	// Default DefaultConcurrency.
	Concurrency int
	// Owner names this replica in the claims it makes; default a random
	// name. Every replica must have its own.
	Owner string
	// Poll is how often this replica looks for due checks. Default a
	// tenth of Interval, between 10 ms and 1 s, and never more than
	// Interval/2.
	Poll time.Duration
	// Requests, if set, is the queue of out-of-turn checks that Notify
	// fills (see Requests); default a queue of the Monitor's own.
	Requests *Requests
	// Checked, if set, is told the result of every region's check (for
	// metrics); Claimed, of every claim of due checks: how many, and how
	// late the latest of them was (see Lag).
	Checked func(region, result string)
	Claimed func(n int, late time.Duration)

	Logger *slog.Logger
	Now    func() time.Time
}

// Monitor checks tenants' keys. Start it once; Close stops it.
type Monitor struct {
	cfg      Config
	requests *Requests

	mu       sync.Mutex
	inflight map[string]chan struct{} // tenants being checked now

	stop      chan struct{}
	startOnce sync.Once
	stopOnce  sync.Once
	wg        sync.WaitGroup
}

// New returns a Monitor; Start begins its checks.
func New(cfg Config) (*Monitor, error) {
	if cfg.Store == nil || cfg.Tenants == nil || cfg.KeyProviders == nil {
		return nil, errors.New("lifecycle: Store, Tenants and KeyProviders are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = min(cfg.Interval, 5*time.Second)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Poll <= 0 {
		cfg.Poll = min(max(cfg.Interval/10, 10*time.Millisecond), time.Second)
	}
	cfg.Poll = min(cfg.Poll, cfg.Interval/2)
	if cfg.IdleInterval < cfg.Interval {
		cfg.IdleInterval = 0
	}
	if cfg.Owner == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		cfg.Owner = hex.EncodeToString(b[:])
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Requests == nil {
		cfg.Requests = NewRequests()
	}
	return &Monitor{
		cfg:      cfg,
		requests: cfg.Requests,
		inflight: make(map[string]chan struct{}),
		stop:     make(chan struct{}),
	}, nil
}

// Interval is the configured check interval.
func (m *Monitor) Interval() time.Duration { return m.cfg.Interval }

// IdleInterval is the check interval of idle tenants (0: none are).
func (m *Monitor) IdleInterval() time.Duration { return m.cfg.IdleInterval }

// Start begins the periodic checks and the handling of Notify.
func (m *Monitor) Start() {
	m.startOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		m.wg.Add(3)
		go func() {
			defer m.wg.Done()
			<-m.stop
			cancel()
		}()
		go m.claimLoop(ctx)
		go m.triggerLoop(ctx)
	})
}

// Close stops the checks and waits for those under way to end.
func (m *Monitor) Close() {
	m.stopOnce.Do(func() { close(m.stop) })
	m.wg.Wait()
}

// Notify asks for a check of the tenant's key soon, without waiting: the
// keyring calls it when the key refused a call on use. Requests beyond
// the queue's capacity are dropped; the next sweep checks those tenants.
func (m *Monitor) Notify(tenantID string) { m.requests.Notify(tenantID) }

func (m *Monitor) triggerLoop(ctx context.Context) {
	defer m.wg.Done()
	sem := make(chan struct{}, m.cfg.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-m.requests.c:
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if _, err := m.Check(ctx, id); err != nil && ctx.Err() == nil && !errors.Is(err, keyring.ErrTenantNotFound) {
					m.cfg.Logger.WarnContext(ctx, "key check failed", "tenant", id, "error", err.Error())
				}
			})
		}
	}
}

// Check checks the tenant's key now and returns what it found (none for a
// tenant on the internal KMS). A check of the same tenant already under
// way is waited for instead of repeated.
// Errors: keyring.ErrTenantNotFound, store errors, context errors.
func (m *Monitor) Check(ctx context.Context, tenantID string) ([]KeyCheck, error) {
	t, err := m.cfg.Tenants.Tenant(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	return m.check(ctx, t)
}

// KeyChecks returns the stored checks of the tenant's key, the check of
// the key's own region (whose answer decides the tenant's state) first.
func (m *Monitor) KeyChecks(ctx context.Context, tenantID string) ([]KeyCheck, error) {
	cs, err := m.cfg.Store.KeyChecks(ctx, tenantID)
	if err != nil {
		return nil, &fault.StoreError{Op: "reading key checks", Err: err}
	}
	if len(cs) < 2 {
		return cs, nil
	}
	home, err := m.cfg.KeyProviders.Home(ctx, tenantID, cs[0].Provider)
	if err != nil || home == "" {
		return cs, nil // the provider is gone; so is the order's meaning
	}
	slices.SortStableFunc(cs, func(a, b KeyCheck) int {
		return cmpBool(b.Region == home, a.Region == home)
	})
	return cs, nil
}

// cmpBool orders true before false when called as cmpBool(b, a).
func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func (m *Monitor) check(ctx context.Context, t keyring.Tenant) ([]KeyCheck, error) {
	ref := t.Provider
	fp, ok := ref.Fingerprint()
	if !ok || t.State == keyring.StateDestroyed {
		return nil, nil
	}
	// One check per tenant at a time; a second caller waits for the first
	// and then reads what it stored.
	m.mu.Lock()
	if done, busy := m.inflight[t.ID]; busy {
		m.mu.Unlock()
		select {
		case <-done:
			return m.KeyChecks(ctx, t.ID)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	done := make(chan struct{})
	m.inflight[t.ID] = done
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.inflight, t.ID)
		m.mu.Unlock()
		close(done)
	}()

	cctx, cancel := context.WithTimeout(kms.WithTenant(ctx, t.ID), m.cfg.Timeout)
	defer cancel()
	in, inspected, err := m.cfg.KeyProviders.Inspect(cctx, t.ID, ref, t.State != keyring.StateActive)
	if err != nil {
		if errors.Is(err, keyring.ErrUnknownProvider) {
			return nil, fmt.Errorf("lifecycle: tenant %s uses key provider %s, which is not registered", t.ID, fp)
		}
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if !inspected {
		return nil, nil
	}
	v := verdict{known: in.Known, state: in.State, reason: in.Reason}
	for _, c := range in.Checks {
		v.checks = append(v.checks, KeyCheck{TenantID: t.ID, Provider: t.Provider, Region: c.Place, KeyARN: c.Key,
			CheckedAt: c.CheckedAt, Result: c.Result, KeyState: c.KeyState, Detail: c.Detail})
	}
	for _, c := range v.checks {
		if m.cfg.Checked != nil {
			m.cfg.Checked(c.Region, c.Result)
		}
	}
	if in.Compliance != nil {
		m.recordCompliance(ctx, t, ref, *in.Compliance, v.checks[len(v.checks)-1].CheckedAt)
	}
	if err := m.cfg.Store.ReplaceKeyChecks(ctx, t.ID, v.checks); err != nil {
		if errors.Is(err, fault.ErrNotFound) {
			return nil, keyring.ErrTenantNotFound
		}
		return nil, &fault.StoreError{Op: "storing key checks", Err: err}
	}
	if v.known && (v.state != t.State || v.state != keyring.StateActive && v.reason != t.StateReason) {
		_, _, err := m.cfg.Tenants.SetTenantState(ctx, t.ID, t.Provider, v.state, v.reason)
		if err != nil && !errors.Is(err, fault.ErrConflict) {
			return v.checks, err
		}
	}
	return v.checks, nil
}

// verdict is what a check concludes: the checks per region, and the state
// the tenant should be in when known is set (an outage concludes nothing).
type verdict struct {
	checks []KeyCheck
	known  bool
	state  keyring.TenantState
	reason string
}

// recordCompliance records the provider's DR compliance that a check
// found. Failures are logged: the status and the next check carry on
// without them.
func (m *Monitor) recordCompliance(ctx context.Context, t keyring.Tenant, ref kms.Ref, c keyprovider.Compliance, at time.Time) {
	changed, err := m.cfg.KeyProviders.RecordCompliance(ctx, t.ID, ref, c, at)
	if err != nil {
		m.cfg.Logger.WarnContext(ctx, "recording DR compliance failed; the next check retries", "tenant", t.ID, "error", err.Error())
		return
	}
	if changed {
		fp, _ := ref.Fingerprint()
		m.cfg.Logger.InfoContext(ctx, "key provider DR compliance changed", "tenant", t.ID, "fingerprint", fp,
			"dr_compliant", c.DRCompliant, "region", c.Error.Region, "reason", c.Error.Message)
	}
}

// Failover says whether a tenant's key is served by its replica now: its
// own region had an outage and calls go to the DR region until a probe
// finds the region back.
type Failover = keyprovider.Failover

// Failover reports the failover of the tenant's customer managed key.
func (m *Monitor) Failover(ctx context.Context, t keyring.Tenant) (Failover, error) {
	if _, ok := t.Provider.Fingerprint(); !ok {
		return Failover{}, nil
	}
	f, err := m.cfg.KeyProviders.Failover(ctx, t.ID, t.Provider)
	if errors.Is(err, keyring.ErrUnknownProvider) {
		return Failover{}, nil
	}
	return f, err
}
