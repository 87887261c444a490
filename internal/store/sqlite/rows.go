package sqlite

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
)

// Rows are the tables as SQLite stores them: enums as their String form,
// times as unix microseconds (NULL for an optional time that is zero), key
// ids as 16-byte BLOBs, lists as JSON text. Converting to a row rejects values
// that would not read back (an unknown enum), so that a bad write fails
// instead of leaving a row that every later read trips over.

type tenantRow struct {
	ID             string
	Name           string
	Edition        string
	HIPAA          bool
	State          string
	StateReason    string
	StateChangedAt sql.NullInt64
	Provider       string
	CreatedAt      int64
	UpdatedAt      int64
	QuotaRate      float64
	QuotaBurst     int64
}

const tenantColumns = `id, name, edition, hipaa, state, state_reason, state_changed_at, provider, created_at, updated_at, quota_rate, quota_burst`

func newTenantRow(t keyring.Tenant) (tenantRow, error) {
	edition, err := encodeEdition(t)
	if err != nil {
		return tenantRow{}, err
	}
	state, err := encodeState(t.ID, t.State)
	if err != nil {
		return tenantRow{}, err
	}
	return tenantRow{
		ID:             t.ID,
		Name:           t.Name,
		Edition:        edition,
		HIPAA:          t.HIPAA,
		State:          state,
		StateReason:    t.StateReason,
		StateChangedAt: nullMicros(t.StateChangedAt),
		Provider:       t.Provider,
		CreatedAt:      micros(t.CreatedAt),
		UpdatedAt:      micros(t.UpdatedAt),
		QuotaRate:      t.Quota.Rate,
		QuotaBurst:     int64(t.Quota.Burst),
	}, nil
}

func (r tenantRow) args() []any {
	return []any{r.ID, r.Name, r.Edition, r.HIPAA, r.State, r.StateReason, r.StateChangedAt, r.Provider, r.CreatedAt, r.UpdatedAt, r.QuotaRate, r.QuotaBurst}
}

// encodeEdition and encodeState are the String forms, refusing the values
// that ParseEdition and ParseTenantState would not read back.
func encodeEdition(t keyring.Tenant) (string, error) {
	if _, err := keyring.ParseEdition(t.Edition.String()); err != nil {
		return "", fmt.Errorf("sqlite: tenant %q: invalid edition %d", t.ID, int(t.Edition))
	}
	return t.Edition.String(), nil
}

func encodeState(tenantID string, s keyring.TenantState) (string, error) {
	if _, err := keyring.ParseTenantState(s.String()); err != nil {
		return "", fmt.Errorf("sqlite: tenant %q: invalid state %d", tenantID, int(s))
	}
	return s.String(), nil
}

func scanTenant(sc scanner) (keyring.Tenant, error) {
	var r tenantRow
	if err := sc.Scan(&r.ID, &r.Name, &r.Edition, &r.HIPAA, &r.State, &r.StateReason, &r.StateChangedAt, &r.Provider, &r.CreatedAt, &r.UpdatedAt, &r.QuotaRate, &r.QuotaBurst); err != nil {
		return keyring.Tenant{}, err
	}
	edition, err := keyring.ParseEdition(r.Edition)
	if err != nil {
		return keyring.Tenant{}, fmt.Errorf("sqlite: tenant %q: stored edition: %w", r.ID, err)
	}
	state, err := keyring.ParseTenantState(r.State)
	if err != nil {
		return keyring.Tenant{}, fmt.Errorf("sqlite: tenant %q: stored state: %w", r.ID, err)
	}
	return keyring.Tenant{
		ID:             r.ID,
		Name:           r.Name,
		Edition:        edition,
		HIPAA:          r.HIPAA,
		State:          state,
		StateReason:    r.StateReason,
		StateChangedAt: fromNullMicros(r.StateChangedAt),
		Provider:       r.Provider,
		CreatedAt:      fromMicros(r.CreatedAt),
		UpdatedAt:      fromMicros(r.UpdatedAt),
		Quota:          keyring.Quota{Rate: r.QuotaRate, Burst: int(r.QuotaBurst)},
	}, nil
}

type cipherKeyRow struct {
	TenantID      string
	ID            []byte
	Purpose       string
	Active        bool
	Provider      string
	KeyVersion    string
	Wrapped       []byte
	ContextDigest []byte
	CreatedAt     int64
	UsesReserved  int64
}

const cipherKeyColumns = `tenant_id, id, purpose, active, provider, key_version, wrapped, context_digest, created_at, uses_reserved`

func newCipherKeyRow(k keyring.CipherKey) (cipherKeyRow, error) {
	if _, err := keyring.ParsePurpose(k.Purpose.String()); err != nil {
		return cipherKeyRow{}, fmt.Errorf("sqlite: cipherkey %s: invalid purpose %d", k.ID, int(k.Purpose))
	}
	if k.UsesReserved < 0 {
		return cipherKeyRow{}, fmt.Errorf("sqlite: cipherkey %s: negative uses reserved", k.ID)
	}
	return cipherKeyRow{
		TenantID:      k.TenantID,
		ID:            k.ID[:],
		Purpose:       k.Purpose.String(),
		Active:        k.Active,
		Provider:      k.Provider,
		KeyVersion:    k.KeyVersion,
		Wrapped:       notNil(k.Wrapped),
		ContextDigest: notNil(k.ContextDigest),
		CreatedAt:     micros(k.CreatedAt),
		UsesReserved:  k.UsesReserved,
	}, nil
}

func (r cipherKeyRow) args() []any {
	return []any{r.TenantID, r.ID, r.Purpose, r.Active, r.Provider, r.KeyVersion, r.Wrapped, r.ContextDigest, r.CreatedAt, r.UsesReserved}
}

func scanCipherKey(sc scanner) (keyring.CipherKey, error) {
	var r cipherKeyRow
	if err := sc.Scan(&r.TenantID, &r.ID, &r.Purpose, &r.Active, &r.Provider, &r.KeyVersion, &r.Wrapped, &r.ContextDigest, &r.CreatedAt, &r.UsesReserved); err != nil {
		return keyring.CipherKey{}, err
	}
	var id envelope.KeyID
	if len(r.ID) != len(id) {
		return keyring.CipherKey{}, fmt.Errorf("sqlite: cipherkey of tenant %q: stored id has %d bytes", r.TenantID, len(r.ID))
	}
	copy(id[:], r.ID)
	purpose, err := keyring.ParsePurpose(r.Purpose)
	if err != nil {
		return keyring.CipherKey{}, fmt.Errorf("sqlite: cipherkey %s: stored purpose: %w", id, err)
	}
	return keyring.CipherKey{
		TenantID:      r.TenantID,
		ID:            id,
		Purpose:       purpose,
		Active:        r.Active,
		Provider:      r.Provider,
		KeyVersion:    r.KeyVersion,
		Wrapped:       nilIfEmpty(r.Wrapped),
		ContextDigest: nilIfEmpty(r.ContextDigest),
		CreatedAt:     fromMicros(r.CreatedAt),
		UsesReserved:  r.UsesReserved,
	}, nil
}

type kekRow struct {
	TenantID    string
	Version     int64
	RootVersion int64
	Wrapped     []byte
	CreatedAt   int64
}

const kekColumns = `tenant_id, version, root_version, wrapped, created_at`

func scanKEK(sc scanner) (internalkms.KEK, error) {
	var r kekRow
	if err := sc.Scan(&r.TenantID, &r.Version, &r.RootVersion, &r.Wrapped, &r.CreatedAt); err != nil {
		return internalkms.KEK{}, err
	}
	return internalkms.KEK{
		TenantID:    r.TenantID,
		Version:     uint32(r.Version), // the schema CHECKs the uint32 range
		RootVersion: uint32(r.RootVersion),
		Wrapped:     nilIfEmpty(r.Wrapped),
		CreatedAt:   fromMicros(r.CreatedAt),
	}, nil
}

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
		Config:            nilIfEmpty(p.Config),
		WrappedSecret:     nilIfEmpty(p.WrappedSecret),
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
		Config:        nilIfEmpty(r.Config),
		WrappedSecret: nilIfEmpty(r.WrappedSecret),
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

type migrationRow struct {
	ID          string
	TenantID    string
	From        string
	To          string
	FromARN     string
	ToARN       string
	State       string
	Total       int64
	Done        int64
	InitiatedAt int64
	CompletedAt sql.NullInt64
	UpdatedAt   int64
	LastError   string
}

const migrationColumns = `id, tenant_id, from_ref, to_ref, from_arn, to_arn, state, total, done,
	initiated_at, completed_at, updated_at, last_error`

func newMigrationRow(m migration.Migration) (migrationRow, error) {
	if _, err := migration.ParseState(m.State.String()); err != nil {
		return migrationRow{}, fmt.Errorf("sqlite: migration %q of tenant %q: invalid state %d", m.ID, m.TenantID, int(m.State))
	}
	return migrationRow{
		ID:          m.ID,
		TenantID:    m.TenantID,
		From:        m.From,
		To:          m.To,
		FromARN:     m.FromARN,
		ToARN:       m.ToARN,
		State:       m.State.String(),
		Total:       m.Total,
		Done:        m.Done,
		InitiatedAt: micros(m.InitiatedAt),
		CompletedAt: nullMicros(m.CompletedAt),
		UpdatedAt:   micros(m.UpdatedAt),
		LastError:   m.LastError,
	}, nil
}

func (r migrationRow) args() []any {
	return []any{r.ID, r.TenantID, r.From, r.To, r.FromARN, r.ToARN, r.State, r.Total, r.Done,
		r.InitiatedAt, r.CompletedAt, r.UpdatedAt, r.LastError}
}

func scanMigration(sc scanner) (migration.Migration, error) {
	var r migrationRow
	if err := sc.Scan(&r.ID, &r.TenantID, &r.From, &r.To, &r.FromARN, &r.ToARN, &r.State, &r.Total, &r.Done,
		&r.InitiatedAt, &r.CompletedAt, &r.UpdatedAt, &r.LastError); err != nil {
		return migration.Migration{}, err
	}
	state, err := migration.ParseState(r.State)
	if err != nil {
		return migration.Migration{}, fmt.Errorf("sqlite: migration %q of tenant %q: stored state: %w", r.ID, r.TenantID, err)
	}
	return migration.Migration{
		ID:          r.ID,
		TenantID:    r.TenantID,
		From:        r.From,
		To:          r.To,
		FromARN:     r.FromARN,
		ToARN:       r.ToARN,
		State:       state,
		Total:       r.Total,
		Done:        r.Done,
		InitiatedAt: fromMicros(r.InitiatedAt),
		CompletedAt: fromNullMicros(r.CompletedAt),
		UpdatedAt:   fromMicros(r.UpdatedAt),
		LastError:   r.LastError,
	}, nil
}

type keyCheckRow struct {
	TenantID  string
	Provider  string
	Region    string
	KeyARN    string
	CheckedAt int64
	Result    string
	KeyState  string
	Detail    string
}

const keyCheckColumns = `tenant_id, provider, region, key_arn, checked_at, result, key_state, detail`

func newKeyCheckRow(c lifecycle.KeyCheck) keyCheckRow {
	return keyCheckRow{
		TenantID:  c.TenantID,
		Provider:  c.Provider,
		Region:    c.Region,
		KeyARN:    c.KeyARN,
		CheckedAt: micros(c.CheckedAt),
		Result:    c.Result,
		KeyState:  c.KeyState,
		Detail:    c.Detail,
	}
}

func (r keyCheckRow) args() []any {
	return []any{r.TenantID, r.Provider, r.Region, r.KeyARN, r.CheckedAt, r.Result, r.KeyState, r.Detail}
}

func scanKeyCheck(sc scanner) (lifecycle.KeyCheck, error) {
	var r keyCheckRow
	if err := sc.Scan(&r.TenantID, &r.Provider, &r.Region, &r.KeyARN, &r.CheckedAt, &r.Result, &r.KeyState, &r.Detail); err != nil {
		return lifecycle.KeyCheck{}, err
	}
	return lifecycle.KeyCheck{
		TenantID:  r.TenantID,
		Provider:  r.Provider,
		Region:    r.Region,
		KeyARN:    r.KeyARN,
		CheckedAt: fromMicros(r.CheckedAt),
		Result:    r.Result,
		KeyState:  r.KeyState,
		Detail:    r.Detail,
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

// notNil stores a nil slice as an empty BLOB: the columns are NOT NULL.
func notNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// nilIfEmpty reads an empty BLOB back as nil, so that both backends return
// the same value.
func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
