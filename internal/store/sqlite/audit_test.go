package sqlite_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/audit"
)

// TestAuditAppendOnly: plain SQL cannot change, replace or delete an audit
// event, and a guard row allows deletes only within its chain and seq; the
// triggers stop accidents, not someone who drops them.
func TestAuditAppendOnly(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "tenantcrypt.db")
	s := openAt(t, path)
	var events []audit.Event
	for _, chain := range []string{"acme", "acme", "acme", "other"} {
		events = append(events, audit.Event{ChainID: chain, Time: time.Now(), Action: "x.y", Details: map[string]string{"k": "v"}})
	}
	stored, err := s.AppendEvents(ctx, events, audit.Seal)
	if err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	db := rawDB(t, path)
	defer db.Close()

	tests := []struct {
		name  string
		guard string // a statement run first, in the same transaction
		sql   string
	}{
		{"update", "", `UPDATE audit_events SET action = 'forged' WHERE chain_id = 'acme' AND seq = 2`},
		{"update-all", "", `UPDATE audit_events SET details = '{}'`},
		{"upsert", "", `INSERT INTO audit_events SELECT * FROM audit_events WHERE seq = 1
			ON CONFLICT (chain_id, seq) DO UPDATE SET action = 'forged'`},
		{"replace", "", `INSERT OR REPLACE INTO audit_events SELECT * FROM audit_events WHERE chain_id = 'acme' AND seq = 1`},
		{"delete", "", `DELETE FROM audit_events WHERE chain_id = 'acme' AND seq = 1`},
		{"delete-all", "", `DELETE FROM audit_events`},
		{"guard-other-chain", `INSERT INTO audit_prune_guard (id, chain_id, seq) VALUES (1, 'other', 9)`,
			`DELETE FROM audit_events WHERE chain_id = 'acme' AND seq = 1`},
		{"guard-beyond-seq", `INSERT INTO audit_prune_guard (id, chain_id, seq) VALUES (1, 'acme', 1)`,
			`DELETE FROM audit_events WHERE chain_id = 'acme' AND seq <= 2`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			if tc.guard != "" {
				if _, err := tx.ExecContext(ctx, tc.guard); err != nil {
					t.Fatal(err)
				}
			}
			_, err = tx.ExecContext(ctx, tc.sql)
			if err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("%s: got error %v, want the append-only trigger's", tc.sql, err)
			}
		})
	}

	for _, chain := range []string{"acme", "other"} {
		got, err := s.Events(ctx, chain, audit.Filter{}, 10)
		if err != nil {
			t.Fatalf("Events(%q): %v", chain, err)
		}
		for _, g := range got {
			w := stored[g.Seq-1]
			if chain == "other" {
				w = stored[3]
			}
			if g.Action != w.Action || !bytes.Equal(g.Hash, w.Hash) {
				t.Errorf("event %d of %q after the refused statements: got %+v, want %+v", g.Seq, chain, g, w)
			}
		}
		if want := map[string]int{"acme": 3, "other": 1}[chain]; len(got) != want {
			t.Errorf("Events(%q) after the refused statements: got %d, want %d", chain, len(got), want)
		}
	}

	// Prune deletes through the guard, and leaves no guard row behind.
	c := audit.Checkpoint{ChainID: "acme", Seq: 2, Hash: stored[1].Hash, Time: time.Now(), KeyID: "k", Signature: []byte("sig")}
	if err := s.PutCheckpoint(ctx, c); err != nil {
		t.Fatalf("PutCheckpoint: %v", err)
	}
	if n, err := s.Prune(ctx, c); err != nil || n != 2 {
		t.Fatalf("Prune: got %d, %v; want 2, nil", n, err)
	}
	var guards int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM audit_prune_guard`).Scan(&guards); err != nil || guards != 0 {
		t.Errorf("audit_prune_guard after Prune: got %d rows, %v; want 0", guards, err)
	}
	if _, err := db.ExecContext(ctx, `DELETE FROM audit_events WHERE chain_id = 'acme'`); err == nil {
		t.Error("DELETE after Prune: got no error, want the append-only trigger's")
	}
}
