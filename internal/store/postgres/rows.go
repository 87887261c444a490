package postgres

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/store/internal/rowcodec"
)

// Rows are the tables as PostgreSQL stores them: enums as their String form,
// key ids as 16-byte bytea, uint32 versions as bigint, times as timestamptz
// (NULL for an optional time that is zero), lists as jsonb arrays. The row
// code that both stores share is rowcodec's, with this store's times
// (timestamptzTimes); the key providers' rows are this store's own.

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

// scanner is a pgx.Row or pgx.Rows.
type scanner = rowcodec.Scanner

type keyProviderRow struct {
	TenantID          string
	Fingerprint       string
	ARN               string
	Name              string
	Description       string
	MultiRegion       bool
	Replicas          []byte // JSON array
	DRCompliant       bool
	ComplianceCode    string
	ComplianceRegion  string
	ComplianceMessage string
	CreatedAt         time.Time
	PromotedAt        pgtype.Timestamptz
	DemotedAt         pgtype.Timestamptz
	TestedAt          pgtype.Timestamptz
	Kind              string
	Config            []byte // the kind's JSON settings; NULL if none
	WrappedSecret     []byte // NULL if none
}

const keyProviderColumns = `tenant_id, fingerprint, arn, name, description, multi_region, replicas, dr_compliant,
	compliance_code, compliance_region, compliance_message, created_at, promoted_at, demoted_at, tested_at,
	kind, config, wrapped_secret`

func newKeyProviderRow(p keyprovider.Provider) (keyProviderRow, error) {
	replicas, err := encodeReplicas(p.Replicas)
	if err != nil {
		return keyProviderRow{}, fmt.Errorf("postgres: key provider %s of tenant %q: %w", p.Fingerprint, p.TenantID, err)
	}
	return keyProviderRow{
		TenantID:          p.TenantID,
		Fingerprint:       p.Fingerprint,
		ARN:               p.ARN,
		Name:              p.Name,
		Description:       p.Description,
		MultiRegion:       p.MultiRegion,
		Replicas:          replicas,
		DRCompliant:       p.DRCompliant,
		ComplianceCode:    p.Compliance.Code,
		ComplianceRegion:  p.Compliance.Region,
		ComplianceMessage: p.Compliance.Message,
		CreatedAt:         p.CreatedAt,
		PromotedAt:        nullTime(p.PromotedAt),
		DemotedAt:         nullTime(p.DemotedAt),
		Kind:              p.Kind,
		Config:            rowcodec.NilIfEmpty(p.Config),
		WrappedSecret:     rowcodec.NilIfEmpty(p.WrappedSecret),
		TestedAt:          nullTime(p.TestedAt),
	}, nil
}

func (r keyProviderRow) args() []any {
	return []any{r.TenantID, r.Fingerprint, r.ARN, r.Name, r.Description, r.MultiRegion, r.Replicas, r.DRCompliant,
		r.ComplianceCode, r.ComplianceRegion, r.ComplianceMessage, r.CreatedAt, r.PromotedAt, r.DemotedAt, r.TestedAt,
		r.Kind, r.Config, r.WrappedSecret}
}

func scanKeyProvider(sc scanner) (keyprovider.Provider, error) {
	var r keyProviderRow
	if err := sc.Scan(&r.TenantID, &r.Fingerprint, &r.ARN, &r.Name, &r.Description, &r.MultiRegion, &r.Replicas, &r.DRCompliant,
		&r.ComplianceCode, &r.ComplianceRegion, &r.ComplianceMessage, &r.CreatedAt, &r.PromotedAt, &r.DemotedAt, &r.TestedAt,
		&r.Kind, &r.Config, &r.WrappedSecret); err != nil {
		return keyprovider.Provider{}, err
	}
	replicas, err := decodeReplicas(r.Replicas)
	if err != nil {
		return keyprovider.Provider{}, fmt.Errorf("postgres: key provider %s of tenant %q: stored replicas: %w", r.Fingerprint, r.TenantID, err)
	}
	return keyprovider.Provider{
		TenantID:      r.TenantID,
		Fingerprint:   r.Fingerprint,
		Kind:          r.Kind,
		ARN:           r.ARN,
		Config:        rowcodec.NilIfEmpty(r.Config),
		WrappedSecret: rowcodec.NilIfEmpty(r.WrappedSecret),
		Name:          r.Name,
		Description:   r.Description,
		MultiRegion:   r.MultiRegion,
		Replicas:      replicas,
		DRCompliant:   r.DRCompliant,
		Compliance: keyprovider.ComplianceError{
			Code:    r.ComplianceCode,
			Region:  r.ComplianceRegion,
			Message: r.ComplianceMessage,
		},
		CreatedAt:  r.CreatedAt.UTC(),
		PromotedAt: fromNullTime(r.PromotedAt),
		DemotedAt:  fromNullTime(r.DemotedAt),
		TestedAt:   fromNullTime(r.TestedAt),
	}, nil
}

// encodeReplicas stores a nil list as an empty JSON array: the column holds
// an array, never null.
func encodeReplicas(rs []keyprovider.Replica) ([]byte, error) {
	if rs == nil {
		rs = []keyprovider.Replica{}
	}
	return json.Marshal(rs)
}

// decodeReplicas reads an empty array back as nil, so that both backends
// return the same value.
func decodeReplicas(b []byte) ([]keyprovider.Replica, error) {
	var rs []keyprovider.Replica
	if err := json.Unmarshal(b, &rs); err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, nil
	}
	return rs, nil
}

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
