package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TenantsChannel is the channel on which every committed change of a tenant
// row, and every deletion, is announced (by the trigger of migration 0006).
// Its payload is {"schema": "...", "tenant": "..."}.
const TenantsChannel = "tenantcrypt_tenants"

// ChangeSink is told what Follow learns (a *keyring.Service).
type ChangeSink interface {
	// TenantChanged: a change of the tenant's row, or its deletion, was
	// committed, by this replica or another. It must not block.
	TenantChanged(tenantID string)
	// ChangesSeen: every change committed from since until through has
	// been passed to TenantChanged. since is when the current connection
	// began to listen; through advances with each proof that the
	// connection is alive.
	ChangesSeen(since, through time.Time)
	// ChangesUnseen: the connection is down; changes may go unannounced
	// until ChangesSeen is called again.
	ChangesUnseen()
}

// FollowConfig configures Follow. The zero value is usable.
type FollowConfig struct {
	// PingInterval is how often the connection proves that it is alive,
	// which advances ChangesSeen's through when no notification comes.
	// Default 1 s.
	PingInterval time.Duration
	// MaxBackoff bounds the wait between reconnection attempts, which
	// starts at 100 ms and doubles. Default 5 s.
	MaxBackoff time.Duration
	// Listening, if set, is told when the connection starts and stops
	// listening (for a metric); Notified of every notification for this
	// schema.
	Listening func(bool)
	Notified  func()
	Logger    *slog.Logger
}

// Follow listens on its own connection (not one of the pool's) for the
// changes of tenants that any replica commits in this store's schema, and
// tells sink of them, until ctx ends. When the connection fails it tells
// sink ChangesUnseen and connects again, with backoff; whatever was
// committed meanwhile is not announced, which is why sink must fall back to
// reading tenants again by itself while it has not seen ChangesSeen for a
// while. Run it in a goroutine.
func (s *Store) Follow(ctx context.Context, sink ChangeSink, cfg FollowConfig) {
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	const minBackoff = 100 * time.Millisecond
	backoff := minBackoff
	for ctx.Err() == nil {
		started := time.Now()
		err := s.follow(ctx, sink, cfg)
		sink.ChangesUnseen()
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > cfg.MaxBackoff {
			backoff = minBackoff // it was up for a while: a new outage
		}
		// Jitter, so that replicas do not reconnect in step after a restart
		// of the database.
		wait := backoff/2 + rand.N(backoff/2+1)
		cfg.Logger.Warn("tenant change notifications are down; other replicas' changes are seen by polling until they are back",
			"error", err.Error(), "retry_in", wait.Round(time.Millisecond).String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, cfg.MaxBackoff)
	}
}

// follow connects, listens and hands notifications to sink until the
// connection fails (its error) or ctx ends.
func (s *Store) follow(ctx context.Context, sink ChangeSink, cfg FollowConfig) error {
	var schema string // set before LISTEN, read by the handler after it
	cc := s.pool.Config().ConnConfig.Copy()
	// Called while the connection reads, within WaitForNotification and
	// Ping: a notification has been handled once either returns.
	cc.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) {
		if n.Channel != TenantsChannel {
			return
		}
		var p struct{ Schema, Tenant string }
		if err := json.Unmarshal([]byte(n.Payload), &p); err != nil || p.Tenant == "" {
			cfg.Logger.Warn("ignoring a malformed tenant change notification", "payload_bytes", len(n.Payload))
			return
		}
		if p.Schema != schema {
			return // another tenantcrypt's schema in the same database
		}
		if cfg.Notified != nil {
			cfg.Notified()
		}
		sink.TenantChanged(p.Tenant)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(cctx, cc)
	cancel()
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	var current *string
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := conn.QueryRow(qctx, `SELECT current_schema()`).Scan(&current); err != nil {
		return fmt.Errorf("reading the schema: %w", err)
	}
	if current == nil {
		return errors.New("the connection has no current schema (search_path names none that exists)")
	}
	schema = *current
	// Named for operators (pg_stat_activity): which replica's listener, on
	// which schema (PostgreSQL truncates the name to 63 bytes).
	if _, err := conn.Exec(qctx, `SELECT set_config('application_name', $1, false)`, "tenantcrypt notifications "+schema); err != nil {
		return fmt.Errorf("naming the connection: %w", err)
	}
	if _, err := conn.Exec(qctx, `LISTEN `+pgx.Identifier{TenantsChannel}.Sanitize()); err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	since := time.Now()
	sink.ChangesSeen(since, since)
	if cfg.Listening != nil {
		cfg.Listening(true)
		defer cfg.Listening(false)
	}
	cfg.Logger.Info("following tenant changes of the other replicas", "channel", TenantsChannel, "schema", schema)

	next := since.Add(cfg.PingInterval)
	for {
		wctx, cancel := context.WithDeadline(ctx, next)
		err := conn.PgConn().WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err == nil:
			continue // handled by OnNotification
		case !pgconn.Timeout(err) && !errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("waiting for notifications: %w", err)
		}
		// A notification committed before the ping began has been sent to
		// this connection, ahead of the ping's answer, once the ping
		// returns (PostgreSQL delivers it to an idle listener at once, and
		// at the latest before it reports ready for the next query).
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, cfg.PingInterval)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return fmt.Errorf("ping: %w", err)
		}
		sink.ChangesSeen(since, start)
		next = start.Add(cfg.PingInterval)
	}
}
