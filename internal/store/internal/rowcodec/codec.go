// Package rowcodec is the row code that the SQLite and PostgreSQL stores
// share: the column lists of their tables, and how a domain value becomes
// the arguments of an INSERT and a scanned row becomes a domain value again.
// Both stores keep enums as their String form, key provider refs as their
// text form (kms.Ref's String, read back by kms.ParseRef; refs.go is the
// stores' only code that does either), key ids as 16 bytes, nil byte
// slices as empty ones (but a key provider's config and wrapped secret,
// which are optional, as NULL), audit details and key providers' replicas
// as JSON text; they differ only in
// how they keep times, which each store supplies as its Times. The stores
// never import each other; what they do not share (SQL dialects,
// transactions, error codes) stays in each.
//
// Converting a value to arguments rejects what would not read back (an
// unknown enum), so that a bad write fails instead of leaving a row that
// every later read trips over.
package rowcodec

import (
	"fmt"
	"time"
)

// Codec reads and writes the rows of one store.
type Codec struct {
	// Store names the store ("sqlite", "postgres"); every error the codec
	// returns starts with it, as the store's own errors do.
	Store string
	// Times is how the store keeps times.
	Times Times
}

// Times is how a store keeps a time column: the argument that writes it and
// the scan destination that reads it. Times have microsecond precision in
// both stores, and read back in UTC.
type Times interface {
	// Arg is the argument for a NOT NULL time column.
	Arg(t time.Time) any
	// NullArg is the argument for an optional time column: the zero time
	// ("never") is NULL.
	NullArg(t time.Time) any
	// Dest is the scan destination that reads a NOT NULL time column into
	// *t.
	Dest(t *time.Time) any
	// NullDest reads an optional time column into *t, NULL as the zero time.
	NullDest(t *time.Time) any
}

// Scanner is a row to scan: a *sql.Row or *sql.Rows, a pgx.Row or pgx.Rows.
type Scanner interface{ Scan(dest ...any) error }

func (c Codec) errorf(format string, args ...any) error {
	return fmt.Errorf(c.Store+": "+format, args...)
}

// NotNil stores a nil slice as an empty one: the byte columns are NOT NULL,
// and pgx sends a nil slice as NULL.
func NotNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// NilIfEmpty reads an empty byte column back as nil, so that both stores
// return the same value.
func NilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// Value reads a row of one column.
func Value[T any](sc Scanner) (T, error) {
	var v T
	err := sc.Scan(&v)
	return v, err
}
