package lifecycle

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/awskms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/awskms/awskind"
)

// These are unit tests of the monitor's decisions, with AWS KMS and the
// stores replaced by in-memory fakes; the end-to-end tests in
// cmd/tenantcrypt drive the same decisions through local-kms.

const (
	home = "eu-west-1"
	dr   = "eu-west-3"
	far  = "us-east-1"
	mrk  = "arn:aws:kms:eu-west-1:111122223333:key/mrk-0123456789abcdef0123456789abcdef"
)

var ref = kms.MustCMKRef(keyprovider.Fingerprint(mrk))

// answer is what the fake KMS says of a key in a region.
type answer struct {
	desc awskms.KeyDescription
	err  error
}

type fakeKMS struct {
	mu        sync.Mutex
	answers   map[string]answer // by region
	probeErr  error             // the error of the probe's Decrypt
	describes int
	probes    int
}

func (f *fakeKMS) set(region string, a answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[region] = a
}

func (f *fakeKMS) DescribeKey(_ context.Context, key awskms.ARN) (awskms.KeyDescription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.describes++
	a, ok := f.answers[key.Region]
	if !ok {
		return awskms.KeyDescription{}, &kms.Error{Op: "DescribeKey", Region: key.Region, Kind: kms.ErrKeyNotFound}
	}
	return a.desc, a.err
}

func (f *fakeKMS) Probe(_ context.Context, key awskms.ARN, region string, _ kms.Binding) []awskms.ProbeResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.probes++
	return []awskms.ProbeResult{
		{Action: "DescribeKey", Region: region},
		{Action: "GenerateDataKey", Region: region},
		{Action: "Encrypt", Region: region},
		{Action: "Decrypt", Region: region, Err: f.probeErr},
	}
}

func (f *fakeKMS) Provider(kms.Ref, awskms.ARN, ...string) kms.Provider { return nil }

func enabled(state kms.KeyState, aws string) answer {
	return answer{desc: awskms.KeyDescription{State: state, AWSState: aws, MultiRegion: true}}
}

func failed(region string, kind error) answer {
	return answer{err: &kms.Error{Op: "DescribeKey", Region: region, Kind: kind}}
}

type fakeTenants struct {
	mu      sync.Mutex
	tenants map[string]keyring.Tenant
	sets    int
}

func (f *fakeTenants) Tenant(_ context.Context, id string) (keyring.Tenant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tenants[id]
	if !ok {
		return keyring.Tenant{}, keyring.ErrTenantNotFound
	}
	return t, nil
}

func (f *fakeTenants) SetTenantState(_ context.Context, id string, provider kms.Ref, to keyring.TenantState, reason string) (keyring.StateChange, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sets++
	t := f.tenants[id]
	if t.Provider != provider || t.State == keyring.StateDestroyed {
		return keyring.StateChange{}, false, fault.ErrConflict
	}
	c := keyring.StateChange{TenantID: id, Provider: provider, From: t.State, To: to, Reason: reason}
	t.State, t.StateReason = to, reason
	f.tenants[id] = t
	return c, true, nil
}

func (f *fakeTenants) CountCipherKeys(context.Context, string) (map[kms.Ref]int, error) {
	return map[kms.Ref]int{}, nil
}

func (f *fakeTenants) state(id string) keyring.Tenant {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tenants[id]
}

type fakeStore struct {
	tenants *fakeTenants
	mu      sync.Mutex
	checks  map[string][]KeyCheck
	claims  map[string]*fakeClaim
	claimed []string // tenant ids, in the order claimed
}

type fakeClaim struct {
	due        time.Time
	owner      string
	leaseUntil time.Time
}

// ClaimKeyChecks is the stores' rule, in memory.
func (f *fakeStore) ClaimKeyChecks(ctx context.Context, owner string, every, _, _, lease time.Duration, limit int) ([]Due, error) {
	watched, _ := f.WatchedTenants(ctx, "", 1000)
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	ds := []Due{}
	for _, t := range watched {
		if len(ds) == limit {
			break
		}
		c := f.claims[t.ID]
		if c != nil && !(c.owner == "" && !c.due.After(now)) && !(c.owner != "" && !c.leaseUntil.After(now)) {
			continue
		}
		var late time.Duration
		if c != nil {
			late = now.Sub(c.due)
		}
		f.claims[t.ID] = &fakeClaim{due: now.Add(every), owner: owner, leaseUntil: now.Add(lease)}
		f.claimed = append(f.claimed, t.ID)
		ds = append(ds, Due{Tenant: t, Late: late})
	}
	return ds, nil
}

func (f *fakeStore) FinishKeyCheck(_ context.Context, tenantID, owner string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.claims[tenantID]; c != nil && c.owner == owner {
		c.owner = ""
	}
	return nil
}

func (f *fakeStore) claimedIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.claimed)
}

func (f *fakeStore) WatchedTenants(_ context.Context, after string, limit int) ([]keyring.Tenant, error) {
	f.tenants.mu.Lock()
	defer f.tenants.mu.Unlock()
	var out []keyring.Tenant
	for _, t := range f.tenants.tenants {
		if t.ID > after && t.Provider != kms.InternalRef() && t.State != keyring.StateDestroyed {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b keyring.Tenant) int { return strings.Compare(a.ID, b.ID) })
	return out[:min(limit, len(out))], nil
}

func (f *fakeStore) ReplaceKeyChecks(_ context.Context, tenantID string, checks []KeyCheck) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	cs := slices.Clone(checks)
	slices.SortFunc(cs, func(a, b KeyCheck) int { return strings.Compare(a.Region, b.Region) })
	f.checks[tenantID] = cs
	return nil
}

func (f *fakeStore) KeyChecks(_ context.Context, tenantID string) ([]KeyCheck, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.checks[tenantID]), nil
}

func (f *fakeStore) CountTenantsByState(context.Context) (map[keyring.TenantState]int, error) {
	return nil, errors.New("not used")
}

// fakeProviders holds one registered key, the multi-region mrk.
type fakeProviders struct {
	mu sync.Mutex
	p  keyprovider.Provider
}

func newFakeProviders() *fakeProviders {
	return &fakeProviders{p: keyprovider.Provider{Fingerprint: keyprovider.Fingerprint(mrk), ARN: mrk, MultiRegion: true, DRCompliant: true}}
}

func (f *fakeProviders) KeyProvider(_ context.Context, tenantID, fp string) (keyprovider.Provider, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fp != f.p.Fingerprint {
		return keyprovider.Provider{}, fault.ErrNotFound
	}
	p := f.p
	p.TenantID = tenantID
	return p, nil
}

func (f *fakeProviders) SetKeyProviderCompliance(_ context.Context, _, fp string, compliant bool, c keyprovider.ComplianceError, at time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fp != f.p.Fingerprint {
		return fault.ErrNotFound
	}
	f.p.DRCompliant, f.p.Compliance, f.p.TestedAt = compliant, c, at
	return nil
}

func (f *fakeProviders) InsertKeyProvider(context.Context, keyprovider.Provider) error {
	return errors.New("not used")
}

func (f *fakeProviders) ListKeyProviders(ctx context.Context, tenantID string) ([]keyprovider.Provider, error) {
	p, _ := f.KeyProvider(ctx, tenantID, f.get().Fingerprint)
	return []keyprovider.Provider{p}, nil
}

func (f *fakeProviders) UpdateKeyProvider(context.Context, keyprovider.Provider) error {
	return errors.New("not used")
}

func (f *fakeProviders) DeleteKeyProvider(context.Context, string, string) error {
	return errors.New("not used")
}

// keyProviders is the key-provider service over the fakes, with the AWS
// kind: the monitor's decisions are the AWS kind's checks.
func keyProviders(t *testing.T, f *fixture) *keyprovider.Service {
	t.Helper()
	kind, err := awskind.New(awskind.Config{Client: f.kms, Region: home, DRRegions: map[string]string{home: dr}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := keyprovider.New(keyprovider.Config{Store: f.providers, Tenants: f.tenants, Kinds: []keyprovider.Kind{kind}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fakeProviders) get() keyprovider.Provider {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.p
}

type fixture struct {
	m         *Monitor
	kms       *fakeKMS
	tenants   *fakeTenants
	store     *fakeStore
	providers *fakeProviders
	kp        *keyprovider.Service
}

func newFixture(t *testing.T, state keyring.TenantState) *fixture {
	t.Helper()
	f := &fixture{
		kms: &fakeKMS{answers: map[string]answer{
			home: enabled(kms.KeyEnabled, "Enabled"),
			dr:   enabled(kms.KeyEnabled, "Enabled"),
		}},
		tenants: &fakeTenants{tenants: map[string]keyring.Tenant{
			"acme":  {ID: "acme", State: state, Provider: ref},
			"local": {ID: "local", State: keyring.StateActive, Provider: kms.InternalRef()},
		}},
	}
	f.store = &fakeStore{tenants: f.tenants, checks: map[string][]KeyCheck{}, claims: map[string]*fakeClaim{}}
	f.providers = newFakeProviders()
	f.kp = keyProviders(t, f)
	m, err := New(Config{
		Store: f.store, Tenants: f.tenants, KeyProviders: f.kp, Interval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.m = m
	return f
}

// TestCheckDecidesTheState: what DescribeKey says in the key's own region
// decides the tenant's state; answers that are not about the key change
// nothing, whatever the state.
func TestCheckDecidesTheState(t *testing.T) {
	all := []keyring.TenantState{keyring.StateActive, keyring.StateKeyUnavailable, keyring.StateLocked}
	tests := []struct {
		name   string
		answer answer
		want   keyring.TenantState // StateUnknown: unchanged
		reason string
		result string
	}{
		{"enabled", enabled(kms.KeyEnabled, "Enabled"), keyring.StateActive, "", ResultOK},
		{"disabled", enabled(kms.KeyDisabled, "Disabled"), keyring.StateKeyUnavailable, "disabled in the customer's AWS account", ResultDisabled},
		{"key store disconnected", enabled(kms.KeyDisabled, "Unavailable"), keyring.StateKeyUnavailable, "AWS key state Unavailable", ResultDisabled},
		{"pending deletion", enabled(kms.KeyPendingDeletion, "PendingDeletion"), keyring.StateLocked, "scheduled for deletion", ResultPendingDeletion},
		{"access denied", failed(home, kms.ErrAccessDenied), keyring.StateKeyUnavailable, "deny this service", ResultAccessDenied},
		{"not found", failed(home, kms.ErrKeyNotFound), keyring.StateDestroyed, "does not exist", ResultNotFound},
		{"throttled", failed(home, kms.ErrThrottled), keyring.StateUnknown, "", ResultThrottled},
		{"unavailable", failed(home, kms.ErrUnavailable), keyring.StateUnknown, "", ResultUnavailable},
		{"deadline", answer{err: context.DeadlineExceeded}, keyring.StateUnknown, "", ResultUnavailable},
		{"other error", answer{err: errors.New("ValidationException")}, keyring.StateUnknown, "", ResultError},
	}
	for _, tc := range tests {
		for _, from := range all {
			t.Run(tc.name+"/from "+from.String(), func(t *testing.T) {
				f := newFixture(t, from)
				f.kms.set(home, tc.answer)
				checks, err := f.m.Check(t.Context(), "acme")
				if err != nil {
					t.Fatal(err)
				}
				want := tc.want
				if want == keyring.StateUnknown {
					want = from
				}
				got := f.tenants.state("acme")
				if got.State != want {
					t.Fatalf("state = %s, want %s", got.State, want)
				}
				if got.State != from && !strings.Contains(got.StateReason, tc.reason) {
					t.Errorf("reason %q does not say %q", got.StateReason, tc.reason)
				}
				if got.State != from && !strings.Contains(got.StateReason, home) && tc.want != keyring.StateActive {
					t.Errorf("reason %q does not name the region", got.StateReason)
				}
				if len(checks) != 2 || checks[0].Region != home || checks[0].Result != tc.result || checks[1].Region != dr {
					t.Errorf("checks = %+v, want %s then the DR region", checks, tc.result)
				}
				if tc.want == keyring.StateUnknown && f.tenants.sets != 0 {
					t.Errorf("an answer that is not about the key wrote the state")
				}
			})
		}
	}
}

// TestReturnToActiveNeedsAWorkingProbe: a key that DescribeKey shows
// enabled lets a refused tenant back in only if the key really serves.
func TestReturnToActiveNeedsAWorkingProbe(t *testing.T) {
	f := newFixture(t, keyring.StateKeyUnavailable)
	f.kms.probeErr = &kms.Error{Op: "Decrypt", Region: home, Kind: kms.ErrAccessDenied}
	if _, err := f.m.Check(t.Context(), "acme"); err != nil {
		t.Fatal(err)
	}
	if got := f.tenants.state("acme"); got.State != keyring.StateKeyUnavailable || !strings.Contains(got.StateReason, "Decrypt") {
		t.Errorf("with Decrypt denied: %s (%s), want key-unavailable naming Decrypt", got.State, got.StateReason)
	}
	f.kms.probeErr = &kms.Error{Op: "Decrypt", Region: home, Kind: kms.ErrUnavailable}
	sets := f.tenants.sets
	if _, err := f.m.Check(t.Context(), "acme"); err != nil {
		t.Fatal(err)
	}
	if got := f.tenants.state("acme"); got.State != keyring.StateKeyUnavailable || f.tenants.sets != sets {
		t.Errorf("a probe that met an outage changed the state to %s", got.State)
	}
	f.kms.probeErr = nil
	if _, err := f.m.Check(t.Context(), "acme"); err != nil {
		t.Fatal(err)
	}
	if got := f.tenants.state("acme"); got.State != keyring.StateActive {
		t.Errorf("with the probe working: %s, want active", got.State)
	}

	// An active tenant's enabled key is not probed: DescribeKey suffices.
	probes := f.kms.probes
	if _, err := f.m.Check(t.Context(), "acme"); err != nil {
		t.Fatal(err)
	}
	if f.kms.probes != probes {
		t.Errorf("an active tenant's key was probed")
	}
}

// TestRegions: the DR replica's state is recorded but does not revoke; a
// disabled primary of the multi-region key in a third region revokes.
func TestRegions(t *testing.T) {
	t.Run("replica disabled", func(t *testing.T) {
		f := newFixture(t, keyring.StateActive)
		f.kms.set(dr, enabled(kms.KeyDisabled, "Disabled"))
		checks, err := f.m.Check(t.Context(), "acme")
		if err != nil {
			t.Fatal(err)
		}
		if got := f.tenants.state("acme"); got.State != keyring.StateActive {
			t.Errorf("state = %s, want active", got.State)
		}
		if len(checks) != 2 || checks[1].Region != dr || checks[1].Result != ResultDisabled {
			t.Errorf("checks = %+v, want the DR replica disabled", checks)
		}
		p := f.providers.get()
		if p.DRCompliant || p.Compliance.Region != dr || p.Compliance.Code != keyprovider.CodeNotCompliant || !strings.Contains(p.Compliance.Message, "disabled") {
			t.Errorf("DR compliance with the replica disabled: %v %+v", p.DRCompliant, p.Compliance)
		}

		// Enabled again, but a required action is still refused there:
		// the provider stays non-compliant until a probe works.
		f.kms.set(dr, enabled(kms.KeyEnabled, "Enabled"))
		f.kms.probeErr = &kms.Error{Op: "Decrypt", Region: dr, Kind: kms.ErrAccessDenied}
		if _, err := f.m.Check(t.Context(), "acme"); err != nil {
			t.Fatal(err)
		}
		if p := f.providers.get(); p.DRCompliant {
			t.Errorf("compliant again while the probe in %s is refused", dr)
		}
		f.kms.probeErr = nil
		if _, err := f.m.Check(t.Context(), "acme"); err != nil {
			t.Fatal(err)
		}
		if p := f.providers.get(); !p.DRCompliant || p.Compliance != (keyprovider.ComplianceError{}) {
			t.Errorf("DR compliance with the replica back: %v %+v", p.DRCompliant, p.Compliance)
		}
		// An outage of the DR region changes nothing.
		f.kms.set(dr, failed(dr, kms.ErrUnavailable))
		if _, err := f.m.Check(t.Context(), "acme"); err != nil {
			t.Fatal(err)
		}
		if p := f.providers.get(); !p.DRCompliant {
			t.Errorf("an outage of %s made the provider non-compliant", dr)
		}
	})
	t.Run("primary elsewhere disabled", func(t *testing.T) {
		f := newFixture(t, keyring.StateActive)
		primary := strings.Replace(mrk, home, far, 1)
		a := enabled(kms.KeyEnabled, "Enabled")
		a.desc.Primary = &awskms.Replica{ARN: primary, Region: far}
		f.kms.set(home, a)
		f.kms.set(far, enabled(kms.KeyDisabled, "Disabled"))
		checks, err := f.m.Check(t.Context(), "acme")
		if err != nil {
			t.Fatal(err)
		}
		if got := f.tenants.state("acme"); got.State != keyring.StateKeyUnavailable || !strings.Contains(got.StateReason, far) {
			t.Errorf("state = %s (%s), want key-unavailable naming %s", got.State, got.StateReason, far)
		}
		if len(checks) != 3 {
			t.Errorf("checks = %+v, want the key's region, the primary's and the DR region", checks)
		}
		// The stored order puts the key's own region first.
		stored, err := f.m.KeyChecks(t.Context(), "acme")
		if err != nil || len(stored) != 3 || stored[0].Region != home {
			t.Errorf("KeyChecks = %+v, %v; want %s first", stored, err, home)
		}
	})
}

// TestDestroyedIsTerminal: a destroyed tenant is never checked again.
func TestDestroyedIsTerminal(t *testing.T) {
	f := newFixture(t, keyring.StateDestroyed)
	checks, err := f.m.Check(t.Context(), "acme")
	if err != nil || checks != nil || f.kms.describes != 0 {
		t.Errorf("Check of a destroyed tenant = %v, %v after %d DescribeKey calls; want nothing", checks, err, f.kms.describes)
	}
	checks, err = f.m.Check(t.Context(), "local")
	if err != nil || checks != nil || f.kms.describes != 0 {
		t.Errorf("Check of an internal-KMS tenant = %v, %v; want nothing", checks, err)
	}
}

// TestClaimsAndNotify: a started monitor claims the due checks (of the
// watched tenants only) and makes them, again each interval, and checks at
// once on Notify.
func TestClaimsAndNotify(t *testing.T) {
	f := newFixture(t, keyring.StateActive)
	f.kms.set(home, enabled(kms.KeyDisabled, "Disabled"))
	claimed := make(chan int, 16)
	f.m.cfg.Claimed = func(n int, _ time.Duration) {
		select {
		case claimed <- n:
		default:
		}
	}
	f.m.Start()
	defer f.m.Close()
	select {
	case n := <-claimed:
		if n != 1 {
			t.Errorf("claimed %d checks, want 1 (acme; local is on the internal KMS)", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no check claimed")
	}
	deadline := time.Now().Add(10 * time.Second)
	for f.tenants.state("acme").State != keyring.StateKeyUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("the claimed check did not revoke the tenant")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Due again an interval later.
	for len(f.store.claimedIDs()) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("claims: %q, want acme again and again", f.store.claimedIDs())
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, id := range f.store.claimedIDs() {
		if id != "acme" {
			t.Errorf("claimed %s, which is not watched", id)
		}
	}
	f.kms.set(home, enabled(kms.KeyEnabled, "Enabled"))
	f.m.Notify("acme")
	for f.tenants.state("acme").State != keyring.StateActive {
		if time.Now().After(deadline) {
			t.Fatal("the tenant did not return to active")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestClaimsAreShared: two monitors on one store (two replicas) do not
// both check a tenant in one interval, and a claim whose replica died is
// taken over.
func TestClaimsAreShared(t *testing.T) {
	f := newFixture(t, keyring.StateActive)
	other, err := New(Config{
		Store: f.store, Tenants: f.tenants, KeyProviders: f.kp, Interval: time.Hour, Poll: 10 * time.Millisecond, Owner: "other",
	})
	if err != nil {
		t.Fatal(err)
	}
	f.m.cfg.Interval, f.m.cfg.Poll, f.m.cfg.Owner = time.Hour, 10*time.Millisecond, "first"
	// A replica that claimed acme and died: its claim lapses at once.
	if _, err := f.store.ClaimKeyChecks(t.Context(), "dead", time.Hour, 0, 0, 0, 10); err != nil {
		t.Fatal(err)
	}
	f.m.Start()
	defer f.m.Close()
	other.Start()
	defer other.Close()
	deadline := time.Now().Add(10 * time.Second)
	for len(f.store.claimedIDs()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("nobody took the dead replica's check over")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Both poll every 10 ms: give them many polls to check acme twice in
	// the hour, which they must not.
	time.Sleep(300 * time.Millisecond)
	if got := f.store.claimedIDs(); len(got) != 2 {
		t.Errorf("claims %q, want the dead replica's and one more in the hour", got)
	}
}
