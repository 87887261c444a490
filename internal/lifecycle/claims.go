package lifecycle

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
)

// The periodic checks, shared between replicas.
//
// Each replica polls the store every Poll (at most; at least every Poll/2)
// for checks that are due and
// claims as many as it has free slots (Concurrency): a claim leases the
// check to the replica for Lease and makes the tenant's next check due
// between Interval−2×Poll and Interval−Poll later (at random, so that the
// checks of tenants claimed together drift apart and spread over the
// replicas and over time), so that, polled every Poll, a tenant's checks
// start at most Interval apart, whichever replicas make them. A replica that
// finishes a check ends its claim (FinishKeyCheck); one that dies
// mid-check leaves a claim that lapses after Lease, and the next poll of
// any replica takes the check over. Nothing is divided up in advance, so
// replicas joining or leaving need no rebalancing: whoever has a free slot
// when a check is due makes it.

// Poll is how often the monitor looks for due checks (Config.Poll).
func (m *Monitor) Poll() time.Duration { return m.cfg.Poll }

// Lease is how long a claimed check belongs to the replica that claimed
// it: the check's timeout and a poll. A check that outlives it (a slow
// database) may be made a second time by another replica, which is
// harmless.
func (m *Monitor) Lease() time.Duration { return m.cfg.Timeout + m.Poll() }

// claimLoop claims due checks whenever it has free slots, and makes them.
func (m *Monitor) claimLoop(ctx context.Context) {
	defer m.wg.Done()
	poll := m.Poll()
	every := max(m.cfg.Interval-poll, poll)
	slots := make(chan struct{}, m.cfg.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	var lastWarned time.Time
	for {
		// One free slot, at least, and as many more as are free now.
		select {
		case <-ctx.Done():
			return
		case slots <- struct{}{}:
		}
		n := 1
	more:
		for n < cap(slots) {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break more
			}
		}
		ds, err := m.cfg.Store.ClaimKeyChecks(ctx, m.cfg.Owner, every, m.cfg.IdleInterval, poll, m.Lease(), n)
		for range n - len(ds) {
			<-slots
		}
		if err != nil && ctx.Err() == nil {
			if now := m.cfg.Now(); now.Sub(lastWarned) >= m.cfg.Interval {
				lastWarned = now
				m.cfg.Logger.ErrorContext(ctx, "claiming due key checks failed; retrying", "error", err.Error())
			}
		}
		var late time.Duration
		for _, d := range ds {
			late = max(late, d.Late)
			wg.Go(func() {
				defer func() { <-slots }()
				m.claimed(ctx, d.Tenant)
			})
		}
		if len(ds) > 0 {
			if m.cfg.Claimed != nil {
				m.cfg.Claimed(len(ds), late)
			}
			if now := m.cfg.Now(); late > poll && now.Sub(lastWarned) >= m.cfg.Interval {
				lastWarned = now
				m.cfg.Logger.WarnContext(ctx, "key checks start later than the check interval promises: revocations are noticed later than the bound; raise --key-check-concurrency, add replicas, or lengthen the interval",
					"late", late.Round(time.Millisecond).String(), "interval", m.cfg.Interval.String())
			}
		}
		if len(ds) == n {
			continue // there may be more due: claim again as slots free up
		}
		// Between half a poll and a poll, so that replicas do not poll in
		// step and the same one does not keep winning the same tenants.
		select {
		case <-ctx.Done():
			return
		case <-time.After(poll/2 + rand.N(poll/2+1)):
		}
	}
}

// claimed makes a claimed check and ends the claim. A check cut short by
// Close keeps its claim, which lapses after Lease: another replica then
// makes it, instead of it waiting for the next interval.
func (m *Monitor) claimed(ctx context.Context, t keyring.Tenant) {
	if _, err := m.check(ctx, t); err != nil && ctx.Err() == nil && !errors.Is(err, keyring.ErrTenantNotFound) {
		m.cfg.Logger.WarnContext(ctx, "key check failed", "tenant", t.ID, "error", err.Error())
	}
	if ctx.Err() != nil {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := m.cfg.Store.FinishKeyCheck(fctx, t.ID, m.cfg.Owner); err != nil {
		m.cfg.Logger.WarnContext(ctx, "ending a key check's claim failed; it lapses by itself", "tenant", t.ID, "error", err.Error())
	}
}
