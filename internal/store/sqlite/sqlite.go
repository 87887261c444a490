// Package sqlite is the embedded store of tenantcrypt: the keyring's tenants
// and cipherkeys, the tenants' key providers and migrations between them, the
// key monitor's checks, the internal KMS's key-encryption keys and the audit
// log in one SQLite file in the data directory. It is pure Go
// (modernc.org/sqlite, no cgo), so that `serve` works on a fresh machine with
// nothing else installed. Use it for a single replica; replicas behind a load
// balancer share one internal/store/postgres database instead.
//
// Open creates the file with mode 0600 and applies the embedded schema
// migrations. SQLite has one writer at a time, so every write goes through a
// single connection and every write transaction begins IMMEDIATE: writers
// queue instead of failing with SQLITE_BUSY, and busy_timeout covers other
// processes. Reads use a separate read-only pool and, in WAL mode, never wait
// for the writer. secure_delete is on and DeleteTenant checkpoints the WAL, so
// that the wrapped keys of a deleted tenant do not linger in the files.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
	"github.com/tenantcrypt/tenantcrypt/internal/store/internal/rowcodec"
	"github.com/tenantcrypt/tenantcrypt/internal/store/internal/schema"
)

//go:embed migrations/*.sql
var migrations embed.FS

// ErrSchemaTooNew is returned by Open for a database that a newer tenantcrypt
// has migrated beyond the schema versions this binary knows.
var ErrSchemaTooNew = schema.ErrTooNew

// busyTimeout bounds how long a statement waits for another process's lock.
const busyTimeout = 10 * time.Second

// Store is a keyring.Store, a keyprovider.Store, an internalkms.Store, a
// migration.Store, a lifecycle.Store and an audit.Store in one SQLite file.
// It is safe for concurrent use, also by several processes on the same file.
type Store struct {
	w *sql.DB // one connection: SQLite has one writer at a time
	r *sql.DB // query-only pool
}

var (
	_ keyring.Store     = (*Store)(nil)
	_ keyprovider.Store = (*Store)(nil)
	_ internalkms.Store = (*Store)(nil)
	_ migration.Store   = (*Store)(nil)
	_ lifecycle.Store   = (*Store)(nil)
)

// Open opens the database file at path, creating it with mode 0600 if it does
// not exist, and migrates its schema to the newest version. The directory must
// exist. Errors: ErrSchemaTooNew (wrapped) for a database migrated by a newer
// tenantcrypt.
func Open(ctx context.Context, path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	// SQLite would create the file with 0644 (less the umask); key material,
	// even wrapped, is for the service's user only. The -wal and -shm files
	// inherit the database file's mode.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: creating database file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlite: creating database file: %w", err)
	}

	s := &Store{}
	if s.w, err = openDB(ctx, dsn(abs, false)); err != nil {
		return nil, err
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)

	var mode string
	if err := s.w.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		s.w.Close()
		return nil, fmt.Errorf("sqlite: reading journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		// WAL fails on file systems without shared memory (network mounts);
		// refuse rather than run with readers blocking the writer.
		s.w.Close()
		return nil, fmt.Errorf("sqlite: journal mode is %q, want wal (is %s on a local file system?)", mode, abs)
	}
	if err := migrate(ctx, s.w); err != nil {
		s.w.Close()
		return nil, err
	}

	if s.r, err = openDB(ctx, dsn(abs, true)); err != nil {
		s.w.Close()
		return nil, err
	}
	n := max(4, runtime.GOMAXPROCS(0))
	s.r.SetMaxOpenConns(n)
	s.r.SetMaxIdleConns(n)
	return s, nil
}

// dsn is the modernc.org/sqlite data source name for the file at abs. Every
// connection gets the pragmas; the writer begins its transactions IMMEDIATE
// so that it takes the write lock up front (a deferred transaction that reads
// first can fail with SQLITE_BUSY when it upgrades, whatever busy_timeout
// says); readers are query-only.
func dsn(abs string, readOnly bool) string {
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // Windows: file:///C:/...
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "secure_delete(1)")
	if readOnly {
		q.Set("_query_only", "1")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		// FULL, not NORMAL: a committed key rotation must survive a power
		// loss, or ciphertexts sealed under the new key become unreadable.
		q.Add("_pragma", "synchronous(FULL)")
		q.Set("_txlock", "immediate")
	}
	return (&url.URL{Scheme: "file", Path: p, RawQuery: q.Encode()}).String()
}

func openDB(ctx context.Context, dsn string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: opening database: %w", err)
	}
	// The first connection applies the pragmas; switching a new file to WAL
	// takes an exclusive lock and answers SQLITE_BUSY at once, without the
	// busy handler, when several processes open the same new file together.
	// Retry for a while in that case only.
	deadline := time.Now().Add(busyTimeout)
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		err = db.PingContext(ctx)
		if err == nil {
			return db, nil
		}
		if !isBusy(err) || time.Now().After(deadline) {
			db.Close()
			return nil, fmt.Errorf("sqlite: opening database: %w", err)
		}
		select {
		case <-ctx.Done():
			db.Close()
			return nil, fmt.Errorf("sqlite: opening database: %w", ctx.Err())
		case <-time.After(delay):
		}
	}
}

// isBusy reports whether err is SQLITE_BUSY (or an extended code of it).
func isBusy(err error) bool {
	var coded interface{ Code() int }
	return errors.As(err, &coded) && coded.Code()&0xff == 5
}

// migrate applies the pending embedded migrations.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := schema.Load(migrations, "migrations")
	if err != nil {
		return err
	}
	return apply(ctx, db, ms)
}

// apply applies those of ms that the database lacks in one IMMEDIATE
// transaction, so that two processes starting on the same file apply each
// migration once. ms are all the migrations the binary knows, in order.
func apply(ctx context.Context, db *sql.DB, ms []schema.Migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: migrating schema: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("sqlite: migrating schema: %w", err)
	}
	// The oldest binary that may run on each version (schema's
	// "compatible-with"); NULL for versions applied before it was recorded,
	// which need a binary that knows them.
	var recorded int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('schema_migrations') WHERE name = 'compatible_with'`).Scan(&recorded); err != nil {
		return fmt.Errorf("sqlite: migrating schema: %w", err)
	}
	if recorded == 0 {
		if _, err := tx.ExecContext(ctx, `ALTER TABLE schema_migrations ADD COLUMN compatible_with INTEGER`); err != nil {
			return fmt.Errorf("sqlite: migrating schema: %w", err)
		}
	}
	var current, required int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0), COALESCE(MAX(COALESCE(compatible_with, version)), 0)
		FROM schema_migrations`).Scan(&current, &required); err != nil {
		return fmt.Errorf("sqlite: migrating schema: %w", err)
	}
	pending, err := schema.Pending(ms, current, required)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	for _, m := range pending {
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("sqlite: applying migration %s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at, compatible_with) VALUES (?, ?, ?)`,
			m.Version, micros(time.Now()), m.CompatibleWith); err != nil {
			return fmt.Errorf("sqlite: applying migration %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: migrating schema: %w", err)
	}
	return nil
}

// Close closes the database. The last connection to close checkpoints the
// WAL into the database file.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// micros and fromMicros are the time encoding: INTEGER unix microseconds.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// code is the extended SQLite result code of err, or 0.
func code(err error) int {
	var e *msqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

func isPrimaryKeyViolation(err error) bool { return code(err) == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY }

// isUniqueViolation reports a violation of a UNIQUE index other than a
// primary key: in this schema cipherkeys_one_active and
// migrations_one_running, one per table.
func isUniqueViolation(err error) bool { return code(err) == sqlite3.SQLITE_CONSTRAINT_UNIQUE }

// isTriggerAbort reports a trigger's RAISE(ABORT): in this schema only
// tenant_ids_retired, which refuses a retired tenant id.
func isTriggerAbort(err error) bool { return code(err) == sqlite3.SQLITE_CONSTRAINT_TRIGGER }

func isForeignKeyViolation(err error) bool { return code(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY }

// scanner is a *sql.Row or *sql.Rows.
type scanner = rowcodec.Scanner

// queryRows runs a query on db and reads every row it returns with scan (a
// codec method); an empty slice if there are none.
func queryRows[T any](ctx context.Context, db *sql.DB, scan func(rowcodec.Scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	vs := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return vs, nil
}
