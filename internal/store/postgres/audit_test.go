package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantcrypt/tenantcrypt/internal/audit"
	"github.com/tenantcrypt/tenantcrypt/internal/store/postgres/pgtest"
)

// TestAuditAppendOnly: plain SQL cannot change, delete or truncate audit
// events; the prune settings allow deletes only within their chain and seq
// and only in the transaction that sets them. The triggers stop accidents,
// not a database administrator, who can disable them.
func TestAuditAppendOnly(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	s := pgtest.OpenDSN(t, dsn)
	var events []audit.Event
	for _, chain := range []string{"acme", "acme", "acme", "other"} {
		events = append(events, audit.Event{ChainID: chain, Time: time.Now(), Action: "x.y"})
	}
	stored, err := s.AppendEvents(ctx, events, audit.Seal)
	if err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	// A session that pruned before: its settings reverted to '' at commit.
	if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT set_config('tenantcrypt.audit_prune_chain', 'acme', true),
			set_config('tenantcrypt.audit_prune_seq', '3', true)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}

	setPrune := func(chain, seq string) string {
		return `SELECT set_config('tenantcrypt.audit_prune_chain', '` + chain + `', true),
			set_config('tenantcrypt.audit_prune_seq', '` + seq + `', true)`
	}
	tests := []struct {
		name  string
		guard string // a statement run first, in the same transaction
		sql   string
	}{
		{"update", "", `UPDATE audit_events SET action = 'forged' WHERE chain_id = 'acme' AND seq = 2`},
		{"upsert", "", `INSERT INTO audit_events SELECT * FROM audit_events WHERE seq = 1
			ON CONFLICT (chain_id, seq) DO UPDATE SET action = 'forged'`},
		{"delete", "", `DELETE FROM audit_events WHERE chain_id = 'acme' AND seq = 1`},
		{"delete-all", "", `DELETE FROM audit_events`},
		{"truncate", "", `TRUNCATE audit_events`},
		{"prune-other-chain", setPrune("other", "9"), `DELETE FROM audit_events WHERE chain_id = 'acme' AND seq = 1`},
		{"prune-beyond-seq", setPrune("acme", "1"), `DELETE FROM audit_events WHERE chain_id = 'acme' AND seq <= 2`},
		{"prune-update", setPrune("acme", "3"), `UPDATE audit_events SET action = 'forged' WHERE chain_id = 'acme'`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(context.Background())
			if tc.guard != "" {
				if _, err := tx.Exec(ctx, tc.guard); err != nil {
					t.Fatal(err)
				}
			}
			_, err = tx.Exec(ctx, tc.sql)
			if err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("%s: got error %v, want the append-only trigger's", tc.sql, err)
			}
		})
	}

	for chain, want := range map[string]int{"acme": 3, "other": 1} {
		got, err := s.Events(ctx, chain, audit.Filter{}, 10)
		if err != nil {
			t.Fatalf("Events(%q): %v", chain, err)
		}
		if len(got) != want {
			t.Errorf("Events(%q) after the refused statements: got %d, want %d", chain, len(got), want)
		}
		for _, g := range got {
			if g.Action != "x.y" {
				t.Errorf("event %d of %q after the refused statements: got action %q", g.Seq, chain, g.Action)
			}
		}
	}

	// Prune deletes through its settings, which end with its transaction.
	c := audit.Checkpoint{ChainID: "acme", Seq: 2, Hash: stored[1].Hash, Time: time.Now(), KeyID: "k", Signature: []byte("sig")}
	if err := s.PutCheckpoint(ctx, c); err != nil {
		t.Fatalf("PutCheckpoint: %v", err)
	}
	if n, err := s.Prune(ctx, c); err != nil || n != 2 {
		t.Fatalf("Prune: got %d, %v; want 2, nil", n, err)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM audit_events WHERE chain_id = 'acme'`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("DELETE after Prune: got error %v, want the append-only trigger's", err)
	}
}
