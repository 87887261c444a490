package postgres

import (
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tenantcrypt/tenantcrypt/internal/store/internal/rowcodec"
)

// Rows are the tables as PostgreSQL stores them: enums as their String form,
// key ids as 16-byte bytea, uint32 versions as bigint, times as timestamptz
// (NULL for an optional time that is zero), lists as jsonb arrays. The row
// code that both stores share is rowcodec's, with this store's times
// (timestamptzTimes).

// codec reads and writes the rows that both stores share.
var codec = rowcodec.Codec{Store: "postgres", Times: timestamptzTimes{}}

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

// scanner is a pgx.Row or pgx.Rows.
type scanner = rowcodec.Scanner

// nullTime stores the zero time ("never") as NULL.
func nullTime(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: t, Valid: true}
}

// fromNullTime reads NULL back as the zero time, anything else in UTC.
func fromNullTime(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// timestamptzTimes keeps times as timestamptz.
type timestamptzTimes struct{}

func (timestamptzTimes) Arg(t time.Time) any       { return t }
func (timestamptzTimes) NullArg(t time.Time) any   { return nullTime(t) }
func (timestamptzTimes) Dest(t *time.Time) any     { return (*utcDest)(t) }
func (timestamptzTimes) NullDest(t *time.Time) any { return (*nullUTCDest)(t) }

// utcDest reads a NOT NULL timestamptz column in UTC.
type utcDest time.Time

func (d *utcDest) ScanTimestamptz(v pgtype.Timestamptz) error {
	switch {
	case !v.Valid:
		return errors.New("cannot scan NULL into a time")
	case v.InfinityModifier != pgtype.Finite:
		return fmt.Errorf("cannot scan %v into a time", v.InfinityModifier)
	}
	*d = utcDest(v.Time.UTC())
	return nil
}

// nullUTCDest reads an optional timestamptz column: NULL as the zero time,
// anything else in UTC (fromNullTime).
type nullUTCDest time.Time

func (d *nullUTCDest) ScanTimestamptz(v pgtype.Timestamptz) error {
	*d = nullUTCDest(fromNullTime(v))
	return nil
}
