package rowcodec

import (
	"fmt"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
)

// The column lists of the tables, in the order of the Args and Scan methods.
const (
	TenantColumns = `id, name, edition, hipaa, state, state_reason, state_changed_at, provider, created_at, updated_at, quota_rate, quota_burst`

	CipherKeyColumns = `tenant_id, id, purpose, active, provider, key_version, wrapped, context_digest, created_at, uses_reserved`

	KEKColumns = `tenant_id, version, root_version, wrapped, created_at`

	MigrationColumns = `id, tenant_id, from_ref, to_ref, from_arn, to_arn, state, total, done,
	initiated_at, completed_at, updated_at, last_error`

	KeyCheckColumns = `tenant_id, provider, region, key_arn, checked_at, result, key_state, detail`

	RootRecordColumns = `source, current, token, key_label, updated_at`
)

// TenantArgs are t's TenantColumns. Errors: an invalid edition or state, no
// provider.
func (c Codec) TenantArgs(t keyring.Tenant) ([]any, error) {
	edition, err := c.Edition(t)
	if err != nil {
		return nil, err
	}
	state, err := c.TenantState(t.ID, t.State)
	if err != nil {
		return nil, err
	}
	provider, err := c.RefArg(fmt.Sprintf("tenant %q", t.ID), t.Provider)
	if err != nil {
		return nil, err
	}
	return []any{t.ID, t.Name, edition, t.HIPAA, state, t.StateReason, c.Times.NullArg(t.StateChangedAt), provider,
		c.Times.Arg(t.CreatedAt), c.Times.Arg(t.UpdatedAt), t.Quota.Rate, int64(t.Quota.Burst)}, nil
}

// Edition and TenantState are the String forms, refusing the values that
// ParseEdition and ParseTenantState would not read back.
func (c Codec) Edition(t keyring.Tenant) (string, error) {
	if _, err := keyring.ParseEdition(t.Edition.String()); err != nil {
		return "", c.errorf("tenant %q: invalid edition %d", t.ID, int(t.Edition))
	}
	return t.Edition.String(), nil
}

// TenantState: see Edition.
func (c Codec) TenantState(tenantID string, s keyring.TenantState) (string, error) {
	if _, err := keyring.ParseTenantState(s.String()); err != nil {
		return "", c.errorf("tenant %q: invalid state %d", tenantID, int(s))
	}
	return s.String(), nil
}

// ScanTenant reads a row of TenantColumns.
func (c Codec) ScanTenant(sc Scanner) (keyring.Tenant, error) {
	var t keyring.Tenant
	var edition, state, provider string
	var burst int64
	if err := sc.Scan(&t.ID, &t.Name, &edition, &t.HIPAA, &state, &t.StateReason, c.Times.NullDest(&t.StateChangedAt), &provider,
		c.Times.Dest(&t.CreatedAt), c.Times.Dest(&t.UpdatedAt), &t.Quota.Rate, &burst); err != nil {
		return keyring.Tenant{}, err
	}
	var err error
	if t.Edition, err = keyring.ParseEdition(edition); err != nil {
		return keyring.Tenant{}, c.errorf("tenant %q: stored edition: %w", t.ID, err)
	}
	if t.State, err = keyring.ParseTenantState(state); err != nil {
		return keyring.Tenant{}, c.errorf("tenant %q: stored state: %w", t.ID, err)
	}
	if t.Provider, err = c.ParseRef(fmt.Sprintf("tenant %q", t.ID), provider); err != nil {
		return keyring.Tenant{}, err
	}
	t.Quota.Burst = int(burst)
	return t, nil
}

// CipherKeyArgs are k's CipherKeyColumns. Errors: an invalid purpose, no
// provider, a negative UsesReserved.
func (c Codec) CipherKeyArgs(k keyring.CipherKey) ([]any, error) {
	if _, err := keyring.ParsePurpose(k.Purpose.String()); err != nil {
		return nil, c.errorf("cipherkey %s: invalid purpose %d", k.ID, int(k.Purpose))
	}
	provider, err := c.RefArg(fmt.Sprintf("cipherkey %s", k.ID), k.Provider)
	if err != nil {
		return nil, err
	}
	if k.UsesReserved < 0 {
		return nil, c.errorf("cipherkey %s: negative uses reserved", k.ID)
	}
	return []any{k.TenantID, k.ID[:], k.Purpose.String(), k.Active, provider, k.KeyVersion,
		NotNil(k.Wrapped), NotNil(k.ContextDigest), c.Times.Arg(k.CreatedAt), k.UsesReserved}, nil
}

// ScanCipherKey reads a row of CipherKeyColumns.
func (c Codec) ScanCipherKey(sc Scanner) (keyring.CipherKey, error) {
	var k keyring.CipherKey
	var id []byte
	var purpose, provider string
	if err := sc.Scan(&k.TenantID, &id, &purpose, &k.Active, &provider, &k.KeyVersion,
		&k.Wrapped, &k.ContextDigest, c.Times.Dest(&k.CreatedAt), &k.UsesReserved); err != nil {
		return keyring.CipherKey{}, err
	}
	if len(id) != len(k.ID) {
		return keyring.CipherKey{}, c.errorf("cipherkey of tenant %q: stored id has %d bytes", k.TenantID, len(id))
	}
	k.ID = envelope.KeyID(id)
	var err error
	if k.Purpose, err = keyring.ParsePurpose(purpose); err != nil {
		return keyring.CipherKey{}, c.errorf("cipherkey %s: stored purpose: %w", k.ID, err)
	}
	if k.Provider, err = c.ParseRef(fmt.Sprintf("cipherkey %s", k.ID), provider); err != nil {
		return keyring.CipherKey{}, err
	}
	k.Wrapped, k.ContextDigest = NilIfEmpty(k.Wrapped), NilIfEmpty(k.ContextDigest)
	return k, nil
}

// KEKArgs are k's KEKColumns.
func (c Codec) KEKArgs(k internalkms.KEK) []any {
	return []any{k.TenantID, int64(k.Version), int64(k.RootVersion), NotNil(k.Wrapped), c.Times.Arg(k.CreatedAt)}
}

// ScanKEK reads a row of KEKColumns.
func (c Codec) ScanKEK(sc Scanner) (internalkms.KEK, error) {
	var k internalkms.KEK
	var version, rootVersion int64
	if err := sc.Scan(&k.TenantID, &version, &rootVersion, &k.Wrapped, c.Times.Dest(&k.CreatedAt)); err != nil {
		return internalkms.KEK{}, err
	}
	// The schemas CHECK the uint32 range.
	k.Version, k.RootVersion, k.Wrapped = uint32(version), uint32(rootVersion), NilIfEmpty(k.Wrapped)
	return k, nil
}

// MigrationArgs are m's MigrationColumns. Errors: an invalid state, no
// source or target provider.
func (c Codec) MigrationArgs(m migration.Migration) ([]any, error) {
	state, err := c.MigrationState(m)
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("migration %q of tenant %q", m.ID, m.TenantID)
	from, err := c.RefArg(what, m.From)
	if err != nil {
		return nil, err
	}
	to, err := c.RefArg(what, m.To)
	if err != nil {
		return nil, err
	}
	return []any{m.ID, m.TenantID, from, to, m.FromARN, m.ToARN, state, m.Total, m.Done,
		c.Times.Arg(m.InitiatedAt), c.Times.NullArg(m.CompletedAt), c.Times.Arg(m.UpdatedAt), m.LastError}, nil
}

// MigrationState is m.State's String form, refusing a state that
// migration.ParseState would not read back.
func (c Codec) MigrationState(m migration.Migration) (string, error) {
	if _, err := migration.ParseState(m.State.String()); err != nil {
		return "", c.errorf("migration %q of tenant %q: invalid state %d", m.ID, m.TenantID, int(m.State))
	}
	return m.State.String(), nil
}

// ScanMigration reads a row of MigrationColumns.
func (c Codec) ScanMigration(sc Scanner) (migration.Migration, error) {
	var m migration.Migration
	var state, from, to string
	if err := sc.Scan(&m.ID, &m.TenantID, &from, &to, &m.FromARN, &m.ToARN, &state, &m.Total, &m.Done,
		c.Times.Dest(&m.InitiatedAt), c.Times.NullDest(&m.CompletedAt), c.Times.Dest(&m.UpdatedAt), &m.LastError); err != nil {
		return migration.Migration{}, err
	}
	var err error
	if m.State, err = migration.ParseState(state); err != nil {
		return migration.Migration{}, c.errorf("migration %q of tenant %q: stored state: %w", m.ID, m.TenantID, err)
	}
	what := fmt.Sprintf("migration %q of tenant %q", m.ID, m.TenantID)
	if m.From, err = c.ParseRef(what, from); err != nil {
		return migration.Migration{}, err
	}
	if m.To, err = c.ParseRef(what, to); err != nil {
		return migration.Migration{}, err
	}
	return m, nil
}

// KeyCheckArgs are k's KeyCheckColumns. Errors: no provider.
func (c Codec) KeyCheckArgs(k lifecycle.KeyCheck) ([]any, error) {
	provider, err := c.RefArg(fmt.Sprintf("key check of tenant %q", k.TenantID), k.Provider)
	if err != nil {
		return nil, err
	}
	return []any{k.TenantID, provider, k.Region, k.KeyARN, c.Times.Arg(k.CheckedAt), k.Result, k.KeyState, k.Detail}, nil
}

// ScanKeyCheck reads a row of KeyCheckColumns.
func (c Codec) ScanKeyCheck(sc Scanner) (lifecycle.KeyCheck, error) {
	var k lifecycle.KeyCheck
	var provider string
	if err := sc.Scan(&k.TenantID, &provider, &k.Region, &k.KeyARN, c.Times.Dest(&k.CheckedAt), &k.Result, &k.KeyState, &k.Detail); err != nil {
		return lifecycle.KeyCheck{}, err
	}
	var err error
	if k.Provider, err = c.ParseRef(fmt.Sprintf("key check of tenant %q", k.TenantID), provider); err != nil {
		return lifecycle.KeyCheck{}, err
	}
	return k, nil
}

// RootRecordArgs are rec's RootRecordColumns.
func (c Codec) RootRecordArgs(rec internalkms.RootRecord) []any {
	return []any{rec.Source, int64(rec.Current), rec.Token, rec.KeyLabel, c.Times.Arg(rec.UpdatedAt)}
}

// ScanRootRecord reads a row of RootRecordColumns. Errors: a Current out of
// the uint32 range.
func (c Codec) ScanRootRecord(sc Scanner) (internalkms.RootRecord, error) {
	var rec internalkms.RootRecord
	var current int64
	if err := sc.Scan(&rec.Source, &current, &rec.Token, &rec.KeyLabel, c.Times.Dest(&rec.UpdatedAt)); err != nil {
		return internalkms.RootRecord{}, err
	}
	if current < 0 || current > 1<<32-1 {
		return internalkms.RootRecord{}, fmt.Errorf("root key version %d out of range", current)
	}
	rec.Current = uint32(current)
	return rec, nil
}
