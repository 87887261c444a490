package keyprovider

import (
	"context"
	"time"
)

// Store keeps the key providers that tenants registered. Implementations
// live in internal/store/... and pass internal/store/storetest; they return
// keyring.ErrNotFound and keyring.ErrExists (possibly wrapped) like the
// keyring's own store methods.
type Store interface {
	// InsertKeyProvider stores a new provider. Errors: keyring.ErrExists (the
	// tenant has one with that fingerprint), keyring.ErrNotFound (no such
	// tenant).
	InsertKeyProvider(ctx context.Context, p Provider) error
	// KeyProvider returns one provider. Errors: keyring.ErrNotFound.
	KeyProvider(ctx context.Context, tenantID, fingerprint string) (Provider, error)
	// ListKeyProviders returns a tenant's providers, oldest first; an empty
	// slice if it has none.
	ListKeyProviders(ctx context.Context, tenantID string) ([]Provider, error)
	// UpdateKeyProvider replaces every field of the stored provider
	// (TenantID, Fingerprint) but ARN and CreatedAt. Errors:
	// keyring.ErrNotFound.
	UpdateKeyProvider(ctx context.Context, p Provider) error
	// SetKeyProviderCompliance records the outcome of a DR-compliance check of
	// one provider (the key monitor's or a test's): DRCompliant, Compliance
	// and TestedAt, leaving every other field alone, so that a check racing an
	// admin's rename loses neither. Errors: keyring.ErrNotFound.
	SetKeyProviderCompliance(ctx context.Context, tenantID, fingerprint string, drCompliant bool, c ComplianceError, testedAt time.Time) error
	// DeleteKeyProvider removes one provider. Errors: keyring.ErrNotFound.
	DeleteKeyProvider(ctx context.Context, tenantID, fingerprint string) error
}

// Provider is a customer managed key registered by a tenant admin.
type Provider struct {
	TenantID string
	// Fingerprint is the entry's stable id in API paths: 32 lowercase hex
	// characters derived from the ARN.
	Fingerprint string
	// Kind is the Name of the provider kind (AWS-KMS, KMIP); stores keep DefaultKind
	// for registrations made before kinds existed.
	Kind string
	// ARN is the key's identity in canonical form as registered (an AWS
	// key ARN, key/<id> or key/mrk-<id>; a kmip:// URI): Key's String.
	ARN string
	// Key is ARN as the kind parsed it. The service sets it on every
	// registration it returns; stores leave it nil.
	Key Key `json:"-"`
	// Config is the kind's own settings (Settings.Config), nil if none;
	// WrappedSecret its secret, wrapped by the internal KMS, nil if none.
	Config        []byte
	WrappedSecret []byte
	Name          string
	Description   string
	// MultiRegion, Replicas, DRCompliant and Compliance are what the last
	// registration or test found.
	MultiRegion bool
	Replicas    []Replica
	DRCompliant bool
	Compliance  ComplianceError
	CreatedAt   time.Time
	// PromotedAt is when the provider became the tenant's current one,
	// DemotedAt when it stopped being so; zero if never.
	PromotedAt time.Time
	DemotedAt  time.Time
	// TestedAt is the time of the last test (registration included).
	TestedAt time.Time
}

// Replica is a multi-region key's replica in another region.
type Replica struct {
	ARN    string `json:"arn"`
	Region string `json:"region"`
}

// ComplianceError says why a provider is not DR compliant; all empty when
// it is.
type ComplianceError struct {
	Code    string `json:"code"`
	Region  string `json:"region"`
	Message string `json:"message"`
}
