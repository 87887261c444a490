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
	"github.com/tenantcrypt/tenantcrypt/internal/kms/awskms"
)

// Inspector is what the monitor asks of AWS KMS (an *awskms.Client).
type Inspector interface {
	DescribeKey(ctx context.Context, key awskms.ARN) (awskms.KeyDescription, error)
	Probe(ctx context.Context, key awskms.ARN, region string, b kms.Binding) []awskms.ProbeResult
}

// Tenants is what the monitor needs of the keyring.
type Tenants interface {
	Tenant(ctx context.Context, id string) (keyring.Tenant, error)
	SetTenantState(ctx context.Context, id, provider string, to keyring.TenantState, reason string) (keyring.StateChange, bool, error)
}

// KeyProviders finds a tenant's registered key and records its DR
// compliance (a keyprovider.Store).
type KeyProviders interface {
	KeyProvider(ctx context.Context, tenantID, fingerprint string) (keyprovider.Provider, error)
	SetKeyProviderCompliance(ctx context.Context, tenantID, fingerprint string, drCompliant bool, c keyprovider.ComplianceError, testedAt time.Time) error
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

// Config configures a Monitor. Store, Tenants, KeyProviders and KMS are
// required.
type Config struct {
	Store        Store
	Tenants      Tenants
	KeyProviders KeyProviders
	KMS          Inspector
	// Region is the service's own region; DRRegions maps a region to its
	// disaster-recovery region, where a multi-region key's replica is
	// checked too.
	Region    string
	DRRegions map[string]string
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
	// RegionHealth, if set, tells whether calls to a region fail over to
	// replicas now (an *awskms.Client's RegionHealth), for Failover.
	RegionHealth func(region string) (healthy bool, since time.Time)
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
	if cfg.Store == nil || cfg.Tenants == nil || cfg.KeyProviders == nil || cfg.KMS == nil {
		return nil, errors.New("lifecycle: Store, Tenants, KeyProviders and KMS are required")
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
	fp, _ := keyprovider.FingerprintOf(cs[0].Provider)
	kp, err := m.cfg.KeyProviders.KeyProvider(ctx, tenantID, fp)
	if err != nil {
		return cs, nil // the provider is gone; so is the order's meaning
	}
	if arn, err := awskms.ParseARN(kp.ARN); err == nil {
		slices.SortStableFunc(cs, func(a, b KeyCheck) int {
			return cmpBool(b.Region == arn.Region, a.Region == arn.Region)
		})
	}
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
	fp, ok := keyprovider.FingerprintOf(t.Provider)
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

	kp, err := m.cfg.KeyProviders.KeyProvider(ctx, t.ID, fp)
	if err != nil {
		if errors.Is(err, fault.ErrNotFound) {
			return nil, fmt.Errorf("lifecycle: tenant %s uses key provider %s, which is not registered", t.ID, fp)
		}
		return nil, &fault.StoreError{Op: "reading key provider", Err: err}
	}
	arn, err := awskms.ParseARN(kp.ARN)
	if err != nil {
		return nil, fmt.Errorf("lifecycle: stored ARN of %s: %w", fp, err)
	}
	cctx, cancel := context.WithTimeout(kms.WithTenant(ctx, t.ID), m.cfg.Timeout)
	defer cancel()
	v := m.inspect(cctx, t, kp, arn)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	for _, c := range v.checks {
		if m.cfg.Checked != nil {
			m.cfg.Checked(c.Region, c.Result)
		}
	}
	m.recordCompliance(ctx, t, kp, arn, v.checks)
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

// inspect describes the key in its own region (whose answer decides the
// tenant's state), in the DR region for a multi-region key (recorded, for
// DR compliance) and, when AWS names a primary key in a third region, there
// too (a disabled primary revokes as well). A key that answers enabled
// while the tenant is not active is probed with real calls before the
// tenant is let back in, since a key policy can allow DescribeKey and deny
// Decrypt.
func (m *Monitor) inspect(ctx context.Context, t keyring.Tenant, kp keyprovider.Provider, arn awskms.ARN) verdict {
	dr := keyprovider.DRRegion(m.cfg.DRRegions, m.cfg.Region, arn.Region)
	var drCheck *KeyCheck
	var wg sync.WaitGroup
	if kp.MultiRegion && dr != "" {
		wg.Go(func() {
			c, _ := m.describe(ctx, t, arn.InRegion(dr))
			drCheck = &c
		})
	}
	home, desc := m.describe(ctx, t, arn)
	v := verdict{checks: []KeyCheck{home}}
	if p := desc.Primary; p != nil && p.Region != arn.Region && p.Region != dr {
		if parn, err := awskms.ParseARN(p.ARN); err == nil {
			primary, _ := m.describe(ctx, t, parn)
			v.checks = append(v.checks, primary)
			if primary.Result != ResultNotFound && severity(primary.Result) > severity(home.Result) {
				home = primary
			}
		}
	}
	wg.Wait()
	if drCheck != nil {
		v.checks = append(v.checks, *drCheck)
	}

	switch home.Result {
	case ResultOK:
		v.known, v.state = true, keyring.StateActive
		if t.State != keyring.StateActive {
			v = m.probe(ctx, t, arn, v)
		}
	case ResultDisabled, ResultAccessDenied:
		v.known, v.state, v.reason = true, keyring.StateKeyUnavailable, home.Detail
	case ResultPendingDeletion:
		v.known, v.state, v.reason = true, keyring.StateLocked, home.Detail
	case ResultNotFound:
		v.known, v.state, v.reason = true, keyring.StateDestroyed, home.Detail
	}
	return v
}

// probe tries the actions the tenant needs before it returns to active.
func (m *Monitor) probe(ctx context.Context, t keyring.Tenant, arn awskms.ARN, v verdict) verdict {
	b := kms.Binding{kms.BindingTenant: t.ID, kms.BindingKeyID: "key-check-probe"}
	for _, r := range m.cfg.KMS.Probe(ctx, arn, arn.Region, b) {
		if r.Err == nil {
			continue
		}
		if state, ok := keyring.StateOnUse(r.Err); ok {
			v.state, v.reason = state, fmt.Sprintf("DescribeKey in %s shows the key enabled, but %s", arn.Region, keyring.KeyRefusal(r.Err))
			return v
		}
		// Not an answer about the key: stay as we are until a probe works.
		v.known = false
		return v
	}
	return v
}

// severity orders results by how much of the tenant they shut off.
func severity(result string) int {
	switch result {
	case ResultNotFound:
		return 4
	case ResultPendingDeletion:
		return 3
	case ResultDisabled, ResultAccessDenied:
		return 2
	case ResultOK:
		return 1
	}
	return 0
}

// describe checks key in its region.
func (m *Monitor) describe(ctx context.Context, t keyring.Tenant, key awskms.ARN) (KeyCheck, awskms.KeyDescription) {
	c := KeyCheck{TenantID: t.ID, Provider: t.Provider, Region: key.Region, KeyARN: key.String()}
	desc, err := m.cfg.KMS.DescribeKey(ctx, key)
	c.CheckedAt = m.cfg.Now().UTC().Truncate(time.Microsecond)
	if err != nil {
		c.Result = resultOf(err)
		c.Detail = fmt.Sprintf("DescribeKey in %s: %s", key.Region, describeError(c.Result, err))
		return c, desc
	}
	c.KeyState = desc.AWSState
	switch desc.State {
	case kms.KeyEnabled:
		c.Result = ResultOK
		c.Detail = fmt.Sprintf("DescribeKey in %s: the key is enabled", key.Region)
	case kms.KeyDisabled:
		c.Result = ResultDisabled
		if desc.AWSState == "" || desc.AWSState == "Disabled" {
			c.Detail = fmt.Sprintf("DescribeKey in %s: the key is disabled in the customer's AWS account; its owner must enable it", key.Region)
		} else {
			c.Detail = fmt.Sprintf("DescribeKey in %s: the key cannot be used (AWS key state %s) in the customer's AWS account; its owner must make it usable", key.Region, desc.AWSState)
		}
	case kms.KeyPendingDeletion:
		c.Result = ResultPendingDeletion
		c.Detail = fmt.Sprintf("DescribeKey in %s: the key is scheduled for deletion (%s); its owner must cancel the deletion and enable it", key.Region, awsState(desc))
	default:
		c.Result = ResultError
		c.Detail = fmt.Sprintf("DescribeKey in %s: the key is in state %s, which tenantcrypt does not know", key.Region, awsState(desc))
	}
	return c, desc
}

func awsState(d awskms.KeyDescription) string {
	if d.AWSState != "" {
		return d.AWSState
	}
	return d.State.String()
}

func resultOf(err error) string {
	switch {
	case errors.Is(err, kms.ErrKeyNotFound):
		return ResultNotFound
	case errors.Is(err, kms.ErrAccessDenied):
		return ResultAccessDenied
	case errors.Is(err, kms.ErrKeyDisabled):
		return ResultDisabled
	case errors.Is(err, kms.ErrKeyPendingDeletion):
		return ResultPendingDeletion
	case errors.Is(err, kms.ErrThrottled):
		return ResultThrottled
	case errors.Is(err, kms.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return ResultUnavailable
	}
	return ResultError
}

func describeError(result string, err error) string {
	switch result {
	case ResultNotFound:
		return "the key does not exist: it was deleted, or this service cannot see it"
	case ResultAccessDenied:
		return "the key policy or grants deny this service access to the key"
	case ResultThrottled:
		return "AWS KMS throttled the check; the key's state is unknown until the next check"
	case ResultUnavailable:
		return "AWS KMS did not answer; the key's state is unknown until the next check"
	}
	return "the check failed (" + kms.Outcome(err) + ")"
}

// recordCompliance keeps the provider's DR compliance up to date with what
// the check found of the replica in the DR region: a replica that is
// disabled, pending deletion, gone or denied makes the provider
// non-compliant; once it answers enabled again, a probe of every required
// action there (as actions/test does) makes it compliant again. Outages
// change nothing. Failures are logged: the status and the next check carry
// on without them.
func (m *Monitor) recordCompliance(ctx context.Context, t keyring.Tenant, kp keyprovider.Provider, arn awskms.ARN, checks []KeyCheck) {
	ctx = kms.WithTenant(ctx, t.ID)
	dr := keyprovider.DRRegion(m.cfg.DRRegions, m.cfg.Region, arn.Region)
	var c *KeyCheck
	for i := range checks {
		if checks[i].Region == dr {
			c = &checks[i]
		}
	}
	if c == nil || !kp.MultiRegion {
		return
	}
	var compliant bool
	var why keyprovider.ComplianceError
	switch c.Result {
	case ResultDisabled, ResultPendingDeletion, ResultNotFound, ResultAccessDenied:
		compliant = false
		why = keyprovider.ComplianceError{Code: keyprovider.CodeNotCompliant, Region: dr,
			Message: "the replica in the DR region cannot serve a failover: " + c.Detail}
	case ResultOK:
		if kp.DRCompliant || kp.Compliance.Region != dr {
			return // compliant, or not for a reason of the DR region's
		}
		b := kms.Binding{kms.BindingTenant: t.ID, kms.BindingKeyID: "key-check-probe"}
		for _, r := range m.cfg.KMS.Probe(ctx, arn.InRegion(dr), dr, b) {
			if r.Err != nil {
				return // still refused: the recorded reason stands
			}
		}
		compliant, why = true, keyprovider.ComplianceError{}
	default:
		return
	}
	if compliant == kp.DRCompliant && why == kp.Compliance {
		return
	}
	if err := m.cfg.KeyProviders.SetKeyProviderCompliance(ctx, t.ID, kp.Fingerprint, compliant, why, c.CheckedAt); err != nil {
		m.cfg.Logger.WarnContext(ctx, "recording DR compliance failed; the next check retries", "tenant", t.ID, "error", err.Error())
		return
	}
	m.cfg.Logger.InfoContext(ctx, "key provider DR compliance changed", "tenant", t.ID, "fingerprint", kp.Fingerprint,
		"dr_compliant", compliant, "region", dr, "reason", why.Message)
}

// Failover says whether a tenant's key is served by its replica now: its
// own region had an outage and calls go to the DR region until a probe
// finds the region back.
type Failover struct {
	Active   bool
	From, To string
	Since    time.Time
}

// Failover reports the failover of the tenant's customer managed key.
func (m *Monitor) Failover(ctx context.Context, t keyring.Tenant) (Failover, error) {
	fp, ok := keyprovider.FingerprintOf(t.Provider)
	if !ok || m.cfg.RegionHealth == nil {
		return Failover{}, nil
	}
	kp, err := m.cfg.KeyProviders.KeyProvider(ctx, t.ID, fp)
	if err != nil {
		return Failover{}, &fault.StoreError{Op: "reading key provider", Err: err}
	}
	arn, err := awskms.ParseARN(kp.ARN)
	if err != nil || !kp.MultiRegion {
		return Failover{}, nil
	}
	dr := keyprovider.DRRegion(m.cfg.DRRegions, m.cfg.Region, arn.Region)
	if dr == "" {
		return Failover{}, nil
	}
	healthy, since := m.cfg.RegionHealth(arn.Region)
	return Failover{Active: !healthy, From: arn.Region, To: dr, Since: since}, nil
}
