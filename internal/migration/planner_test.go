package migration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// Unit tests of what Migrate and Reset decide before a migration starts,
// and of what they record, against the fakes of fakes_test.go.

const (
	tenant = "acme"
	fpA    = "0123456789abcdef0123456789abcdef"
	fpB    = "fedcba9876543210fedcba9876543210"
	arnA   = "arn:aws:kms:eu-west-1:111122223333:key/a"
	arnB   = "arn:aws:kms:eu-west-1:111122223333:key/b"
)

var (
	refA = kms.MustCMKRef(fpA)
	refB = kms.MustCMKRef(fpB)
	// clock is the services' Now; the store's lease clock is its own.
	clock = time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC)
	// stamp is clock as the service records it.
	stamp = clock.Truncate(time.Microsecond)
)

// fixture is one tenant, acme (enterprise, on the internal KMS), with two
// registered customer managed keys A and B, every KMS enabled.
type fixture struct {
	store     *fakeStore
	ring      *fakeKeyring
	kps       *fakeKeyProviders
	providers *fakeProviders
	internal  *fakeKMS
	a, b      *fakeKMS

	mu        sync.Mutex
	sleeps    []time.Duration
	started   int
	failed    int
	rewrapped int
	stopped   chan struct{} // a worker stopped
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st := newFakeStore()
	f := &fixture{
		store:     st,
		ring:      &fakeKeyring{store: st, tenants: map[string]keyring.Tenant{}, errs: map[string]error{}},
		kps:       &fakeKeyProviders{regs: map[string]keyprovider.Provider{}, errs: map[string]error{}},
		providers: &fakeProviders{kmss: map[kms.Ref]*fakeKMS{}},
		stopped:   make(chan struct{}, 16),
	}
	f.ring.setTenant(keyring.Tenant{ID: tenant, Edition: keyring.EditionEnterprise, Provider: kms.InternalRef()})
	f.kps.register(tenant, fpA, arnA)
	f.kps.register(tenant, fpB, arnB)
	f.internal = f.providers.add(kms.InternalRef())
	f.a = f.providers.add(refA)
	f.b = f.providers.add(refB)
	return f
}

// service returns a Service over the fixture's fakes (cfg's own fields
// first), whose waits return at once and are recorded in f.sleeps.
func (f *fixture) service(t *testing.T, cfg Config) *Service {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = f.store
	}
	cfg.KeyProviders, cfg.Keyring, cfg.Providers = f.kps, f.ring, f.providers
	if cfg.Owner == "" {
		cfg.Owner = "me"
	}
	cfg.Now = func() time.Time { return clock }
	cfg.Hooks = Hooks{
		Running: func(d int) {
			f.mu.Lock()
			if d > 0 {
				f.started++
			}
			f.mu.Unlock()
			if d < 0 {
				f.stopped <- struct{}{}
			}
		},
		BatchFailed: func() { f.mu.Lock(); f.failed++; f.mu.Unlock() },
		Rewrapped:   func(n int) { f.mu.Lock(); f.rewrapped += n; f.mu.Unlock() },
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.sleep = f.sleep
	t.Cleanup(s.Close)
	return s
}

func (f *fixture) sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	f.sleeps = append(f.sleeps, d)
	f.mu.Unlock()
	return ctx.Err()
}

func (f *fixture) slept() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sleeps)
}

func (f *fixture) workersStarted() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.started
}

// waitStopped waits until a worker has stopped.
func (f *fixture) waitStopped(t *testing.T) {
	t.Helper()
	select {
	case <-f.stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("no worker stopped within 30 s")
	}
}

// outcome names the error as the server's error table tells errors apart
// (internal/server/errortable.go), with the status it maps it to.
func outcome(err error) string {
	var (
		pe *PrepareError
		ns *NotStartedError
		se *fault.StoreError
	)
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &pe):
		return "not prepared (424)"
	case errors.As(err, &ns):
		return "not started (412)"
	case errors.Is(err, ErrRunning):
		return "running (428, reset 406)"
	case errors.Is(err, keyring.ErrTenantNotFound):
		return "tenant not found"
	case errors.Is(err, keyprovider.ErrNotFound):
		return "provider not found (404)"
	case errors.As(err, &se):
		return "store error"
	}
	return "other"
}

var errBoom = errors.New("boom")

func unavailable(ref kms.Ref) error {
	return &kms.Error{Op: "DescribeKey", Provider: ref.String(), Kind: kms.ErrUnavailable}
}

func running(from, to kms.Ref) Migration {
	return Migration{ID: "running", TenantID: tenant, From: from, To: to, State: StateInProgress, InitiatedAt: clock.Add(-time.Hour)}
}

func completed(from, to kms.Ref) Migration {
	return Migration{ID: "done", TenantID: tenant, From: from, To: to, State: StateCompleted,
		InitiatedAt: clock.Add(-2 * time.Hour), CompletedAt: clock.Add(-time.Hour)}
}

// TestMigrateRefusals: every reason Migrate has not to start, as the error
// the server maps to its status; a refused migration records nothing,
// leaves the tenant's provider alone and starts no worker.
func TestMigrateRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		fingerprint string
		setup       func(f *fixture)
		want        string
		wantText    string // in the error's text
	}{
		{name: "target not registered", fingerprint: "00000000000000000000000000000000", want: "provider not found (404)"},
		{name: "registered under a malformed fingerprint", fingerprint: "NOT-A-REF",
			setup: func(f *fixture) { f.kps.register(tenant, "NOT-A-REF", arnA) }, want: "provider not found (404)"},
		{name: "no such tenant", fingerprint: fpA,
			setup: func(f *fixture) { delete(f.ring.tenants, tenant) }, want: "tenant not found"},
		{name: "business edition", fingerprint: fpA,
			setup: func(f *fixture) {
				f.ring.setTenant(keyring.Tenant{ID: tenant, Edition: keyring.EditionBusiness, Provider: kms.InternalRef()})
			},
			want: "not started (412)", wantText: "the business edition cannot use a customer managed key"},
		{name: "unknown edition", fingerprint: fpA,
			setup: func(f *fixture) { f.ring.setTenant(keyring.Tenant{ID: tenant, Provider: kms.InternalRef()}) },
			want:  "not started (412)", wantText: "the unknown edition"},
		{name: "target is current already", fingerprint: fpA,
			setup: func(f *fixture) {
				f.ring.setTenant(keyring.Tenant{ID: tenant, Edition: keyring.EditionEnterprise, Provider: refA})
			},
			want: "not started (412)", wantText: "the tenant's current one already"},
		{name: "a migration is running", fingerprint: fpB,
			setup: func(f *fixture) { f.store.put(running(kms.InternalRef(), refA), "other", f.store.now.Add(time.Hour)) },
			want:  "running (428, reset 406)"},
		{name: "a migration to the same target is running", fingerprint: fpA,
			setup: func(f *fixture) { f.store.put(running(kms.InternalRef(), refA), "other", f.store.now.Add(time.Hour)) },
			want:  "running (428, reset 406)"},
		{name: "reading the latest migration fails", fingerprint: fpA,
			setup: func(f *fixture) { f.store.fail("LatestMigration", errBoom) }, want: "store error"},
		{name: "target key disabled", fingerprint: fpA,
			setup: func(f *fixture) { f.a.state = kms.KeyDisabled },
			want:  "not started (412)", wantText: "the target key fails its test: the key is Disabled"},
		{name: "target key pending deletion", fingerprint: fpA,
			setup: func(f *fixture) { f.a.state = kms.KeyPendingDeletion },
			want:  "not started (412)", wantText: "the key is PendingDeletion"},
		{name: "target unavailable", fingerprint: fpA,
			setup: func(f *fixture) { f.a.describeErr = unavailable(refA) },
			want:  "not started (412)", wantText: "the target key fails its test"},
		{name: "target unknown to the registry", fingerprint: fpA,
			setup: func(f *fixture) { delete(f.providers.kmss, refA) },
			want:  "not started (412)", wantText: "unknown key provider"},
		{name: "source unavailable", fingerprint: fpB,
			setup: func(f *fixture) {
				f.ring.setTenant(keyring.Tenant{ID: tenant, Edition: keyring.EditionEnterprise, Provider: refA})
				f.a.describeErr = unavailable(refA)
			},
			want: "not prepared (424)", wantText: "the current key provider does not answer"},
		{name: "source disabled", fingerprint: fpB,
			setup: func(f *fixture) {
				f.ring.setTenant(keyring.Tenant{ID: tenant, Edition: keyring.EditionEnterprise, Provider: refA})
				f.a.state = kms.KeyDisabled
			},
			want: "not prepared (424)", wantText: "the key is Disabled"},
		{name: "counting the cipherkeys fails", fingerprint: fpA,
			setup: func(f *fixture) { f.ring.errs["CipherKeyCounts"] = errBoom }, want: "other", wantText: "boom"},
		{name: "the store finds a running migration first", fingerprint: fpA,
			setup: func(f *fixture) { f.store.fail("InsertMigration", fmt.Errorf("racing: %w", ErrRunning)) },
			want:  "running (428, reset 406)"},
		{name: "recording the migration fails", fingerprint: fpA,
			setup: func(f *fixture) { f.store.fail("InsertMigration", errBoom) },
			want:  "store error", wantText: "recording migration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			if tc.setup != nil {
				tc.setup(f)
			}
			before := f.store.count()
			tenantBefore, _ := f.ring.Tenant(context.Background(), tenant)
			s := f.service(t, Config{})
			m, err := s.Migrate(context.Background(), tenant, tc.fingerprint)
			if got := outcome(err); got != tc.want {
				t.Fatalf("Migrate: got %s (%v), want %s", got, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("Migrate: got error %q, want it to say %q", err, tc.wantText)
			}
			if m != (Migration{}) {
				t.Errorf("Migrate returned %+v with its error, want the zero Migration", m)
			}
			if got := f.store.count(); got != before {
				t.Errorf("migrations stored: got %d, want %d (none recorded)", got, before)
			}
			if got, _ := f.ring.Tenant(context.Background(), tenant); got.Provider != tenantBefore.Provider {
				t.Errorf("tenant's provider: got %s, want %s (unchanged)", got.Provider, tenantBefore.Provider)
			}
			if n := f.workersStarted(); n != 0 {
				t.Errorf("workers started: got %d, want 0", n)
			}
		})
	}
}

// TestMigrateSwitchConflict: when the tenant's provider changed between the
// checks and the switch, the migration is recorded as one that did not
// start (Completed, with the reason) rather than left half begun, and
// Migrate fails with a PrepareError (424).
func TestMigrateSwitchConflict(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.ring.errs["SwitchProvider"] = fmt.Errorf("tenant changed: %w", fault.ErrConflict)
	s := f.service(t, Config{})
	_, err := s.Migrate(context.Background(), tenant, fpA)
	if got, want := outcome(err), "not prepared (424)"; got != want {
		t.Fatalf("Migrate: got %s (%v), want %s", got, err, want)
	}
	if !errors.Is(err, fault.ErrConflict) {
		t.Errorf("Migrate: got %v, want it to wrap the switch's error", err)
	}
	m, err := f.store.LatestMigration(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	if m.State != StateCompleted || !m.CompletedAt.Equal(stamp) || !strings.HasPrefix(m.LastError, "not started: ") {
		t.Errorf("recorded migration: got state %s, completed %v, error %q; want Completed at %v, \"not started: …\"",
			m.State, m.CompletedAt, m.LastError, stamp)
	}
	if n := f.workersStarted(); n != 0 {
		t.Errorf("workers started: got %d, want 0", n)
	}
	// It does not block the next attempt.
	delete(f.ring.errs, "SwitchProvider")
	if _, err := s.Migrate(context.Background(), tenant, fpA); err != nil {
		t.Errorf("Migrate after the conflict: %v", err)
	}
}

// TestMigratePlan: what a started migration records, before its worker
// does anything: the providers and their ARNs (the source's from the
// key-provider service), New, the cipherkeys to move (not those under the
// target already), the service's clock; and the tenant's new keys go to
// the target at once.
func TestMigratePlan(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		from          kms.Ref
		fingerprint   string
		keys          map[kms.Ref]int
		wantTo        kms.Ref
		wantFromARN   string
		wantToARN     string
		wantTotal     int64
		wantARNsAsked []string
	}{
		{name: "internal to A", from: kms.InternalRef(), fingerprint: fpA,
			keys:   map[kms.Ref]int{kms.InternalRef(): 5},
			wantTo: refA, wantFromARN: api.DefaultProviderARN, wantToARN: arnA, wantTotal: 5},
		{name: "A to B, some keys under B already", from: refA, fingerprint: fpB,
			keys:   map[kms.Ref]int{refA: 3, refB: 2, kms.InternalRef(): 1},
			wantTo: refB, wantFromARN: arnA, wantToARN: arnB, wantTotal: 4, wantARNsAsked: []string{refA.String()}},
		{name: "no cipherkeys", from: refA, fingerprint: fpB,
			wantTo: refB, wantFromARN: arnA, wantToARN: arnB, wantTotal: 0, wantARNsAsked: []string{refA.String()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.ring.setTenant(keyring.Tenant{ID: tenant, Edition: keyring.EditionEnterprise, Provider: tc.from})
			for ref, n := range tc.keys {
				f.store.addKeys(t, tenant, ref, n)
			}
			// Another replica claims it first: this test looks at the plan
			// only (worker_test.go runs it).
			f.store.fail("ClaimMigration", ErrLeased)
			s := f.service(t, Config{})
			m, err := s.Migrate(context.Background(), tenant, tc.fingerprint)
			if err != nil {
				t.Fatal(err)
			}
			want := Migration{ID: m.ID, TenantID: tenant, From: tc.from, To: tc.wantTo,
				FromARN: tc.wantFromARN, ToARN: tc.wantToARN, State: StateNew, Total: tc.wantTotal,
				InitiatedAt: stamp, UpdatedAt: stamp}
			if m != want {
				t.Errorf("Migrate:\n got %+v\nwant %+v", m, want)
			}
			if len(m.ID) != 24 {
				t.Errorf("id %q: got %d characters, want 24 (12 random bytes in hex)", m.ID, len(m.ID))
			}
			if stored, _ := f.store.migration(t, m.ID); stored != m {
				t.Errorf("stored:\n got %+v\nwant %+v", stored, m)
			}
			if got := f.ring.provider(t, tenant); got != tc.wantTo {
				t.Errorf("tenant's provider: got %s, want %s (new keys under the target at once)", got, tc.wantTo)
			}
			if !slices.Equal(f.kps.arns, tc.wantARNsAsked) {
				t.Errorf("KeyARN asked for %v, want %v", f.kps.arns, tc.wantARNsAsked)
			}
			if n := f.workersStarted(); n != 0 {
				t.Errorf("workers started: got %d, want 0 (the lease is another replica's)", n)
			}
		})
	}
}

// TestMigrateClaimFails: a migration whose claim fails for another reason
// than another replica's lease is started all the same (a replica resumes
// it once it claims it), and no worker runs here.
func TestMigrateClaimFails(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.store.fail("ClaimMigration", errBoom)
	s := f.service(t, Config{})
	m, err := s.Migrate(context.Background(), tenant, fpA)
	if err != nil {
		t.Fatalf("Migrate: got %v, want nil", err)
	}
	if stored, _ := f.store.migration(t, m.ID); stored.State != StateNew {
		t.Errorf("stored state: got %s, want New", stored.State)
	}
	if n := f.workersStarted(); n != 0 {
		t.Errorf("workers started: got %d, want 0", n)
	}
}

// TestReset: the decisions of a reset to the default provider (the
// internal KMS).
func TestReset(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		tenant      keyring.Tenant
		setup       func(f *fixture)
		want        string
		wantText    string
		wantStarted bool
	}{
		{name: "on the internal KMS already",
			tenant: keyring.Tenant{Edition: keyring.EditionEnterprise, Provider: kms.InternalRef()}, want: "ok"},
		{name: "on the internal KMS after a finished reset",
			tenant: keyring.Tenant{Edition: keyring.EditionEnterprise, Provider: kms.InternalRef()},
			setup:  func(f *fixture) { f.store.put(completed(refA, kms.InternalRef()), "", time.Time{}) }, want: "ok"},
		{name: "a reset is running",
			tenant: keyring.Tenant{Edition: keyring.EditionEnterprise, Provider: kms.InternalRef()},
			setup:  func(f *fixture) { f.store.put(running(refA, kms.InternalRef()), "other", f.store.now.Add(time.Hour)) },
			want:   "running (428, reset 406)"},
		{name: "a migration is running",
			tenant: keyring.Tenant{Edition: keyring.EditionEnterprise, Provider: refA},
			setup:  func(f *fixture) { f.store.put(running(kms.InternalRef(), refA), "other", f.store.now.Add(time.Hour)) },
			want:   "running (428, reset 406)"},
		{name: "hipaa", tenant: keyring.Tenant{Edition: keyring.EditionEnterprise, HIPAA: true, Provider: refA},
			want: "not started (412)", wantText: "a hipaa tenant must stay on a customer managed key"},
		{name: "hipaa on the internal KMS", tenant: keyring.Tenant{Edition: keyring.EditionEnterprise, HIPAA: true, Provider: kms.InternalRef()},
			want: "not started (412)", wantText: "hipaa"},
		{name: "no such tenant", setup: func(f *fixture) { delete(f.ring.tenants, tenant) }, want: "tenant not found"},
		{name: "source unavailable", tenant: keyring.Tenant{Edition: keyring.EditionEnterprise, Provider: refA},
			setup: func(f *fixture) { f.a.describeErr = unavailable(refA) }, want: "not prepared (424)"},
		{name: "internal KMS disabled", tenant: keyring.Tenant{Edition: keyring.EditionEnterprise, Provider: refA},
			setup: func(f *fixture) { f.internal.state = kms.KeyDisabled }, want: "not started (412)", wantText: "the target key fails its test"},
		{name: "from a customer managed key", tenant: keyring.Tenant{Edition: keyring.EditionEnterprise, Provider: refA},
			want: "ok", wantStarted: true},
		{name: "a business tenant may leave its key", tenant: keyring.Tenant{Edition: keyring.EditionBusiness, Provider: refA},
			want: "ok", wantStarted: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			tc.tenant.ID = tenant
			f.ring.setTenant(tc.tenant)
			if tc.setup != nil {
				tc.setup(f)
			}
			f.store.fail("ClaimMigration", ErrLeased) // the plan only
			before := f.store.count()
			s := f.service(t, Config{})
			m, started, err := s.Reset(context.Background(), tenant)
			if got := outcome(err); got != tc.want {
				t.Fatalf("Reset: got %s (%v), want %s", got, err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("Reset: got error %q, want it to say %q", err, tc.wantText)
			}
			if started != tc.wantStarted {
				t.Errorf("Reset: got started %v, want %v", started, tc.wantStarted)
			}
			if !tc.wantStarted {
				if m != (Migration{}) {
					t.Errorf("Reset returned %+v, want the zero Migration", m)
				}
				if got := f.store.count(); got != before {
					t.Errorf("migrations stored: got %d, want %d", got, before)
				}
				return
			}
			want := Migration{ID: m.ID, TenantID: tenant, From: tc.tenant.Provider, To: kms.InternalRef(),
				FromARN: arnA, ToARN: api.DefaultProviderARN, State: StateNew, InitiatedAt: stamp, UpdatedAt: stamp}
			if m != want {
				t.Errorf("Reset:\n got %+v\nwant %+v", m, want)
			}
			if got := f.ring.provider(t, tenant); !got.IsInternal() {
				t.Errorf("tenant's provider after Reset: got %s, want internal", got)
			}
		})
	}
}

// TestReadErrors: Latest and ProviderSwitchTimes pass "never" through and
// wrap the store's failures.
func TestReadErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.service(t, Config{})
	ctx := context.Background()
	if _, err := s.Latest(ctx, tenant); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("Latest of a tenant without migrations: got %v, want fault.ErrNotFound", err)
	}
	f.store.put(completed(kms.InternalRef(), refA), "", time.Time{})
	promoted, demoted, err := s.ProviderSwitchTimes(ctx, tenant, refA)
	if err != nil || !promoted.Equal(clock.Add(-time.Hour)) || !demoted.IsZero() {
		t.Errorf("ProviderSwitchTimes(A): got %v, %v, %v; want %v, zero, nil", promoted, demoted, err, clock.Add(-time.Hour))
	}
	f.store.fail("LatestMigration", errBoom)
	f.store.fail("ProviderSwitchTimes", errBoom)
	if _, err := s.Latest(ctx, tenant); outcome(err) != "store error" || !errors.Is(err, errBoom) {
		t.Errorf("Latest: got %v, want a store error wrapping the cause", err)
	}
	if _, _, err := s.ProviderSwitchTimes(ctx, tenant, refA); outcome(err) != "store error" || !errors.Is(err, errBoom) {
		t.Errorf("ProviderSwitchTimes: got %v, want a store error wrapping the cause", err)
	}
}

// TestNew: the four interfaces are required; zero settings take their
// defaults.
func TestNew(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	full := Config{Store: f.store, KeyProviders: f.kps, Keyring: f.ring, Providers: f.providers}
	for _, tc := range []struct {
		name string
		drop func(*Config)
	}{
		{"no Store", func(c *Config) { c.Store = nil }},
		{"no KeyProviders", func(c *Config) { c.KeyProviders = nil }},
		{"no Keyring", func(c *Config) { c.Keyring = nil }},
		{"no Providers", func(c *Config) { c.Providers = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := full
			tc.drop(&cfg)
			if s, err := New(cfg); err == nil {
				s.Close()
				t.Errorf("New: got nil error, want one")
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		s, err := New(full)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		got := s.cfg
		if got.BatchSize != 256 || got.Concurrency != 16 || got.RetryMax != 30*time.Second || got.LeaseTTL != DefaultLeaseTTL ||
			len(got.Owner) != 16 || got.Logger == nil || got.Now == nil || got.Rate != 0 {
			t.Errorf("defaults: got batch %d, concurrency %d, retry max %v, lease %v, owner %q, rate %v; want 256, 16, 30s, %v, 16 hex characters, 0",
				got.BatchSize, got.Concurrency, got.RetryMax, got.LeaseTTL, got.Owner, got.Rate, DefaultLeaseTTL)
		}
	})
}

// TestStateText: the states as the API spells them, and back.
func TestStateText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		state State
		text  string
	}{{StateNew, "New"}, {StateInProgress, "InProgress"}, {StateCompleted, "Completed"}, {StateUnknown, "Unknown"}} {
		if got := tc.state.String(); got != tc.text {
			t.Errorf("State(%d).String(): got %q, want %q", tc.state, got, tc.text)
		}
		got, err := ParseState(tc.text)
		if tc.state == StateUnknown {
			if err == nil {
				t.Errorf("ParseState(%q): got %v, nil; want an error", tc.text, got)
			}
			continue
		}
		if err != nil || got != tc.state {
			t.Errorf("ParseState(%q): got %v, %v; want %v", tc.text, got, err, tc.state)
		}
	}
	pe := &PrepareError{Err: errBoom}
	if got, want := pe.Error(), "migration could not be prepared: boom"; got != want || !errors.Is(pe, errBoom) {
		t.Errorf("PrepareError: got %q (wraps cause: %v), want %q wrapping its cause", got, errors.Is(pe, errBoom), want)
	}
	if got, want := (&NotStartedError{Reason: "why"}).Error(), "migration not started: why"; got != want {
		t.Errorf("NotStartedError: got %q, want %q", got, want)
	}
}
