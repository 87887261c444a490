package sqlite

import (
	"database/sql"
	"fmt"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/store/internal/rowcodec"
)

// Rows are the tables as SQLite stores them: enums as their String form,
// times as unix microseconds (NULL for an optional time that is zero), key
// ids as 16-byte BLOBs, lists as JSON text. The row code that both stores
// share is rowcodec's, with this store's times (microsTimes).

// codec reads and writes the rows that both stores share.
var codec = rowcodec.Codec{Store: "sqlite", Times: microsTimes{}}

// The shared column lists, by the names this package's statements use.
const (
	tenantColumns     = rowcodec.TenantColumns
	cipherKeyColumns  = rowcodec.CipherKeyColumns
	kekColumns        = rowcodec.KEKColumns
	migrationColumns  = rowcodec.MigrationColumns
	keyCheckColumns   = rowcodec.KeyCheckColumns
	auditEventColumns = rowcodec.AuditEventColumns
	checkpointColumns = rowcodec.CheckpointColumns
	rootRecordColumns = rowcodec.RootRecordColumns
)

const keyProviderColumns = rowcodec.KeyProviderColumns

// nullMicros stores the zero time ("never") as NULL.
func nullMicros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: micros(t), Valid: true}
}

// fromNullMicros reads NULL back as the zero time.
func fromNullMicros(us sql.NullInt64) time.Time {
	if !us.Valid {
		return time.Time{}
	}
	return fromMicros(us.Int64)
}

// microsTimes keeps times as INTEGER unix microseconds (see micros).
type microsTimes struct{}

func (microsTimes) Arg(t time.Time) any       { return micros(t) }
func (microsTimes) NullArg(t time.Time) any   { return nullMicros(t) }
func (microsTimes) Dest(t *time.Time) any     { return (*microsDest)(t) }
func (microsTimes) NullDest(t *time.Time) any { return (*nullMicrosDest)(t) }

// microsDest reads a NOT NULL time column.
type microsDest time.Time

func (d *microsDest) Scan(src any) error {
	us, ok := src.(int64)
	if !ok {
		return fmt.Errorf("time column holds %T, not an INTEGER", src)
	}
	*d = microsDest(fromMicros(us))
	return nil
}

// nullMicrosDest reads an optional time column, NULL as the zero time.
type nullMicrosDest time.Time

func (d *nullMicrosDest) Scan(src any) error {
	if src == nil {
		*d = nullMicrosDest{}
		return nil
	}
	return (*microsDest)(d).Scan(src)
}
