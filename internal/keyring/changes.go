package keyring

import (
	"context"
	"time"
)

// Pushed changes.
//
// Every process keeps a copy of each tenant it serves and, by itself, trusts
// it for TenantRefresh: a change another process commits (a revoked key, a
// new provider, a deletion) is seen here within that time, at the cost of a
// read per tenant per TenantRefresh. A store that can announce committed
// changes (PostgreSQL's LISTEN/NOTIFY, see postgres.Store.Follow) does
// better: it calls TenantChanged for each change, which drops the copy at
// once, and ChangesSeen to say up to when it has surely announced every
// change. While those calls keep coming, copies are trusted beyond
// TenantRefresh and the data plane does not read the database at all; when
// they stop (ChangesUnseen, or no ChangesSeen for TenantRefresh, as when the
// announcing connection silently died), copies expire after TenantRefresh
// again. Either way a change is seen within TenantRefresh of its commit.

// feedState is what the feed has vouched for: every change committed from
// since (when it began to listen) until through has been announced.
type feedState struct {
	since, through time.Time
}

// changedQueue bounds the tenants waiting to be read again after a pushed
// change; beyond it the reads are skipped (the copies are stale all the
// same, and read again at their next use).
const changedQueue = 1024

// TenantChanged tells the Service that a change of the tenant (its state,
// provider, any field) or its deletion was committed, possibly by another
// process: the copy of it this process holds, if any, is stale from now on.
// The tenant is read again soon in the background, so that a tenant that may
// no longer use its keys has them purged from memory without waiting for a
// request. It does not block.
func (s *Service) TenantChanged(id string) {
	te := s.lookupEntry(id)
	if te == nil {
		// Not served here: a later first use reads the tenant anew.
		return
	}
	te.changes.Add(1)
	select {
	case s.changed <- id:
	default:
	}
}

// ChangesSeen tells the Service that every change committed from since
// until through has been passed to TenantChanged (since is when the feed
// began to listen: changes before it may have been missed). The feed calls
// it at least every TenantRefresh/2 while it is sure it misses nothing.
func (s *Service) ChangesSeen(since, through time.Time) {
	s.feed.Store(&feedState{since: since, through: through})
}

// ChangesUnseen tells the Service that changes may go unannounced from now
// on (the feed lost its connection): copies expire after TenantRefresh.
func (s *Service) ChangesUnseen() {
	s.feed.Store(nil)
}

// trusted reports whether a copy of a tenant may be used without reading
// the tenant again: no change of the tenant was pushed since its read
// began, and either it is younger than TenantRefresh or the feed vouches
// for every change committed since that read began, up to less than
// TenantRefresh ago.
func (s *Service) trusted(te *tenantEntry, snap *tenantSnapshot) bool {
	if snap == nil || snap.changes != te.changes.Load() {
		return false
	}
	now := s.cfg.Now()
	if now.Sub(snap.fetched) < s.cfg.TenantRefresh {
		return true
	}
	f := s.feed.Load()
	return f != nil && !snap.fetched.Before(f.since) && now.Sub(f.through) < s.cfg.TenantRefresh
}

// changedLoop reads again the tenants whose change was pushed: a tenant no
// longer active has its keys purged (refreshTenant does that), a deleted one
// is forgotten.
func (s *Service) changedLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case id := <-s.changed:
			te := s.lookupEntry(id)
			if te == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			// An error leaves the copy stale: the next use reads it again
			// (and fails closed while the database does not answer).
			_, _ = s.refreshTenant(ctx, id, te)
			cancel()
		}
	}
}
