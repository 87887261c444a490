package rowcodec

import (
	"encoding/json"

	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
)

// KeyProviderColumns are the key_providers table's columns, in the order of
// KeyProviderArgs and ScanKeyProvider. Replicas are a JSON array (TEXT in
// SQLite, jsonb in PostgreSQL, written and read as JSON text as the audit
// details are); config and wrapped_secret are NULL if empty.
const KeyProviderColumns = `tenant_id, fingerprint, arn, name, description, multi_region, replicas, dr_compliant,
	compliance_code, compliance_region, compliance_message, created_at, promoted_at, demoted_at, tested_at,
	kind, config, wrapped_secret`

// KeyProviderSetColumns are the columns that UpdateKeyProvider sets (every
// one but the key, arn, created_at and kind), in the order of
// KeyProviderUpdateArgs.
const KeyProviderSetColumns = `name, description, multi_region, replicas, dr_compliant,
	compliance_code, compliance_region, compliance_message,
	promoted_at, demoted_at, tested_at, config, wrapped_secret`

// KeyProviderArgs are p's KeyProviderColumns. Errors: replicas that do not
// encode.
func (c Codec) KeyProviderArgs(p keyprovider.Provider) ([]any, error) {
	replicas, err := c.replicasArg(p)
	if err != nil {
		return nil, err
	}
	return []any{p.TenantID, p.Fingerprint, p.ARN, p.Name, p.Description, p.MultiRegion, replicas, p.DRCompliant,
		p.Compliance.Code, p.Compliance.Region, p.Compliance.Message,
		c.Times.Arg(p.CreatedAt), c.Times.NullArg(p.PromotedAt), c.Times.NullArg(p.DemotedAt), c.Times.NullArg(p.TestedAt),
		p.Kind, NilIfEmpty(p.Config), NilIfEmpty(p.WrappedSecret)}, nil
}

// KeyProviderUpdateArgs are the arguments of a store's UpdateKeyProvider
// statement: p's KeyProviderSetColumns, then tenant_id and fingerprint (the
// WHERE clause). Errors: replicas that do not encode.
func (c Codec) KeyProviderUpdateArgs(p keyprovider.Provider) ([]any, error) {
	replicas, err := c.replicasArg(p)
	if err != nil {
		return nil, err
	}
	return []any{p.Name, p.Description, p.MultiRegion, replicas, p.DRCompliant,
		p.Compliance.Code, p.Compliance.Region, p.Compliance.Message,
		c.Times.NullArg(p.PromotedAt), c.Times.NullArg(p.DemotedAt), c.Times.NullArg(p.TestedAt),
		NilIfEmpty(p.Config), NilIfEmpty(p.WrappedSecret),
		p.TenantID, p.Fingerprint}, nil
}

func (c Codec) replicasArg(p keyprovider.Provider) (string, error) {
	replicas, err := encodeReplicas(p.Replicas)
	if err != nil {
		return "", c.errorf("key provider %s of tenant %q: %w", p.Fingerprint, p.TenantID, err)
	}
	return string(replicas), nil
}

// ScanKeyProvider reads a row of KeyProviderColumns.
func (c Codec) ScanKeyProvider(sc Scanner) (keyprovider.Provider, error) {
	var p keyprovider.Provider
	var replicas string
	if err := sc.Scan(&p.TenantID, &p.Fingerprint, &p.ARN, &p.Name, &p.Description, &p.MultiRegion, &replicas, &p.DRCompliant,
		&p.Compliance.Code, &p.Compliance.Region, &p.Compliance.Message,
		c.Times.Dest(&p.CreatedAt), c.Times.NullDest(&p.PromotedAt), c.Times.NullDest(&p.DemotedAt), c.Times.NullDest(&p.TestedAt),
		&p.Kind, &p.Config, &p.WrappedSecret); err != nil {
		return keyprovider.Provider{}, err
	}
	var err error
	if p.Replicas, err = decodeReplicas([]byte(replicas)); err != nil {
		return keyprovider.Provider{}, c.errorf("key provider %s of tenant %q: stored replicas: %w", p.Fingerprint, p.TenantID, err)
	}
	p.Config, p.WrappedSecret = NilIfEmpty(p.Config), NilIfEmpty(p.WrappedSecret)
	return p, nil
}

// encodeReplicas stores a nil list as an empty JSON array: the column holds
// an array, never null.
func encodeReplicas(rs []keyprovider.Replica) ([]byte, error) {
	if rs == nil {
		rs = []keyprovider.Replica{}
	}
	return json.Marshal(rs)
}

// decodeReplicas reads an empty array back as nil, so that both stores
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
