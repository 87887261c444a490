package postgres_test

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/store/postgres"
	"github.com/tenantcrypt/tenantcrypt/internal/store/postgres/pgtest"
)

// sink records what Follow tells it.
type sink struct {
	changed chan string
	mu      sync.Mutex
	since   time.Time // of the last ChangesSeen; zero after ChangesUnseen
	seen    int
	unseen  int
}

func newSink() *sink { return &sink{changed: make(chan string, 100)} }

func (s *sink) TenantChanged(id string) { s.changed <- id }

func (s *sink) ChangesSeen(since, through time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.since = since
	s.seen++
}

func (s *sink) ChangesUnseen() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.since = time.Time{}
	s.unseen++
}

func (s *sink) state() (since time.Time, seen, unseen int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.since, s.seen, s.unseen
}

// waitFor polls cond every 10 ms, failing the test after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute", what)
		}
	}
}

// next returns the next tenant announced, failing after a minute.
func (s *sink) next(t *testing.T) string {
	t.Helper()
	select {
	case id := <-s.changed:
		return id
	case <-time.After(time.Minute):
		t.Fatal("no tenant change announced within a minute")
		return ""
	}
}

// TestFollow: a change of a tenant committed through one replica's store is
// announced to another's Follow, whatever writes it; another schema's
// changes are not; a lost connection is reported, re-established, and the
// announcements go on.
func TestFollow(t *testing.T) {
	dsn := pgtest.DSN(t)
	follower, writer := pgtest.OpenDSN(t, dsn), pgtest.OpenDSN(t, dsn)
	elsewhere := pgtest.Open(t) // another tenantcrypt's schema, same database
	ctx := t.Context()
	s := newSink()
	fctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		follower.Follow(fctx, s, postgres.FollowConfig{PingInterval: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	}()
	t.Cleanup(func() { stop(); <-done })
	waitFor(t, "listening", func() bool { since, _, _ := s.state(); return !since.IsZero() })

	acme := tenant("acme")
	if err := writer.CreateTenant(ctx, acme); err != nil {
		t.Fatal(err)
	}
	if err := elsewhere.CreateTenant(ctx, acme); err != nil {
		t.Fatal(err)
	}
	// Committed in this order: the other schema's change comes first and
	// must not be announced.
	acme.Name = "elsewhere"
	if err := elsewhere.UpdateTenant(ctx, acme); err != nil {
		t.Fatal(err)
	}
	if err := elsewhere.DeleteTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	acme.Name = "renamed"
	if err := writer.UpdateTenant(ctx, acme); err != nil {
		t.Fatal(err)
	}
	if got := s.next(t); got != "acme" {
		t.Fatalf("announced %q, want acme", got)
	}
	if err := writer.SwitchTenantProvider(ctx, "acme", kms.InternalRef(), kms.MustCMKRef("0123"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := s.next(t); got != "acme" {
		t.Fatalf("announced %q after SwitchTenantProvider, want acme", got)
	}
	if _, _, err := writer.SetTenantState(ctx, "acme", kms.MustCMKRef("0123"), keyring.StateKeyUnavailable, "key disabled", time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := s.next(t); got != "acme" {
		t.Fatalf("announced %q after SetTenantState, want acme", got)
	}
	// An operator's own UPDATE is announced too.
	exec(t, dsn, `UPDATE tenants SET name = 'by hand' WHERE id = 'acme'`)
	if got := s.next(t); got != "acme" {
		t.Fatalf("announced %q after an UPDATE by hand, want acme", got)
	}
	if err := writer.DeleteTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if got := s.next(t); got != "acme" {
		t.Fatalf("announced %q after DeleteTenant, want acme", got)
	}
	select {
	case id := <-s.changed:
		t.Fatalf("announced %q once more", id)
	default:
	}

	// Kill the listening connection, as a database restart or a network
	// failure would: Follow reports it, connects again and goes on.
	since, _, _ := s.state()
	schema := searchPath(t, dsn)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var killed bool
	if err := conn.QueryRow(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`,
		"tenantcrypt notifications "+schema).Scan(&killed); err != nil || !killed {
		t.Fatalf("killing the listening connection: %v, %v", killed, err)
	}
	waitFor(t, "reconnected", func() bool {
		now, _, unseen := s.state()
		return unseen > 0 && now.After(since)
	})
	if err := writer.CreateTenant(ctx, tenant("beta")); err != nil {
		t.Fatal(err)
	}
	beta := tenant("beta")
	beta.Name = "after the reconnection"
	if err := writer.UpdateTenant(ctx, beta); err != nil {
		t.Fatal(err)
	}
	if got := s.next(t); got != "beta" {
		t.Fatalf("announced %q after reconnecting, want beta", got)
	}
	// The pings go on, each a ChangesSeen.
	_, seen, _ := s.state()
	waitFor(t, "pings", func() bool { _, n, _ := s.state(); return n > seen+2 })
}

// searchPath returns the schema a pgtest DSN selects.
func searchPath(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("search_path")
}

// exec runs one statement on the DSN's schema.
func exec(t *testing.T, dsn, sql string) {
	t.Helper()
	query(t, dsn, sql, nil)
}
