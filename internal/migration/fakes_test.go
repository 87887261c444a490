package migration

// In-memory fakes of the interfaces this package declares (Store,
// KeyProviders, Keyring) and of keyring.Providers / kms.Provider, for the
// unit tests of the planner and the worker (planner_test.go, worker_test.go).
// The real stores are tested against internal/store/storetest, and this
// package's own service_test.go and lease_test.go run against them.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// fakeStore is a Store in memory. Its leases lapse by its own clock (now),
// which a test moves on. Errors to inject are in errs, by method name, and
// stay until removed; listErrs are returned by the next calls of
// CipherKeysNotWrappedBy, one each (nil: a normal call). Errors
// injected by fail that wrap errOnce happen once.
type fakeStore struct {
	mu         sync.Mutex
	now        time.Time
	migrations []*leasedMigration // in insertion order
	keys       map[string][]keyring.CipherKey
	errs       map[string]error
	listErrs   []error
	// skipOnce makes RewrapCipherKeys skip these keys once, as a lost
	// compare-and-swap does.
	skipOnce map[envelope.KeyID]bool
	// history is every migration UpdateLeasedMigration stored, in order.
	history []Migration
	claims  []string // owners that claimed a migration
	// stealAfter, if > 0, gives the lease to "thief" once that many
	// UpdateLeasedMigration calls succeeded.
	stealAfter int
}

type leasedMigration struct {
	m           Migration
	owner       string
	leasedUntil time.Time
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		now:      time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		keys:     map[string][]keyring.CipherKey{},
		errs:     map[string]error{},
		skipOnce: map[envelope.KeyID]bool{},
	}
}

var _ Store = (*fakeStore)(nil)

func (s *fakeStore) fail(op string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs[op] = err
}

// err is the error injected for op; one that wraps errOnce happens once.
func (s *fakeStore) err(op string) error {
	err := s.errs[op]
	if errors.Is(err, errOnce) {
		delete(s.errs, op)
	}
	return err
}

func (s *fakeStore) find(id string) *leasedMigration {
	for _, lm := range s.migrations {
		if lm.m.ID == id {
			return lm
		}
	}
	return nil
}

func (s *fakeStore) InsertMigration(ctx context.Context, m Migration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.err("InsertMigration"); err != nil {
		return err
	}
	if s.find(m.ID) != nil {
		return fault.ErrExists
	}
	for _, lm := range s.migrations {
		if lm.m.TenantID == m.TenantID && lm.m.State != StateCompleted {
			return fmt.Errorf("fake: %w", ErrRunning)
		}
	}
	s.migrations = append(s.migrations, &leasedMigration{m: m})
	return nil
}

// put stores m as it is, leased to owner until until (no lease: "").
func (s *fakeStore) put(m Migration, owner string, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.migrations = append(s.migrations, &leasedMigration{m: m, owner: owner, leasedUntil: until})
}

func (s *fakeStore) LatestMigration(ctx context.Context, tenantID string) (Migration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.err("LatestMigration"); err != nil {
		return Migration{}, err
	}
	for _, lm := range slices.Backward(s.migrations) {
		if lm.m.TenantID == tenantID {
			return lm.m, nil
		}
	}
	return Migration{}, fault.ErrNotFound
}

// migration returns the stored migration id and its lease's owner.
func (s *fakeStore) migration(t *testing.T, id string) (Migration, string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	lm := s.find(id)
	if lm == nil {
		t.Fatalf("no migration %q stored", id)
	}
	return lm.m, lm.owner
}

func (s *fakeStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.migrations)
}

func (s *fakeStore) UpdateMigration(ctx context.Context, m Migration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.err("UpdateMigration"); err != nil {
		return err
	}
	lm := s.find(m.ID)
	if lm == nil {
		return fault.ErrNotFound
	}
	lm.m = m
	return nil
}

func (s *fakeStore) UnfinishedMigrations(ctx context.Context) ([]Migration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.err("UnfinishedMigrations"); err != nil {
		return nil, err
	}
	var out []Migration
	for _, lm := range s.migrations {
		if lm.m.State != StateCompleted {
			out = append(out, lm.m)
		}
	}
	return out, nil
}

func (s *fakeStore) ProviderSwitchTimes(ctx context.Context, tenantID string, ref kms.Ref) (promoted, demoted time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.err("ProviderSwitchTimes"); err != nil {
		return time.Time{}, time.Time{}, err
	}
	for _, lm := range s.migrations {
		if lm.m.TenantID != tenantID || lm.m.State != StateCompleted {
			continue
		}
		if lm.m.To == ref && lm.m.CompletedAt.After(promoted) {
			promoted = lm.m.CompletedAt
		}
		if lm.m.From == ref && lm.m.CompletedAt.After(demoted) {
			demoted = lm.m.CompletedAt
		}
	}
	return promoted, demoted, nil
}

// addKeys stores cipherkeys of the tenant, wrapped by the fake KMS of ref.
func (s *fakeStore) addKeys(t *testing.T, tenantID string, ref kms.Ref, n int) []keyring.CipherKey {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var added []keyring.CipherKey
	for range n {
		id, err := envelope.NewKeyID()
		if err != nil {
			t.Fatal(err)
		}
		ck := keyring.CipherKey{TenantID: tenantID, ID: id, Purpose: keyring.PurposeEncryption, Provider: ref, KeyVersion: "1"}
		ck.Wrapped = fakeBlob(ref, keyring.Binding(ck), id[:])
		s.keys[tenantID] = append(s.keys[tenantID], ck)
		added = append(added, ck)
	}
	slices.SortFunc(s.keys[tenantID], func(a, b keyring.CipherKey) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	return added
}

// cipherKeys returns the tenant's cipherkeys as stored.
func (s *fakeStore) cipherKeys(tenantID string) []keyring.CipherKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.keys[tenantID])
}

func (s *fakeStore) counts(tenantID string) map[kms.Ref]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[kms.Ref]int{}
	for _, ck := range s.keys[tenantID] {
		out[ck.Provider]++
	}
	return out
}

func (s *fakeStore) CipherKeysNotWrappedBy(ctx context.Context, tenantID string, ref kms.Ref, after envelope.KeyID, limit int) ([]keyring.CipherKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.listErrs) > 0 {
		err := s.listErrs[0]
		s.listErrs = s.listErrs[1:]
		if err != nil {
			return nil, err
		}
	}
	var out []keyring.CipherKey
	for _, ck := range s.keys[tenantID] {
		if ck.Provider != ref && bytes.Compare(ck.ID[:], after[:]) > 0 && len(out) < limit {
			out = append(out, ck)
		}
	}
	return out, nil
}

func (s *fakeStore) RewrapCipherKey(ctx context.Context, old keyring.CipherKey, provider kms.Ref, keyVersion string, wrapped []byte) error {
	n, err := s.RewrapCipherKeys(ctx, []Rewrap{{Old: old, Provider: provider, KeyVersion: keyVersion, Wrapped: wrapped}})
	if err == nil && n == 0 {
		return fault.ErrConflict
	}
	return err
}

func (s *fakeStore) RewrapCipherKeys(ctx context.Context, rs []Rewrap) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.err("RewrapCipherKeys"); err != nil {
		return 0, err
	}
	n := 0
	for _, r := range rs {
		if s.skipOnce[r.Old.ID] {
			delete(s.skipOnce, r.Old.ID)
			continue
		}
		keys := s.keys[r.Old.TenantID]
		for i := range keys {
			if keys[i].ID == r.Old.ID && keys[i].Provider == r.Old.Provider && bytes.Equal(keys[i].Wrapped, r.Old.Wrapped) {
				keys[i].Provider, keys[i].KeyVersion, keys[i].Wrapped = r.Provider, r.KeyVersion, r.Wrapped
				n++
			}
		}
	}
	return n, nil
}

func (s *fakeStore) ClaimMigration(ctx context.Context, id, owner string, ttl time.Duration) (Migration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.err("ClaimMigration"); err != nil {
		return Migration{}, err
	}
	lm := s.find(id)
	if lm == nil || lm.m.State == StateCompleted {
		return Migration{}, fault.ErrNotFound
	}
	if lm.owner != "" && lm.owner != owner && s.now.Before(lm.leasedUntil) {
		return Migration{}, ErrLeased
	}
	lm.owner, lm.leasedUntil = owner, s.now.Add(ttl)
	s.claims = append(s.claims, owner)
	return lm.m, nil
}

func (s *fakeStore) RenewMigrationLease(ctx context.Context, id, owner string, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.err("RenewMigrationLease"); err != nil {
		return err
	}
	lm := s.find(id)
	if lm == nil {
		return fault.ErrNotFound
	}
	if lm.owner != owner {
		return ErrLeased
	}
	lm.leasedUntil = s.now.Add(ttl)
	return nil
}

func (s *fakeStore) ReleaseMigrationLease(ctx context.Context, id, owner string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.err("ReleaseMigrationLease"); err != nil {
		return err
	}
	if lm := s.find(id); lm != nil && lm.owner == owner {
		lm.owner, lm.leasedUntil = "", time.Time{}
	}
	return nil
}

func (s *fakeStore) UpdateLeasedMigration(ctx context.Context, m Migration, owner string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.err("UpdateLeasedMigration"); err != nil {
		return err
	}
	lm := s.find(m.ID)
	if lm == nil {
		return fault.ErrNotFound
	}
	if lm.owner != owner {
		return ErrLeased
	}
	lm.m = m
	s.history = append(s.history, m)
	if m.State == StateCompleted {
		lm.owner, lm.leasedUntil = "", time.Time{}
	}
	if s.stealAfter > 0 && len(s.history) == s.stealAfter {
		lm.owner, lm.leasedUntil = "thief", s.now.Add(time.Hour)
	}
	return nil
}

// progress is the store's history of one migration as (state, done, last
// error) lines, for got/want comparisons.
func (s *fakeStore) progress() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, m := range s.history {
		line := fmt.Sprintf("%s %d/%d", m.State, m.Done, m.Total)
		if m.LastError != "" {
			line += " error"
		}
		out = append(out, line)
	}
	return out
}

// fakeKeyring is a Keyring over the fake store's cipherkeys.
type fakeKeyring struct {
	store    *fakeStore
	mu       sync.Mutex
	tenants  map[string]keyring.Tenant
	errs     map[string]error
	switches []string // "from→to"
	// extra are cipherkeys CipherKeyCounts counts beside the store's.
	extra map[kms.Ref]int
}

var _ Keyring = (*fakeKeyring)(nil)

func (k *fakeKeyring) Tenant(ctx context.Context, id string) (keyring.Tenant, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.errs["Tenant"]; err != nil {
		return keyring.Tenant{}, err
	}
	t, ok := k.tenants[id]
	if !ok {
		return keyring.Tenant{}, keyring.ErrTenantNotFound
	}
	return t, nil
}

func (k *fakeKeyring) setTenant(t keyring.Tenant) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.tenants[t.ID] = t
}

func (k *fakeKeyring) provider(t *testing.T, id string) kms.Ref {
	t.Helper()
	tn, err := k.Tenant(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return tn.Provider
}

func (k *fakeKeyring) CipherKeyCounts(ctx context.Context, tenantID string) (map[kms.Ref]int, error) {
	k.mu.Lock()
	err := k.errs["CipherKeyCounts"]
	if errors.Is(err, errOnce) {
		delete(k.errs, "CipherKeyCounts")
	}
	k.mu.Unlock()
	if err != nil {
		return nil, err
	}
	counts := k.store.counts(tenantID)
	k.mu.Lock()
	defer k.mu.Unlock()
	for ref, n := range k.extra {
		counts[ref] += n
	}
	return counts, nil
}

// errOnce, wrapped in an injected error, makes it happen once.
var errOnce = errors.New("once")

func (k *fakeKeyring) SwitchProvider(ctx context.Context, tenantID string, from, to kms.Ref) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.errs["SwitchProvider"]; err != nil {
		return err
	}
	t, ok := k.tenants[tenantID]
	if !ok {
		return keyring.ErrTenantNotFound
	}
	if t.Provider != from {
		return fmt.Errorf("fake: tenant on %s, not %s: %w", t.Provider, from, fault.ErrConflict)
	}
	t.Provider = to
	k.tenants[tenantID] = t
	k.switches = append(k.switches, from.String()+"→"+to.String())
	return nil
}

// fakeKeyProviders is KeyProviders: the tenants' registrations, and the
// stamps the migrations leave on them.
type fakeKeyProviders struct {
	mu     sync.Mutex
	regs   map[string]keyprovider.Provider // by tenant/fingerprint
	stamps []string                        // "ref promoted|demoted at"
	arns   []string                        // refs KeyARN was asked for
	errs   map[string]error
}

var _ KeyProviders = (*fakeKeyProviders)(nil)

func (p *fakeKeyProviders) register(tenantID, fingerprint, arn string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.regs[tenantID+"/"+fingerprint] = keyprovider.Provider{TenantID: tenantID, Fingerprint: fingerprint, ARN: arn}
}

func (p *fakeKeyProviders) Get(ctx context.Context, tenantID, fingerprint string) (keyprovider.Provider, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.regs[tenantID+"/"+fingerprint]
	if !ok {
		return keyprovider.Provider{}, keyprovider.ErrNotFound
	}
	return r, nil
}

func (p *fakeKeyProviders) KeyARN(ctx context.Context, tenantID string, ref kms.Ref) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.arns = append(p.arns, ref.String())
	fp, _ := ref.Fingerprint()
	return p.regs[tenantID+"/"+fp].ARN
}

func (p *fakeKeyProviders) Stamp(ctx context.Context, tenantID string, ref kms.Ref, promoted bool, at time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.errs["Stamp"]; err != nil {
		return err
	}
	what := "demoted"
	if promoted {
		what = "promoted"
	}
	p.stamps = append(p.stamps, fmt.Sprintf("%s %s %s", ref, what, at.Format(time.RFC3339Nano)))
	return nil
}

func (p *fakeKeyProviders) stamped() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := slices.Clone(p.stamps)
	slices.Sort(out)
	return out
}

// fakeProviders is keyring.Providers over fake KMSs, one per ref.
type fakeProviders struct {
	mu   sync.Mutex
	kmss map[kms.Ref]*fakeKMS
}

var _ keyring.Providers = (*fakeProviders)(nil)

func (p *fakeProviders) Provider(ctx context.Context, tenantID string, ref kms.Ref) (kms.Provider, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k, ok := p.kmss[ref]
	if !ok {
		return nil, fmt.Errorf("fake: %s: %w", ref, keyring.ErrUnknownProvider)
	}
	return k, nil
}

func (p *fakeProviders) Prefix(tenantID string, ref kms.Ref) string { return ref.String() }

func (p *fakeProviders) add(ref kms.Ref) *fakeKMS {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := &fakeKMS{ref: ref, state: kms.KeyEnabled}
	p.kmss[ref] = k
	return k
}

// fakeKMS wraps a key as its ref, a digest of the binding and the key in
// hex: Unwrap checks both, so a rewrap that lost the binding or used the
// wrong provider fails.
type fakeKMS struct {
	ref         kms.Ref
	mu          sync.Mutex
	state       kms.KeyState
	describeErr error
	// unwrapErrs fail the next Unwraps, one each (nil: a normal call).
	unwrapErrs []error
	// unwrapping, if set, is told of every Unwrap, which then waits for
	// its context to end.
	unwrapping chan<- struct{}
	unwraps    int
	wraps      int
}

var _ kms.Provider = (*fakeKMS)(nil)

func fakeBlob(ref kms.Ref, b kms.Binding, key []byte) []byte {
	d := sha256.Sum256(b.Canonical())
	return []byte(ref.String() + "|" + hex.EncodeToString(d[:4]) + "|" + hex.EncodeToString(key))
}

func (k *fakeKMS) Ref() kms.Ref { return k.ref }

func (k *fakeKMS) GenerateDataKey(ctx context.Context, b kms.Binding) (*secret.Bytes, kms.Wrapped, error) {
	return nil, kms.Wrapped{}, errors.New("fake: GenerateDataKey is not used by migrations")
}

func (k *fakeKMS) Wrap(ctx context.Context, plaintext *secret.Bytes, b kms.Binding) (kms.Wrapped, error) {
	k.mu.Lock()
	k.wraps++
	k.mu.Unlock()
	return kms.Wrapped{KeyVersion: "v-" + k.ref.String(), Blob: fakeBlob(k.ref, b, plaintext.Reveal())}, nil
}

func (k *fakeKMS) Unwrap(ctx context.Context, w kms.Wrapped, b kms.Binding) (*secret.Bytes, error) {
	k.mu.Lock()
	k.unwraps++
	var err error
	if len(k.unwrapErrs) > 0 {
		err, k.unwrapErrs = k.unwrapErrs[0], k.unwrapErrs[1:]
	}
	block := k.unwrapping
	k.mu.Unlock()
	if block != nil {
		block <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	return unwrapBlob(k.ref, w.Blob, b)
}

func unwrapBlob(ref kms.Ref, blob []byte, b kms.Binding) (*secret.Bytes, error) {
	parts := strings.Split(string(blob), "|")
	d := sha256.Sum256(b.Canonical())
	if len(parts) != 3 || parts[0] != ref.String() || parts[1] != hex.EncodeToString(d[:4]) {
		return nil, &kms.Error{Op: "Unwrap", Provider: ref.String(), Kind: kms.ErrInvalidCiphertext}
	}
	key, err := hex.DecodeString(parts[2])
	if err != nil {
		return nil, &kms.Error{Op: "Unwrap", Provider: ref.String(), Kind: kms.ErrInvalidCiphertext}
	}
	return secret.New(key), nil
}

func (k *fakeKMS) Describe(ctx context.Context) (kms.KeyInfo, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.describeErr != nil {
		return kms.KeyInfo{}, k.describeErr
	}
	return kms.KeyInfo{State: k.state}, nil
}

func (k *fakeKMS) calls() (unwraps, wraps int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.unwraps, k.wraps
}
