package sqlite

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/store/internal/rowcodec"
)

// Rows are the tables as SQLite stores them: enums as their String form,
// times as unix microseconds (NULL for an optional time that is zero), key
// ids as 16-byte BLOBs, lists as JSON text. The row code that both stores
// share is rowcodec's, with this store's times (microsTimes); the key
// providers' rows are this store's own.

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

type keyProviderRow struct {
	TenantID          string
	Fingerprint       string
	ARN               string
	Name              string
	Description       string
	MultiRegion       bool
	Replicas          string // JSON array
	DRCompliant       bool
	ComplianceCode    string
	ComplianceRegion  string
	ComplianceMessage string
	CreatedAt         int64
	PromotedAt        sql.NullInt64
	DemotedAt         sql.NullInt64
	TestedAt          sql.NullInt64
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
		return keyProviderRow{}, fmt.Errorf("sqlite: key provider %s of tenant %q: %w", p.Fingerprint, p.TenantID, err)
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
		CreatedAt:         micros(p.CreatedAt),
		PromotedAt:        nullMicros(p.PromotedAt),
		DemotedAt:         nullMicros(p.DemotedAt),
		Kind:              p.Kind,
		Config:            rowcodec.NilIfEmpty(p.Config),
		WrappedSecret:     rowcodec.NilIfEmpty(p.WrappedSecret),
		TestedAt:          nullMicros(p.TestedAt),
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
	replicas, err := decodeReplicas([]byte(r.Replicas))
	if err != nil {
		return keyprovider.Provider{}, fmt.Errorf("sqlite: key provider %s of tenant %q: stored replicas: %w", r.Fingerprint, r.TenantID, err)
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
		CreatedAt:  fromMicros(r.CreatedAt),
		PromotedAt: fromNullMicros(r.PromotedAt),
		DemotedAt:  fromNullMicros(r.DemotedAt),
		TestedAt:   fromNullMicros(r.TestedAt),
	}, nil
}

// encodeReplicas stores a nil list as an empty JSON array: the column holds
// an array, never null.
func encodeReplicas(rs []keyprovider.Replica) (string, error) {
	if rs == nil {
		rs = []keyprovider.Replica{}
	}
	b, err := json.Marshal(rs)
	return string(b), err
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
