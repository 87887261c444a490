// Package keyring is tenantcrypt's core: tenants, their data keys
// ("cipherkeys", stored only wrapped), rotation of the active data key,
// a bounded cache of unwrapped keys, and the data-plane operations (encrypt,
// decrypt, rewrap, data keys) built on them.
//
// A Service needs a Store (persistence, see internal/store/...) and
// Providers (the KMSs that wrap data keys, see internal/kms/...). Once a
// tenant's data key is cached, encrypt and decrypt touch neither: the warm
// path is memory and AES-GCM only.
package keyring

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// Providers finds the key provider that a Ref names.
type Providers interface {
	// Provider returns provider ref as seen by the tenant.
	// Errors: ErrUnknownProvider.
	Provider(ctx context.Context, tenantID string, ref kms.Ref) (kms.Provider, error)
	// Prefix is the text-form prefix of ciphertexts and handles issued under
	// ref (envelope.InternalPrefix, envelope.CMKPrefix).
	Prefix(tenantID string, ref kms.Ref) string
}

// Defaults of Config: every field that is zero takes its default here, and
// the serve command's flags start from the same values.
const (
	DefaultMaxKeyUses    = 1 << 30
	DefaultMaxKeyAge     = 30 * 24 * time.Hour
	DefaultUseBlock      = 1 << 16
	DefaultTenantRefresh = 2 * time.Second
)

// MaxKeyUsesLimit is the largest MaxKeyUses: the NIST limit of 2^32
// encryptions under one key with random 96-bit GCM nonces.
const MaxKeyUsesLimit = 1 << 32

// Config configures a Service. Store and Providers are required.
type Config struct {
	Store     Store
	Providers Providers

	// MaxKeyUses retires the active data key after that many encryptions,
	// far below the 2^32 limit for random 96-bit GCM nonces. Default
	// DefaultMaxKeyUses (2^30).
	MaxKeyUses int64
	// MaxKeyAge retires the active data key after that long. Default
	// DefaultMaxKeyAge (30 days).
	MaxKeyAge time.Duration
	// UseBlock is how many encryptions a process reserves in the store at a
	// time, so that the count is kept across replicas without a database
	// write per encryption. Default 65,536 (capped at MaxKeyUses).
	UseBlock int64
	// TenantRefresh is how long a process trusts its copy of a tenant's
	// record (state, provider) before reading it again, unless a feed of
	// pushed changes vouches for it (see ChangesSeen). Default 2 s.
	TenantRefresh time.Duration
	// Cache bounds the cache of unwrapped data keys.
	Cache CacheConfig
	// TenantQuota is every tenant's data-plane quota unless the tenant has
	// its own (see Admit); the zero Quota: none.
	TenantQuota Quota

	// OnStateChange, if set, is told of every change of a tenant's state
	// made through this Service (for metrics); it must be fast.
	OnStateChange func(StateChange)
	// OnKeyRotated, if set, is told of every new active data key (for the
	// audit log); it must be fast.
	OnKeyRotated func(tenantID, keyID string, provider kms.Ref)
	// OnKeyRefused, if set, is told when a tenant's key refuses a call on
	// use (disabled, pending deletion, not found, access denied), so that
	// the key monitor can check the key at once; it must not block.
	OnKeyRefused func(tenantID string, ref kms.Ref, err error)

	Logger *slog.Logger
	Now    func() time.Time // for tests; default time.Now
}

func (c *Config) setDefaults() error {
	if c.Store == nil || c.Providers == nil {
		return errors.New("keyring: Store and Providers are required")
	}
	if c.MaxKeyUses <= 0 {
		c.MaxKeyUses = DefaultMaxKeyUses
	}
	if c.MaxKeyAge <= 0 {
		c.MaxKeyAge = DefaultMaxKeyAge
	}
	if c.UseBlock <= 0 {
		c.UseBlock = DefaultUseBlock
	}
	c.UseBlock = min(c.UseBlock, c.MaxKeyUses)
	if c.TenantRefresh <= 0 {
		c.TenantRefresh = DefaultTenantRefresh
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Service is the keyring. It is safe for concurrent use.
type Service struct {
	cfg   Config
	cache *keyCache

	mu      sync.RWMutex
	tenants map[string]*tenantEntry

	// feed is how far pushed changes are known to be complete (nil: not at
	// all); changed queues tenants to read again after a pushed change
	// (see changes.go).
	feed    atomic.Pointer[feedState]
	changed chan string

	// quotaOverrides is set once any tenant is seen with a quota of its
	// own, so that without quotas Admit reads no tenant.
	quotaOverrides atomic.Bool

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// tenantEntry is a process's view of one tenant: its record, refreshed every
// TenantRefresh (or when a change is pushed, see changes.go), and its active
// key with the uses left in the block this process reserved.
type tenantEntry struct {
	mu      sync.Mutex // serialises refreshes and rotations
	snap    atomic.Pointer[tenantSnapshot]
	active  atomic.Pointer[activeKey]
	changes atomic.Uint64 // pushed changes of the tenant so far
	removed bool          // guarded by mu: the tenant was deleted by this process
	bucket  bucket        // the tenant's data-plane quota in this process
	// inUseUntil (unix nanoseconds) is how long the store's mark that this
	// process holds keys of the tenant lasts (see markInUse).
	inUseUntil atomic.Int64
}

type tenantSnapshot struct {
	t       Tenant
	fetched time.Time // when the read that got t began
	changes uint64    // the entry's pushed changes when that read began
}

type activeKey struct {
	id        envelope.KeyID
	prefix    string
	createdAt time.Time
	left      atomic.Int64 // uses left in this process's reserved block
}

// New returns a Service and starts its cache sweeper; call Close to stop it.
func New(cfg Config) (*Service, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Service{
		cfg:     cfg,
		cache:   newKeyCache(cfg.Cache, cfg.Now),
		tenants: make(map[string]*tenantEntry),
		changed: make(chan string, changedQueue),
		stop:    make(chan struct{}),
	}
	s.wg.Add(2)
	go s.sweepLoop()
	go s.changedLoop()
	return s, nil
}

// Close stops background work and destroys every cached key.
func (s *Service) Close() {
	s.stopOnce.Do(func() { close(s.stop) })
	s.wg.Wait()
	s.cache.purgeAll()
}

func (s *Service) sweepLoop() {
	defer s.wg.Done()
	// Sweep often enough that no key outlives its TTL by more than a tenth.
	t := time.NewTicker(max(s.cache.cfg.IdleTimeout/10, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.cache.sweep()
		}
	}
}

// CacheStats reports the data-key cache's counters.
func (s *Service) CacheStats() CacheStats { return s.cache.stats() }

// PurgeTenantKeys destroys every cached plaintext key of a tenant and forgets
// its active key, so that the next use goes back to the store and the KMS.
func (s *Service) PurgeTenantKeys(tenantID string) {
	if te := s.lookupEntry(tenantID); te != nil {
		te.active.Store(nil)
		te.snap.Store(nil)
	}
	s.cache.purge(tenantID)
}

// ---- tenants ----

// TenantSpec is what a platform admin gives to create a tenant.
type TenantSpec struct {
	ID      string // optional; generated when empty
	Name    string
	Edition Edition
	HIPAA   bool
	Quota   Quota // optional; the zero Quota: the server's defaults
}

// TenantUpdate changes some fields of a tenant; nil fields stay as they are.
type TenantUpdate struct {
	Name    *string
	Edition *Edition
	HIPAA   *bool
	Quota   *Quota // the zero Quota returns the tenant to the server's defaults
}

// ValidateTenantID checks the form of a tenant id (api.ValidTenantID): 1–64
// characters of letters, digits, '.', '_' and '-', starting with a letter or
// digit.
func ValidateTenantID(id string) error {
	if !api.ValidTenantID(id) {
		return &fault.InputError{Field: "id", Reason: "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"}
	}
	return nil
}

func validateName(name string) error {
	if strings.TrimSpace(name) == "" || len(name) > 256 || !utf8.ValidString(name) {
		return &fault.InputError{Field: "name", Reason: "must be 1-256 characters of valid UTF-8, not only spaces"}
	}
	return nil
}

// CreateTenant creates a tenant on the internal KMS, in state active.
// Errors: *fault.InputError, ErrTenantExists, ErrTenantRetired,
// ErrHIPAARequiresCMK.
func (s *Service) CreateTenant(ctx context.Context, spec TenantSpec) (Tenant, error) {
	if spec.ID == "" {
		spec.ID = newTenantID()
	}
	if err := ValidateTenantID(spec.ID); err != nil {
		return Tenant{}, err
	}
	if err := validateName(spec.Name); err != nil {
		return Tenant{}, err
	}
	if spec.Edition != EditionEnterprise && spec.Edition != EditionBusiness {
		return Tenant{}, &fault.InputError{Field: "edition", Reason: ErrInvalidEdition.Error()}
	}
	if err := validateQuota(spec.Quota); err != nil {
		return Tenant{}, err
	}
	if spec.HIPAA {
		return Tenant{}, ErrHIPAARequiresCMK
	}
	now := s.now()
	t := Tenant{
		ID: spec.ID, Name: spec.Name, Edition: spec.Edition, State: StateActive,
		Provider: kms.InternalRef(), CreatedAt: now, UpdatedAt: now, Quota: spec.Quota,
	}
	if t.Quota != (Quota{}) {
		s.quotaOverrides.Store(true)
	}
	if err := s.cfg.Store.CreateTenant(ctx, t); err != nil {
		switch {
		case errors.Is(err, fault.ErrExists):
			return Tenant{}, ErrTenantExists
		case errors.Is(err, ErrRetired):
			return Tenant{}, ErrTenantRetired
		}
		return Tenant{}, storeError("creating tenant", err)
	}
	s.cfg.Logger.InfoContext(ctx, "tenant created", "tenant", t.ID, "edition", t.Edition.String())
	return t, nil
}

// Tenant returns the stored tenant. Errors: ErrTenantNotFound.
func (s *Service) Tenant(ctx context.Context, id string) (Tenant, error) {
	t, err := s.cfg.Store.Tenant(ctx, id)
	if errors.Is(err, fault.ErrNotFound) {
		return Tenant{}, ErrTenantNotFound
	}
	if err != nil {
		return Tenant{}, storeError("reading tenant", err)
	}
	return t, nil
}

// ListTenants pages through tenants in id order.
func (s *Service) ListTenants(ctx context.Context, after string, limit int) ([]Tenant, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	ts, err := s.cfg.Store.ListTenants(ctx, after, limit)
	if err != nil {
		return nil, storeError("listing tenants", err)
	}
	return ts, nil
}

// UpdateTenant changes a tenant's name, edition or HIPAA flag.
// Errors: ErrTenantNotFound, *fault.InputError, ErrHIPAARequiresCMK,
// ErrEditionForbidsCMK.
func (s *Service) UpdateTenant(ctx context.Context, id string, u TenantUpdate) (Tenant, error) {
	te := s.entry(id)
	te.mu.Lock()
	defer te.mu.Unlock()
	t, err := s.Tenant(ctx, id)
	if err != nil {
		return Tenant{}, err
	}
	if u.Name != nil {
		if err := validateName(*u.Name); err != nil {
			return Tenant{}, err
		}
		t.Name = *u.Name
	}
	if u.Edition != nil {
		if *u.Edition != EditionEnterprise && *u.Edition != EditionBusiness {
			return Tenant{}, &fault.InputError{Field: "edition", Reason: ErrInvalidEdition.Error()}
		}
		if *u.Edition == EditionBusiness && !t.Provider.IsInternal() {
			return Tenant{}, ErrEditionForbidsCMK
		}
		t.Edition = *u.Edition
	}
	if u.HIPAA != nil {
		if *u.HIPAA && t.Provider.IsInternal() {
			return Tenant{}, ErrHIPAARequiresCMK
		}
		t.HIPAA = *u.HIPAA
	}
	if u.Quota != nil {
		if err := validateQuota(*u.Quota); err != nil {
			return Tenant{}, err
		}
		t.Quota = *u.Quota
		if t.Quota != (Quota{}) {
			s.quotaOverrides.Store(true)
		}
	}
	t.UpdatedAt = s.now()
	if err := s.cfg.Store.UpdateTenant(ctx, t); err != nil {
		if errors.Is(err, fault.ErrNotFound) {
			return Tenant{}, ErrTenantNotFound
		}
		return Tenant{}, storeError("updating tenant", err)
	}
	// Read again at next use: t's lifecycle fields may be older than what
	// the key monitor wrote meanwhile.
	te.snap.Store(nil)
	return t, nil
}

// TenantForgetter is implemented by providers that cache per-tenant keys
// (the internal KMS's KEKs), so that a deleted tenant leaves nothing behind.
type TenantForgetter interface {
	Forget(tenantID string)
}

// DeleteTenant destroys a tenant and every one of its keys: its cipherkeys
// and internal KEKs are deleted from the store in one transaction and its
// cached keys are zeroed. Its ciphertexts can never be decrypted again.
// Errors: ErrTenantNotFound.
func (s *Service) DeleteTenant(ctx context.Context, id string) error {
	te := s.entry(id)
	te.mu.Lock()
	defer te.mu.Unlock()
	err := s.cfg.Store.DeleteTenant(ctx, id)
	if errors.Is(err, fault.ErrNotFound) {
		return ErrTenantNotFound
	}
	if err != nil {
		return storeError("deleting tenant", err)
	}
	te.removed = true
	te.active.Store(nil)
	te.snap.Store(nil)
	s.cache.purge(id)
	if f, ok := s.cfg.Providers.(TenantForgetter); ok {
		f.Forget(id)
	}
	s.mu.Lock()
	delete(s.tenants, id)
	s.mu.Unlock()
	s.cfg.Logger.InfoContext(ctx, "tenant deleted and its keys destroyed", "tenant", id)
	return nil
}

func newTenantID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

func (s *Service) lookupEntry(id string) *tenantEntry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tenants[id]
}

func (s *Service) entry(id string) *tenantEntry {
	if te := s.lookupEntry(id); te != nil {
		return te
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	te := s.tenants[id]
	if te == nil {
		te = &tenantEntry{}
		s.tenants[id] = te
	}
	return te
}

// usableTenant returns the tenant's record, from memory while it is fresh,
// and refuses a tenant that may not use its keys.
func (s *Service) usableTenant(ctx context.Context, id string) (*tenantEntry, Tenant, error) {
	if err := ValidateTenantID(id); err != nil {
		return nil, Tenant{}, ErrTenantNotFound
	}
	te, snap, err := s.snapshot(ctx, id)
	if err != nil {
		return nil, Tenant{}, err
	}
	if snap.t.State != StateActive {
		return nil, Tenant{}, stateError(snap.t)
	}
	return te, snap.t, nil
}

// snapshot returns the tenant's entry and its record, from memory while it
// is fresh.
func (s *Service) snapshot(ctx context.Context, id string) (*tenantEntry, *tenantSnapshot, error) {
	te := s.entry(id)
	snap := te.snap.Load()
	if !s.trusted(te, snap) {
		var err error
		if snap, err = s.refreshTenant(ctx, id, te); err != nil {
			return nil, nil, err
		}
	}
	return te, snap, nil
}

func (s *Service) refreshTenant(ctx context.Context, id string, te *tenantEntry) (*tenantSnapshot, error) {
	te.mu.Lock()
	defer te.mu.Unlock()
	if snap := te.snap.Load(); s.trusted(te, snap) {
		return snap, nil // another caller refreshed it while we waited
	}
	// A change pushed from now on makes what this read gets stale, even if
	// the read does not see that change.
	changes := te.changes.Load()
	fetched := s.cfg.Now()
	t, err := s.Tenant(ctx, id)
	if err != nil {
		if errors.Is(err, ErrTenantNotFound) {
			// Deleted, possibly by another replica: nothing of it may stay.
			te.active.Store(nil)
			s.cache.purge(id)
			if f, ok := s.cfg.Providers.(TenantForgetter); ok {
				f.Forget(id)
			}
		}
		return nil, err
	}
	old := te.snap.Load()
	if old != nil && old.fetched.After(fetched) {
		// SetTenantState stored a newer record while we read this one.
		return old, nil
	}
	if old == nil || old.t.State != t.State || old.t.Provider != t.Provider {
		te.active.Store(nil)
		if t.State != StateActive {
			s.cache.purge(id)
		}
	}
	if t.Quota != (Quota{}) {
		s.quotaOverrides.Store(true)
	}
	snap := &tenantSnapshot{t: t, fetched: fetched, changes: changes}
	if !te.snap.CompareAndSwap(old, snap) {
		// SetTenantState stored a newer record while we read this one.
		return te.snap.Load(), nil
	}
	return snap, nil
}

// ---- data plane ----

// Encrypt seals plaintext under the tenant's active data key, bound to the
// tenant and ectx, and returns the ciphertext's text form.
// Errors: ErrTenantNotFound, *TenantStateError, *fault.InputError, KMS errors.
func (s *Service) Encrypt(ctx context.Context, tenantID string, ectx envelope.Context, plaintext []byte) (string, error) {
	if err := checkEncryptInput(ectx, plaintext); err != nil {
		return "", err
	}
	te, t, err := s.usableTenant(ctx, tenantID)
	if err != nil {
		return "", err
	}
	ak, err := s.useActiveKey(ctx, te, t)
	if err != nil {
		return "", err
	}
	var text string
	err = s.withAEAD(ctx, tenantID, ak.id, func(aead cipher.AEAD) error {
		var err error
		text, err = sealText(aead, tenantID, ak, ectx, plaintext)
		return err
	})
	return text, err
}

// Decrypt opens a ciphertext made by Encrypt for the same tenant and ectx.
// Every reason a ciphertext does not open (malformed, another tenant's,
// another context, altered, unknown key) is the one ErrDecrypt.
// Errors: ErrDecrypt, ErrTenantNotFound, *TenantStateError, KMS errors.
func (s *Service) Decrypt(ctx context.Context, tenantID string, ectx envelope.Context, text string) ([]byte, error) {
	ct, err := parseCiphertext(text)
	if err != nil {
		return nil, err
	}
	if err := ectx.Validate(); err != nil {
		return nil, &fault.InputError{Field: "context", Reason: err.Error()}
	}
	if _, _, err := s.usableTenant(ctx, tenantID); err != nil {
		return nil, err
	}
	var pt []byte
	err = s.withAEAD(ctx, tenantID, ct.KeyID, func(aead cipher.AEAD) error {
		var err error
		pt, err = envelope.Open(aead, tenantID, ct, ectx)
		if err != nil {
			return ErrDecrypt
		}
		return nil
	})
	return pt, err
}

// Rewrap re-encrypts a ciphertext under the tenant's active data key without
// the plaintext leaving the service; the context stays the same.
func (s *Service) Rewrap(ctx context.Context, tenantID string, ectx envelope.Context, text string) (string, error) {
	pt, err := s.Decrypt(ctx, tenantID, ectx, text)
	if err != nil {
		return "", err
	}
	defer clear(pt)
	return s.Encrypt(ctx, tenantID, ectx, pt)
}

func parseCiphertext(text string) (*envelope.Ciphertext, error) {
	_, bin, err := envelope.ParseText(text)
	if err != nil {
		return nil, ErrDecrypt
	}
	ct, err := envelope.ParseCiphertext(bin)
	if err != nil {
		return nil, ErrDecrypt
	}
	return ct, nil
}

// withAEAD runs fn with AES-GCM under the tenant's encryption key id,
// unwrapping it on a cache miss.
func (s *Service) withAEAD(ctx context.Context, tenantID string, id envelope.KeyID, fn func(cipher.AEAD) error) error {
	load := func(ctx context.Context) (loaded, error) {
		return s.unwrap(ctx, tenantID, id, PurposeEncryption, [32]byte{})
	}
	return s.cache.use(ctx, cacheKey{tenantID, id}, PurposeEncryption, [32]byte{}, load, func(key []byte) error {
		aead, err := envelope.NewAEAD(key)
		if err != nil {
			return fmt.Errorf("keyring: %w", err)
		}
		return fn(aead)
	})
}

// unwrap reads a cipherkey and asks its provider to unwrap it. A key that
// does not exist, or is not what the caller expects, is ErrDecrypt.
func (s *Service) unwrap(ctx context.Context, tenantID string, id envelope.KeyID, purpose Purpose, digest [32]byte) (loaded, error) {
	ck, err := s.cfg.Store.CipherKey(ctx, tenantID, id)
	if errors.Is(err, fault.ErrNotFound) {
		return loaded{}, ErrDecrypt
	}
	if err != nil {
		return loaded{}, storeError("reading cipherkey", err)
	}
	if ck.Purpose != purpose {
		return loaded{}, ErrDecrypt
	}
	var got [32]byte
	if purpose == PurposeDataKey {
		if len(ck.ContextDigest) != len(got) {
			return loaded{}, ErrDecrypt
		}
		copy(got[:], ck.ContextDigest)
		if got != digest {
			return loaded{}, ErrDecrypt
		}
	}
	p, err := s.cfg.Providers.Provider(ctx, tenantID, ck.Provider)
	if err != nil {
		return loaded{}, err
	}
	key, err := p.Unwrap(ctx, kms.Wrapped{KeyVersion: ck.KeyVersion, Blob: ck.Wrapped}, binding(tenantID, id, purpose, digest))
	if err != nil {
		s.noticeKeyError(ctx, tenantID, ck.Provider, err)
		return loaded{}, err
	}
	if err := s.markInUse(ctx, tenantID, ck.Provider); err != nil {
		key.Destroy()
		return loaded{}, err
	}
	if key.Len() != kms.DataKeySize {
		key.Destroy()
		return loaded{}, fmt.Errorf("keyring: provider %s unwrapped a key of the wrong size", ck.Provider)
	}
	return loaded{key: key, purpose: purpose, digest: got}, nil
}

// markInUse records in the store, for the key monitor, that this process
// is about to hold an unwrapped key of the tenant from a customer's KMS,
// for at most the cache's TTL: while any replica does, the tenant's key is
// checked every check interval, so that a revocation reaches the cached
// key within the bound; a tenant no replica holds keys of is idle, checked
// slowly, as it cannot use a revoked key without asking the KMS, which
// refuses. The mark lasts half a TTL longer than needed, so that a process
// writes it at most twice per TTL. Without the mark, the key is not used.
func (s *Service) markInUse(ctx context.Context, tenantID string, provider kms.Ref) error {
	if provider.IsInternal() {
		return nil // no key checks: nothing outside this service can revoke it
	}
	te := s.entry(tenantID)
	now := s.cfg.Now()
	ttl := s.cache.cfg.TTL
	if now.Add(ttl).UnixNano() <= te.inUseUntil.Load() {
		return nil
	}
	until := now.Add(ttl + ttl/2)
	if err := s.cfg.Store.MarkKeysInUse(ctx, tenantID, until); err != nil {
		return storeError("marking the tenant's keys in use", err)
	}
	te.inUseUntil.Store(until.UnixNano())
	return nil
}

// Binding is what the cipherkey's wrapping is bound to at its provider,
// for whoever rewraps it (a provider migration).
func Binding(ck CipherKey) kms.Binding {
	var digest [32]byte
	copy(digest[:], ck.ContextDigest)
	return binding(ck.TenantID, ck.ID, ck.Purpose, digest)
}

// binding is what a wrapped data key is bound to at its provider: the
// tenant, the key id, and for data keys the digest of the caller's context.
func binding(tenantID string, id envelope.KeyID, purpose Purpose, digest [32]byte) kms.Binding {
	b := kms.Binding{kms.BindingTenant: tenantID, kms.BindingKeyID: id.String()}
	if purpose == PurposeDataKey {
		b[kms.BindingContext] = fmt.Sprintf("%x", digest)
	}
	return b
}

// TenantStatus is a tenant's encryption status, for its admins and services.
type TenantStatus struct {
	Tenant Tenant
	// Prefix is the text-form prefix of what the current provider issues.
	Prefix string
	// Key is the internal KMS's description of its key; KeyErr is set
	// instead when it could not describe it. Both are zero for a customer
	// managed key, whose state the key monitor reports.
	Key    kms.KeyInfo
	KeyErr error
	// CipherKeys counts the tenant's stored data keys by provider Ref.
	CipherKeys map[kms.Ref]int
}

// TenantStatus reports a tenant's state and its key's, whatever the state:
// a locked or key-unavailable tenant can still read its status.
// Errors: ErrTenantNotFound.
func (s *Service) TenantStatus(ctx context.Context, id string) (TenantStatus, error) {
	t, err := s.Tenant(ctx, id)
	if err != nil {
		return TenantStatus{}, err
	}
	counts, err := s.CipherKeyCounts(ctx, id)
	if err != nil {
		return TenantStatus{}, err
	}
	st := TenantStatus{Tenant: t, Prefix: s.cfg.Providers.Prefix(id, t.Provider), CipherKeys: counts}
	if !t.Provider.IsInternal() {
		// A customer managed key's state is what the key monitor last
		// found, not a KMS call per status request.
		return st, nil
	}
	p, err := s.cfg.Providers.Provider(ctx, id, t.Provider)
	if err == nil {
		st.Key, err = p.Describe(ctx)
	}
	st.KeyErr = err
	return st, nil
}

// CipherKeyCounts counts the tenant's stored data keys by the Ref of the
// provider that wraps them.
func (s *Service) CipherKeyCounts(ctx context.Context, tenantID string) (map[kms.Ref]int, error) {
	counts, err := s.cfg.Store.CountCipherKeys(ctx, tenantID)
	if err != nil {
		return nil, storeError("counting cipherkeys", err)
	}
	return counts, nil
}

// SwitchProvider makes ref the provider that wraps the tenant's new data
// keys, provided the tenant's provider is still from (a compare-and-swap in
// the store, so that replicas switching at once agree). The active data key
// is rotated at its next use, so that new encryptions use a key made by the
// new provider. Errors: ErrTenantNotFound, fault.ErrConflict (the provider is not
// from).
func (s *Service) SwitchProvider(ctx context.Context, tenantID string, from, to kms.Ref) error {
	te := s.entry(tenantID)
	te.mu.Lock()
	defer te.mu.Unlock()
	t, err := s.Tenant(ctx, tenantID)
	if err != nil {
		return err
	}
	if t.Provider != from {
		return fault.ErrConflict
	}
	t.Provider = to
	t.UpdatedAt = s.now()
	if err := s.cfg.Store.SwitchTenantProvider(ctx, tenantID, from, to, t.UpdatedAt); err != nil {
		switch {
		case errors.Is(err, fault.ErrNotFound):
			return ErrTenantNotFound
		case errors.Is(err, fault.ErrConflict):
			return fault.ErrConflict
		}
		return storeError("switching provider", err)
	}
	te.active.Store(nil)
	te.snap.Store(nil) // read again at next use, lifecycle fields included
	s.cfg.Logger.InfoContext(ctx, "tenant key provider switched", "tenant", tenantID, "from", from, "to", to)
	// Make the new provider's first data key now, so that encryptions from
	// here on use it. If that fails (the KMS is slow), the next encryption
	// rotates instead: an active key of another provider is replaced.
	var prev *envelope.KeyID
	if cur, err := s.cfg.Store.ActiveCipherKey(ctx, tenantID); err == nil {
		prev = &cur.ID
	}
	if ak, err := s.rotate(ctx, t, prev); err == nil {
		te.active.Store(ak)
	} else if !errors.Is(err, fault.ErrConflict) {
		s.cfg.Logger.WarnContext(ctx, "making the new provider's first data key failed; the next encryption retries", "tenant", tenantID, "error", err.Error())
	}
	return nil
}
