package migration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// Keyring is what migrations need of the keyring (a *keyring.Service).
type Keyring interface {
	Tenant(ctx context.Context, id string) (keyring.Tenant, error)
	CipherKeyCounts(ctx context.Context, tenantID string) (map[kms.Ref]int, error)
	SwitchProvider(ctx context.Context, tenantID string, from, to kms.Ref) error
}

// KeyProviders is what migrations need of the tenants' registered keys (a
// *keyprovider.Service, their one owner).
type KeyProviders interface {
	// Get returns a registration. Errors: keyprovider.ErrNotFound.
	Get(ctx context.Context, tenantID, fingerprint string) (keyprovider.Provider, error)
	// KeyARN names the customer managed key ref stands for.
	KeyARN(ctx context.Context, tenantID string, ref kms.Ref) string
	// Stamp records when ref's registration became the tenant's current
	// provider (promoted) or stopped being so.
	Stamp(ctx context.Context, tenantID string, ref kms.Ref, promoted bool, at time.Time) error
}

// Config configures a Service.
type Config struct {
	Store        Store
	KeyProviders KeyProviders
	Keyring      Keyring
	Providers    keyring.Providers
	// Rate caps the cipherkeys rewrapped per second for one tenant (each
	// is a Decrypt and an Encrypt at the KMS); 0 means no cap.
	Rate float64
	// BatchSize is how many cipherkeys are read, and their new wrappings
	// stored in one transaction, per batch. Default 256.
	BatchSize int
	// Concurrency is how many cipherkeys of a batch are rewrapped at once
	// (KMS round trips in flight). Default 16.
	Concurrency int
	// RetryMax bounds the backoff between failed batches. Default 30 s.
	RetryMax time.Duration
	// Owner names this replica in the migrations' leases; default a
	// random name. Every replica must have its own.
	Owner string
	// LeaseTTL is how long a migration's lease lasts unless renewed (it is
	// renewed every LeaseTTL/3): a replica that dies leaves its migration
	// to another after at most LeaseTTL, which also looks for such
	// migrations every LeaseTTL/2. Default DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Hooks report progress to metrics; any may be nil.
	Hooks  Hooks
	Logger *slog.Logger
	Now    func() time.Time
}

// Hooks are told what the workers do, for metrics. They must be fast.
type Hooks struct {
	// Rewrapped is called with the number of cipherkeys a batch rewrapped.
	Rewrapped func(n int)
	// BatchFailed is called when a batch fails (and will be retried).
	BatchFailed func()
	// Running is called with +1 when a worker starts and -1 when it stops.
	Running func(delta int)
}

func (h Hooks) rewrapped(n int) {
	if h.Rewrapped != nil && n > 0 {
		h.Rewrapped(n)
	}
}

func (h Hooks) batchFailed() {
	if h.BatchFailed != nil {
		h.BatchFailed()
	}
}

func (h Hooks) running(delta int) {
	if h.Running != nil {
		h.Running(delta)
	}
}

// DefaultRate is the default --migration-rate: 200 cipherkeys per second,
// 400 KMS requests per second, well inside AWS KMS's smallest shared quota
// for cryptographic operations (5,500 per second per account and region).
const DefaultRate = 200

// DefaultLeaseTTL is the default --migration-lease.
const DefaultLeaseTTL = 10 * time.Second

// Service starts migrations and runs them in the background. Replicas share
// the work through leases in the store: a migration is worked on by the
// replica that holds its lease, one at a time; the replica that starts a
// migration claims it, and every replica looks every LeaseTTL/2 for
// unfinished migrations whose lease lapsed (their replica died or was
// stopped) and takes them over.
type Service struct {
	cfg Config

	mu      sync.Mutex
	running map[string]bool // tenants with a worker in this process
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	// sleep waits d, or until ctx ends (then it returns ctx.Err()): the
	// workers' backoff and pacing. A seam for unit tests, which drive a
	// worker without waiting; New sets sleepCtx.
	sleep func(ctx context.Context, d time.Duration) error
}

// New returns a Service; Close stops its workers.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.KeyProviders == nil || cfg.Keyring == nil || cfg.Providers == nil {
		return nil, errors.New("migration: Store, KeyProviders, Keyring and Providers are required")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 256
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 30 * time.Second
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
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
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{cfg: cfg, running: map[string]bool{}, ctx: ctx, cancel: cancel, sleep: sleepCtx}, nil
}

// sleepCtx waits d, or until ctx ends (then it returns ctx.Err()).
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Close stops the workers and gives up their leases, so that another
// replica takes their migrations over at once (or this one at its next
// start).
func (s *Service) Close() {
	s.cancel()
	s.wg.Wait()
}

// Start resumes the unfinished migrations that no other replica works on,
// now and every LeaseTTL/2 until Close: after a restart, and whenever
// another replica dies or stops in the middle of one.
func (s *Service) Start() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(s.cfg.LeaseTTL / 2)
		defer t.Stop()
		for {
			if err := s.Resume(s.ctx); err != nil && s.ctx.Err() == nil {
				s.cfg.Logger.Warn("looking for migrations to resume failed; retrying", "error", err.Error())
			}
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

// Resume claims every unfinished migration whose lease is free or lapsed
// (its replica died, stopped, or never got to it) and works on it.
func (s *Service) Resume(ctx context.Context) error {
	ms, err := s.cfg.Store.UnfinishedMigrations(ctx)
	if err != nil {
		return &fault.StoreError{Op: "listing unfinished migrations", Err: err}
	}
	var errs []error
	for _, m := range ms {
		if s.isRunning(m.TenantID) {
			continue
		}
		claimed := time.Now()
		m, err := s.cfg.Store.ClaimMigration(ctx, m.ID, s.cfg.Owner, s.cfg.LeaseTTL)
		switch {
		case errors.Is(err, ErrLeased), errors.Is(err, fault.ErrNotFound):
			continue // another replica works on it, or it just completed
		case err != nil:
			errs = append(errs, err)
			continue
		}
		s.cfg.Logger.InfoContext(ctx, "resuming migration", "tenant", m.TenantID, "migration", m.ID, "done", m.Done, "total", m.Total, "replica", s.cfg.Owner)
		s.start(m, claimed)
	}
	if err := errors.Join(errs...); err != nil {
		return &fault.StoreError{Op: "claiming a migration", Err: err}
	}
	return nil
}

func (s *Service) isRunning(tenantID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running[tenantID]
}

// Latest returns the tenant's running or last migration.
// Errors: fault.ErrNotFound.
func (s *Service) Latest(ctx context.Context, tenantID string) (Migration, error) {
	m, err := s.cfg.Store.LatestMigration(ctx, tenantID)
	if err != nil && !errors.Is(err, fault.ErrNotFound) {
		return Migration{}, &fault.StoreError{Op: "reading migration", Err: err}
	}
	return m, err
}

// ProviderSwitchTimes returns when the provider ref last became the
// tenant's current one and when it last stopped being so (the zero time:
// never), as the completions of the tenant's migrations say. The default
// provider has no record of its own to stamp, so this is where its times
// come from.
func (s *Service) ProviderSwitchTimes(ctx context.Context, tenantID string, ref kms.Ref) (promoted, demoted time.Time, err error) {
	promoted, demoted, err = s.cfg.Store.ProviderSwitchTimes(ctx, tenantID, ref)
	if err != nil {
		return time.Time{}, time.Time{}, &fault.StoreError{Op: "reading provider switches", Err: err}
	}
	return promoted, demoted, nil
}

// Migrate starts moving the tenant's keys to the provider with this
// fingerprint.
func (s *Service) Migrate(ctx context.Context, tenantID, fingerprint string) (Migration, error) {
	target, err := s.cfg.KeyProviders.Get(ctx, tenantID, fingerprint)
	if err != nil {
		return Migration{}, err
	}
	ref, err := kms.CMKRef(fingerprint)
	if err != nil {
		return Migration{}, keyprovider.ErrNotFound
	}
	return s.begin(ctx, tenantID, ref, target.ARN)
}

// Reset starts moving the tenant's keys back to the internal KMS; started
// is false when the tenant is on it already.
func (s *Service) Reset(ctx context.Context, tenantID string) (Migration, bool, error) {
	t, err := s.cfg.Keyring.Tenant(ctx, tenantID)
	if err != nil {
		return Migration{}, false, err
	}
	if t.HIPAA {
		return Migration{}, false, &NotStartedError{Reason: "a hipaa tenant must stay on a customer managed key; clear the hipaa flag first (platform admin)"}
	}
	if t.Provider.IsInternal() {
		if _, err := s.runningMigration(ctx, tenantID); err != nil {
			return Migration{}, false, err
		}
		return Migration{}, false, nil
	}
	m, err := s.begin(ctx, tenantID, kms.InternalRef(), api.DefaultProviderARN)
	return m, err == nil, err
}

// runningMigration fails with ErrRunning if the tenant has a migration that
// is not completed.
func (s *Service) runningMigration(ctx context.Context, tenantID string) (Migration, error) {
	m, err := s.Latest(ctx, tenantID)
	if errors.Is(err, fault.ErrNotFound) {
		return Migration{}, nil
	}
	if err != nil {
		return Migration{}, err
	}
	if m.State != StateCompleted {
		return m, ErrRunning
	}
	return m, nil
}

func (s *Service) arnOf(ctx context.Context, tenantID string, ref kms.Ref) string {
	if _, cmk := ref.Fingerprint(); !cmk {
		return api.DefaultProviderARN
	}
	return s.cfg.KeyProviders.KeyARN(ctx, tenantID, ref)
}

// begin checks that a migration can start, records it, switches the
// tenant's provider for new keys, and starts the worker.
func (s *Service) begin(ctx context.Context, tenantID string, to kms.Ref, toARN string) (Migration, error) {
	t, err := s.cfg.Keyring.Tenant(ctx, tenantID)
	if err != nil {
		return Migration{}, err
	}
	if _, err := s.runningMigration(ctx, tenantID); err != nil {
		return Migration{}, err
	}
	if t.Provider == to {
		return Migration{}, &NotStartedError{Reason: "this key provider is the tenant's current one already"}
	}
	if !to.IsInternal() && t.Edition != keyring.EditionEnterprise {
		return Migration{}, &NotStartedError{Reason: fmt.Sprintf("the %s edition cannot use a customer managed key", t.Edition)}
	}
	if t.HIPAA && to.IsInternal() {
		return Migration{}, &NotStartedError{Reason: "a hipaa tenant must stay on a customer managed key"}
	}
	// The target must work now, and the source must still answer: the
	// migration needs both.
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := s.describe(dctx, tenantID, to); err != nil {
		return Migration{}, &NotStartedError{Reason: "the target key fails its test: " + err.Error()}
	}
	if err := s.describe(dctx, tenantID, t.Provider); err != nil {
		return Migration{}, &PrepareError{Err: fmt.Errorf("the current key provider does not answer: %w", err)}
	}
	counts, err := s.cfg.Keyring.CipherKeyCounts(ctx, tenantID)
	if err != nil {
		return Migration{}, err
	}
	var total int64
	for ref, n := range counts {
		if ref != to {
			total += int64(n)
		}
	}
	var id [12]byte
	_, _ = rand.Read(id[:])
	now := s.now()
	m := Migration{
		ID: hex.EncodeToString(id[:]), TenantID: tenantID, From: t.Provider, To: to,
		FromARN: s.arnOf(ctx, tenantID, t.Provider), ToARN: toARN,
		State: StateNew, Total: total, InitiatedAt: now, UpdatedAt: now,
	}
	if err := s.cfg.Store.InsertMigration(ctx, m); err != nil {
		if errors.Is(err, ErrRunning) {
			return Migration{}, ErrRunning
		}
		return Migration{}, &fault.StoreError{Op: "recording migration", Err: err}
	}
	if err := s.cfg.Keyring.SwitchProvider(ctx, tenantID, t.Provider, to); err != nil {
		// Another change of the tenant came first: record the migration as
		// failed to start rather than leave it half begun.
		m.State, m.CompletedAt, m.LastError = StateCompleted, s.now(), "not started: "+err.Error()
		_ = s.cfg.Store.UpdateMigration(context.WithoutCancel(ctx), m)
		return Migration{}, &PrepareError{Err: err}
	}
	s.cfg.Logger.InfoContext(ctx, "migration started", "tenant", tenantID, "migration", m.ID, "from", m.From, "to", m.To, "cipherkeys", total)
	// This replica works on it, unless another claimed it first (then it
	// does): either way it runs.
	at := time.Now()
	if claimed, err := s.cfg.Store.ClaimMigration(ctx, m.ID, s.cfg.Owner, s.cfg.LeaseTTL); err == nil {
		s.start(claimed, at)
	} else if !errors.Is(err, ErrLeased) {
		s.cfg.Logger.WarnContext(ctx, "claiming the new migration failed; a replica takes it over once its lease is free", "tenant", tenantID, "migration", m.ID, "error", err.Error())
	}
	return m, nil
}

func (s *Service) describe(ctx context.Context, tenantID string, ref kms.Ref) error {
	p, err := s.cfg.Providers.Provider(ctx, tenantID, ref)
	if err != nil {
		return err
	}
	info, err := p.Describe(ctx)
	if err != nil {
		return err
	}
	if info.State != kms.KeyEnabled {
		return fmt.Errorf("the key is %s", info.State)
	}
	return nil
}

// start runs the worker of a migration this replica has claimed (the claim
// began at claimed), unless this process runs one for the tenant already.
// The worker keeps the lease (keepLease) and stops when it loses it;
// stopped by Close, it gives the lease up.
func (s *Service) start(m Migration, claimed time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[m.TenantID] || s.ctx.Err() != nil {
		return
	}
	s.running[m.TenantID] = true
	s.wg.Add(1)
	s.cfg.Hooks.running(1)
	go func() {
		defer s.wg.Done()
		defer s.cfg.Hooks.running(-1)
		defer func() {
			s.mu.Lock()
			delete(s.running, m.TenantID)
			s.mu.Unlock()
		}()
		ctx, cancel := context.WithCancel(s.ctx)
		kept := make(chan struct{})
		go func() {
			defer close(kept)
			s.keepLease(ctx, cancel, m, claimed)
		}()
		s.run(ctx, m)
		cancel()
		<-kept
		if s.ctx.Err() != nil {
			// Stopped by Close: let another replica go on at once. A lease
			// lost meanwhile is not this replica's to release, and the
			// store leaves it alone.
			rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := s.cfg.Store.ReleaseMigrationLease(rctx, m.ID, s.cfg.Owner); err != nil {
				s.cfg.Logger.Warn("giving up a migration's lease failed; it lapses by itself", "tenant", m.TenantID, "migration", m.ID, "error", err.Error())
			}
			rcancel()
		}
	}()
}

// keepLease renews the migration's lease every LeaseTTL/3 until ctx ends.
// It ends the worker (stop) when another replica took the lease over, and
// also when it could not renew for so long that the lease may have lapsed
// (the database is unreachable): the worker stops before another replica
// can take over, so that two never work on one migration at once.
func (s *Service) keepLease(ctx context.Context, stop context.CancelFunc, m Migration, claimed time.Time) {
	ttl := s.cfg.LeaseTTL
	// The lease lapses ttl after the database's clock read it at the last
	// claim or renewal, which is after that call began here: stopping a
	// sixth of ttl before ttl after the call began is stopping in time.
	deadline := claimed.Add(ttl - ttl/6)
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		began := time.Now()
		rctx, cancel := context.WithDeadline(ctx, deadline)
		err := s.cfg.Store.RenewMigrationLease(rctx, m.ID, s.cfg.Owner, ttl)
		cancel()
		switch {
		case err == nil:
			deadline = began.Add(ttl - ttl/6)
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrLeased), errors.Is(err, fault.ErrNotFound):
			s.cfg.Logger.Warn("migration: another replica took the lease over; stopping here", "tenant", m.TenantID, "migration", m.ID)
			stop()
			return
		case !time.Now().Before(deadline):
			s.cfg.Logger.Warn("migration: the lease could not be renewed before it may lapse; stopping here, another replica (or this one) resumes it",
				"tenant", m.TenantID, "migration", m.ID, "error", err.Error())
			stop()
			return
		default:
			s.cfg.Logger.Warn("migration: renewing the lease failed; retrying", "tenant", m.TenantID, "migration", m.ID, "error", err.Error())
		}
	}
}

// run rewraps batch after batch until no cipherkey is left wrapped by
// another provider than the target, retrying failed batches with backoff.
func (s *Service) run(ctx context.Context, m Migration) {
	log := s.cfg.Logger.With("tenant", m.TenantID, "migration", m.ID)
	if m.State == StateNew {
		m.State = StateInProgress
		m.UpdatedAt = s.now()
		if err := s.record(ctx, m); errors.Is(err, ErrLeased) {
			return
		} else if err != nil {
			log.Error("migration: recording progress failed", "error", err.Error())
		}
	}
	limiter := newPacer(s.cfg.Rate, s.sleep)
	// The first wait after a failure is a second, or RetryMax if that is
	// less: RetryMax bounds every wait.
	firstBackoff := min(time.Second, s.cfg.RetryMax)
	backoff := firstBackoff
	var cursor envelope.KeyID // resume point within one pass over the keys
	for ctx.Err() == nil {
		err := s.ensureSwitched(ctx, m)
		var n int
		var last envelope.KeyID
		if err == nil {
			n, last, err = s.batch(ctx, &m, limiter, cursor)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.cfg.Hooks.batchFailed()
			m.LastError = err.Error()
			m.UpdatedAt = s.now()
			if err := s.record(ctx, m); errors.Is(err, ErrLeased) {
				return
			}
			log.Warn("migration batch failed; retrying", "error", err.Error(), "retry_in", backoff.String())
			if s.sleep(ctx, backoff) != nil {
				return
			}
			backoff = min(2*backoff, s.cfg.RetryMax)
			continue
		}
		backoff = firstBackoff
		m.LastError = ""
		m.UpdatedAt = s.now()
		if n > 0 {
			cursor = last
			if err := s.record(ctx, m); errors.Is(err, ErrLeased) {
				return
			} else if err != nil {
				log.Warn("migration: recording progress failed", "error", err.Error())
			}
			continue
		}
		if cursor != (envelope.KeyID{}) {
			// End of a pass: go over the keys once more from the start, for
			// any that a failed or lost compare-and-swap left behind.
			cursor = envelope.KeyID{}
			continue
		}
		if err := s.complete(ctx, &m); err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrLeased) {
				return
			}
			log.Warn("migration: completing failed; retrying", "error", err.Error())
			if s.sleep(ctx, backoff) != nil {
				return
			}
			continue
		}
		log.Info("migration completed", "cipherkeys", m.Done)
		return
	}
}

// batch rewraps up to BatchSize cipherkeys and returns how many it looked
// at. The KMS calls run Concurrency at a time (each key needs an unwrap at
// its provider and a wrap at the target, two network round trips with a
// customer managed key); the new wrappings are stored in one transaction.
// It reads the keys after cursor, so that a pass over a large tenant does
// not read the keys it has done again, and returns the last key's id.
func (s *Service) batch(ctx context.Context, m *Migration, pace *pacer, cursor envelope.KeyID) (int, envelope.KeyID, error) {
	keys, err := s.cfg.Store.CipherKeysNotWrappedBy(ctx, m.TenantID, m.To, cursor, s.cfg.BatchSize)
	if err != nil {
		return 0, cursor, fmt.Errorf("reading cipherkeys: %w", err)
	}
	if len(keys) == 0 {
		return 0, cursor, nil
	}
	last := keys[len(keys)-1].ID
	target, err := s.cfg.Providers.Provider(ctx, m.TenantID, m.To)
	if err != nil {
		return 0, cursor, fmt.Errorf("target provider: %w", err)
	}
	rewraps := make([]Rewrap, len(keys))
	errs := make([]error, len(keys))
	sem := make(chan struct{}, s.cfg.Concurrency)
	var wg sync.WaitGroup
	for i, ck := range keys {
		if err := pace.wait(ctx); err != nil {
			wg.Wait()
			return 0, cursor, err
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			rewraps[i], errs[i] = s.rewrap(ctx, ck, m.To, target)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		// Keep what worked: the failed keys come back in the next batch.
		ok := rewraps[:0]
		for i, r := range rewraps {
			if errs[i] == nil {
				ok = append(ok, r)
			}
		}
		if n, serr := s.cfg.Store.RewrapCipherKeys(ctx, ok); serr == nil {
			s.applied(m, n)
		}
		return 0, cursor, err
	}
	n, err := s.cfg.Store.RewrapCipherKeys(ctx, rewraps)
	if err != nil {
		return 0, cursor, fmt.Errorf("storing rewrapped cipherkeys: %w", err)
	}
	// Keys skipped by the store were rewrapped by another worker, or
	// deleted with their tenant: the next pass sees them as they are now.
	s.applied(m, n)
	return len(keys), last, nil
}

// ensureSwitched makes sure the tenant's provider is the migration's
// target. Recording the migration and switching the provider are two
// writes; a crash between them leaves a migration whose tenant is still on
// the source, which this finishes (and refuses to go on if the tenant was
// moved elsewhere meanwhile).
func (s *Service) ensureSwitched(ctx context.Context, m Migration) error {
	t, err := s.cfg.Keyring.Tenant(ctx, m.TenantID)
	if err != nil {
		return err
	}
	switch t.Provider {
	case m.To:
		return nil
	case m.From:
		s.cfg.Logger.WarnContext(ctx, "migration: the tenant's provider was not switched before a stop; switching it now", "tenant", m.TenantID, "migration", m.ID)
		return s.cfg.Keyring.SwitchProvider(ctx, m.TenantID, m.From, m.To)
	}
	return fmt.Errorf("the tenant's provider is %s, neither the migration's source nor its target", t.Provider)
}

func (s *Service) applied(m *Migration, n int) {
	s.cfg.Hooks.rewrapped(n)
	m.Done += int64(n)
	m.Total = max(m.Total, m.Done)
}

// rewrap unwraps one cipherkey with the provider that wraps it now and
// wraps it with the target, bound as before.
func (s *Service) rewrap(ctx context.Context, ck keyring.CipherKey, to kms.Ref, target kms.Provider) (Rewrap, error) {
	source, err := s.cfg.Providers.Provider(ctx, ck.TenantID, ck.Provider)
	if err != nil {
		return Rewrap{}, fmt.Errorf("provider of cipherkey %s: %w", ck.ID, err)
	}
	b := keyring.Binding(ck)
	key, err := source.Unwrap(ctx, kms.Wrapped{KeyVersion: ck.KeyVersion, Blob: ck.Wrapped}, b)
	if err != nil {
		return Rewrap{}, fmt.Errorf("unwrapping cipherkey %s: %w", ck.ID, err)
	}
	w, err := target.Wrap(ctx, key, b)
	key.Destroy()
	if err != nil {
		return Rewrap{}, fmt.Errorf("wrapping cipherkey %s: %w", ck.ID, err)
	}
	return Rewrap{Old: ck, Provider: to, KeyVersion: w.KeyVersion, Wrapped: w.Blob}, nil
}

// complete marks the migration done once nothing is left to rewrap, and
// stamps the providers' promotion and demotion.
func (s *Service) complete(ctx context.Context, m *Migration) error {
	if err := s.ensureSwitched(ctx, *m); err != nil {
		return err
	}
	// Count rather than list: the count has no cursor that could skip a key.
	counts, err := s.cfg.Keyring.CipherKeyCounts(ctx, m.TenantID)
	if err != nil {
		return err
	}
	for ref, n := range counts {
		if ref != m.To && n > 0 {
			return fmt.Errorf("%d cipherkeys remain wrapped by %s", n, ref)
		}
	}
	now := s.now()
	for ref, promoted := range map[kms.Ref]bool{m.To: true, m.From: false} {
		if err := s.cfg.KeyProviders.Stamp(ctx, m.TenantID, ref, promoted, now); err != nil {
			return err
		}
	}
	m.State, m.CompletedAt, m.UpdatedAt, m.LastError = StateCompleted, now, now, ""
	return s.record(ctx, *m)
}

// record stores the worker's progress, provided this replica still holds
// the migration's lease. Errors: ErrLeased (another replica took it over:
// the worker stops), store errors.
func (s *Service) record(ctx context.Context, m Migration) error {
	err := s.cfg.Store.UpdateLeasedMigration(ctx, m, s.cfg.Owner)
	if errors.Is(err, ErrLeased) {
		s.cfg.Logger.WarnContext(ctx, "migration: another replica took the lease over; stopping here", "tenant", m.TenantID, "migration", m.ID)
	}
	return err
}

// pacer spaces calls to at most rate per second (no limit for rate 0).
type pacer struct {
	interval time.Duration
	next     time.Time
	// now and sleep are time.Now and Service.sleep; seams for unit tests.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

func newPacer(rate float64, sleep func(ctx context.Context, d time.Duration) error) *pacer {
	p := &pacer{now: time.Now, sleep: sleep}
	if rate > 0 {
		p.interval = time.Duration(float64(time.Second) / rate)
	}
	return p
}

func (p *pacer) wait(ctx context.Context) error {
	if p.interval == 0 {
		return ctx.Err()
	}
	now := p.now()
	if p.next.Before(now) {
		p.next = now
	}
	d := p.next.Sub(now)
	p.next = p.next.Add(p.interval)
	if d <= 0 {
		return ctx.Err()
	}
	return p.sleep(ctx, d)
}
