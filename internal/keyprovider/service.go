package keyprovider

import (
	"context"
	"encoding/json"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/awskms"
)

// RefPrefix starts the keyring Ref of every customer managed key provider:
// "cmk:" followed by the provider's fingerprint.
const RefPrefix = "cmk:"

// Ref is the keyring Ref of the provider with this fingerprint.
func Ref(fingerprint string) string { return RefPrefix + fingerprint }

// FingerprintOf returns the fingerprint a Ref names, and false for a Ref
// that is not a customer managed key's (the internal KMS's).
func FingerprintOf(ref string) (string, bool) {
	fp, ok := strings.CutPrefix(ref, RefPrefix)
	return fp, ok && fp != ""
}

// Fingerprint is the stable id of a key provider entry: the first 16
// bytes of the SHA-256 of the canonical ARN, in lowercase hex.
func Fingerprint(arn string) string {
	sum := sha256.Sum256([]byte(arn))
	return hex.EncodeToString(sum[:16])
}

// DRRegion is the disaster-recovery region of a key whose home is
// keyRegion: what drs maps keyRegion to, else what it maps the service's
// own region to; "" when there is none or it is keyRegion itself.
func DRRegion(drs map[string]string, serviceRegion, keyRegion string) string {
	dr := drs[keyRegion]
	if dr == "" {
		dr = drs[serviceRegion]
	}
	if dr == keyRegion {
		return ""
	}
	return dr
}

// AWSInspector is what registration and tests need of AWS KMS (an
// *awskms.Client). Errors are kms sentinels wrapped in *kms.Error.
type AWSInspector interface {
	DescribeKey(ctx context.Context, key awskms.ARN) (awskms.KeyDescription, error)
	Probe(ctx context.Context, key awskms.ARN, region string, b kms.Binding) []awskms.ProbeResult
}

// Tenants is what the service needs of the keyring.
type Tenants interface {
	Tenant(ctx context.Context, id string) (keyring.Tenant, error)
	CipherKeyCounts(ctx context.Context, tenantID string) (map[string]int, error)
}

// Config configures a Service.
type Config struct {
	Store     Store
	Inspector AWSInspector
	Tenants   Tenants
	// Region is the service's own region; DRRegions maps a region to its
	// disaster-recovery region.
	Region    string
	DRRegions map[string]string
	// AllowSingleRegion lets tenants register keys that are not
	// multi-region keys (no DR replica). Off by default.
	AllowSingleRegion bool
	// Timeout bounds the KMS calls of one registration or test.
	Timeout time.Duration
	Logger  *slog.Logger
	Now     func() time.Time
}

// Service manages tenants' key providers.
type Service struct {
	cfg Config
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Inspector == nil || cfg.Tenants == nil {
		return nil, errors.New("keyprovider: Store, Inspector and Tenants are required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 20 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg}, nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

// Registration is what a tenant admin gives to register a key.
type Registration struct {
	// Kind is the kind's Name (the API's "keyprovider"); "" means "AWS".
	Kind string
	// ARN is the key's identity, as the kind's ParseKey reads it.
	ARN         string
	Name        string
	Description string
	// Settings is the request's member named by the kind's Field (a
	// Configurer's), nil if absent; a kind without one refuses it.
	Settings json.RawMessage
}

// List returns the tenant's registered providers, oldest first.
func (s *Service) List(ctx context.Context, tenantID string) ([]Provider, error) {
	ps, err := s.cfg.Store.ListKeyProviders(ctx, tenantID)
	if err != nil {
		return nil, &keyring.StoreError{Op: "listing key providers", Err: err}
	}
	return ps, nil
}

// Get returns one provider. Errors: ErrNotFound.
func (s *Service) Get(ctx context.Context, tenantID, fingerprint string) (Provider, error) {
	p, err := s.cfg.Store.KeyProvider(ctx, tenantID, fingerprint)
	if errors.Is(err, keyring.ErrNotFound) {
		return Provider{}, ErrNotFound
	}
	if err != nil {
		return Provider{}, &keyring.StoreError{Op: "reading key provider", Err: err}
	}
	return p, nil
}

func validateText(field, v string, required bool, max int) error {
	if required && strings.TrimSpace(v) == "" {
		return &keyring.InputError{Field: field, Reason: "is required"}
	}
	if len(v) > max || !utf8.ValidString(v) {
		return &keyring.InputError{Field: field, Reason: fmt.Sprintf("must be valid UTF-8 of at most %d bytes", max)}
	}
	return nil
}

// Register validates a key with AWS KMS and registers it for the tenant,
// not as its current provider.
// Errors: *keyring.InputError, ErrMalformedARN, ErrExists, ErrNotFound
// (tenant), *RefusedError, kms errors (access denied, unavailable).
func (s *Service) Register(ctx context.Context, tenantID string, r Registration) (Provider, error) {
	if err := validateText("name", r.Name, true, 256); err != nil {
		return Provider{}, err
	}
	if err := validateText("description", r.Description, false, 1024); err != nil {
		return Provider{}, err
	}
	arn, err := awskms.ParseARN(r.ARN)
	if err != nil {
		return Provider{}, fmt.Errorf("%w: %w", ErrMalformedARN, err)
	}
	t, err := s.cfg.Tenants.Tenant(ctx, tenantID)
	if err != nil {
		return Provider{}, err
	}
	if t.Edition != keyring.EditionEnterprise {
		return Provider{}, &RefusedError{Reason: fmt.Sprintf("the %s edition cannot use a customer managed key; only enterprise tenants can", t.Edition)}
	}
	fp := Fingerprint(arn.String())
	existing, err := s.List(ctx, tenantID)
	if err != nil {
		return Provider{}, err
	}
	for _, e := range existing {
		if e.Fingerprint == fp {
			return Provider{}, ErrExists
		}
		if other, err := awskms.ParseARN(e.ARN); err == nil && arn.MultiRegion() && other.KeyID == arn.KeyID {
			return Provider{}, fmt.Errorf("%w: %s is a replica of the multi-region key already registered as %q", ErrExists, arn, e.Name)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	p := Provider{TenantID: tenantID, Fingerprint: fp, ARN: arn.String(), Name: r.Name, Description: r.Description, CreatedAt: s.now()}
	if err := s.inspect(ctx, &p, arn, true); err != nil {
		return Provider{}, err
	}
	if err := s.cfg.Store.InsertKeyProvider(ctx, p); err != nil {
		if errors.Is(err, keyring.ErrExists) {
			return Provider{}, ErrExists
		}
		return Provider{}, &keyring.StoreError{Op: "storing key provider", Err: err}
	}
	s.cfg.Logger.InfoContext(ctx, "key provider registered", "tenant", tenantID, "fingerprint", fp, "arn", p.ARN,
		"multi_region", p.MultiRegion, "dr_compliant", p.DRCompliant)
	return p, nil
}

// Test checks the provider's key again (state, required actions in its
// region and the DR region) and records what it found.
// Errors: ErrNotFound, kms errors (unavailable, timeout).
func (s *Service) Test(ctx context.Context, tenantID, fingerprint string) (Provider, error) {
	p, err := s.Get(ctx, tenantID, fingerprint)
	if err != nil {
		return Provider{}, err
	}
	arn, err := awskms.ParseARN(p.ARN)
	if err != nil {
		return Provider{}, fmt.Errorf("keyprovider: stored ARN does not parse: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	var refused *RefusedError
	if err := s.inspect(ctx, &p, arn, false); err != nil && !errors.As(err, &refused) {
		return Provider{}, err
	}
	if err := s.cfg.Store.UpdateKeyProvider(ctx, p); err != nil {
		return Provider{}, &keyring.StoreError{Op: "updating key provider", Err: err}
	}
	return p, nil
}

// inspect describes the key and probes the required actions in its region
// and the DR region, filling p's multi-region and compliance fields. With
// strict (registration), a key that cannot serve is refused; without
// (test), what is wrong is recorded as the compliance error.
func (s *Service) inspect(ctx context.Context, p *Provider, arn awskms.ARN, strict bool) error {
	ctx = kms.WithTenant(ctx, p.TenantID)
	p.TestedAt = s.now()
	desc, err := s.cfg.Inspector.DescribeKey(ctx, arn)
	if err != nil {
		if strict || !errors.Is(err, kms.ErrAccessDenied) && !errors.Is(err, kms.ErrKeyNotFound) {
			if errors.Is(err, kms.ErrKeyNotFound) {
				return &RefusedError{Reason: fmt.Sprintf("no key %s exists in %s, or this service may not see it", arn.KeyID, arn.Region)}
			}
			return err
		}
		p.DRCompliant = false
		p.Compliance = ComplianceError{Code: CodeNotCompliant, Region: arn.Region, Message: "DescribeKey failed: " + kms.Outcome(err)}
		return nil
	}
	if problem := unusable(desc); problem != "" {
		if strict {
			return &RefusedError{Reason: problem}
		}
		p.DRCompliant = false
		p.Compliance = ComplianceError{Code: CodeNotCompliant, Region: arn.Region, Message: problem}
		return nil
	}
	p.MultiRegion = desc.MultiRegion || arn.MultiRegion()
	if strict && !p.MultiRegion && !s.cfg.AllowSingleRegion {
		return &RefusedError{Reason: "the key is not a multi-region key: create a multi-region key (mrk-) with a replica in the DR region, or ask the operator to allow single-region keys"}
	}
	p.Replicas = p.Replicas[:0]
	for _, r := range desc.Replicas {
		p.Replicas = append(p.Replicas, Replica{ARN: r.ARN, Region: r.Region})
	}
	dr := DRRegion(s.cfg.DRRegions, s.cfg.Region, arn.Region)
	if p.MultiRegion && dr != "" && !hasReplica(p.Replicas, dr) {
		// DescribeKey may not list replicas (local-kms, a policy without
		// kms:DescribeKey on the replica): the probe below decides.
		p.Replicas = append(p.Replicas, Replica{ARN: arn.InRegion(dr).String(), Region: dr})
	}

	b := kms.Binding{kms.BindingTenant: p.TenantID, kms.BindingKeyID: "registration-probe"}
	p.Compliance = ComplianceError{}
	for _, r := range s.cfg.Inspector.Probe(ctx, arn, arn.Region, b) {
		if r.Err != nil {
			if strict {
				if errors.Is(r.Err, kms.ErrAccessDenied) {
					return fmt.Errorf("%s refused in %s: %w", r.Action, r.Region, r.Err)
				}
				return r.Err
			}
			p.Compliance = ComplianceError{Code: CodeNotCompliant, Region: r.Region, Message: fmt.Sprintf("the key policy or state refuses %s in %s (%s)", r.Action, r.Region, kms.Outcome(r.Err))}
			p.DRCompliant = false
			return nil
		}
	}
	p.DRCompliant = false
	switch {
	case dr == "":
		p.Compliance = ComplianceError{Code: CodeNotCompliant, Region: arn.Region, Message: "no DR region is configured for " + arn.Region}
	case !p.MultiRegion:
		p.Compliance = ComplianceError{Code: CodeNotCompliant, Region: dr, Message: "the key is not a multi-region key: it has no replica in " + dr}
	default:
		for _, r := range s.cfg.Inspector.Probe(ctx, arn.InRegion(dr), dr, b) {
			if r.Err != nil {
				p.Compliance = ComplianceError{Code: CodeNotCompliant, Region: dr, Message: fmt.Sprintf("the key policy or state refuses %s in %s (%s)", r.Action, dr, kms.Outcome(r.Err))}
				return nil
			}
		}
		p.DRCompliant = true
	}
	return nil
}

func hasReplica(rs []Replica, region string) bool {
	for _, r := range rs {
		if r.Region == region {
			return true
		}
	}
	return false
}

// unusable says why a key cannot wrap tenant keys, or "" if it can.
func unusable(d awskms.KeyDescription) string {
	switch {
	case d.Spec != "" && d.Spec != "SYMMETRIC_DEFAULT":
		return fmt.Sprintf("the key is asymmetric or not for encryption (%s): register a symmetric SYMMETRIC_DEFAULT key", d.Spec)
	case d.Usage != "" && d.Usage != "ENCRYPT_DECRYPT":
		return fmt.Sprintf("the key's usage is %s: register an ENCRYPT_DECRYPT key", d.Usage)
	case d.State != kms.KeyEnabled:
		return fmt.Sprintf("the key is not enabled (%s): enable it in AWS KMS first", d.State)
	}
	return ""
}

// Update changes a provider's name or description (nil: unchanged).
// Errors: ErrNotFound, *keyring.InputError.
func (s *Service) Update(ctx context.Context, tenantID, fingerprint string, name, description *string) error {
	p, err := s.Get(ctx, tenantID, fingerprint)
	if err != nil {
		return err
	}
	if name != nil {
		if err := validateText("name", *name, true, 256); err != nil {
			return err
		}
		p.Name = *name
	}
	if description != nil {
		if err := validateText("description", *description, false, 1024); err != nil {
			return err
		}
		p.Description = *description
	}
	if err := s.cfg.Store.UpdateKeyProvider(ctx, p); err != nil {
		if errors.Is(err, keyring.ErrNotFound) {
			return ErrNotFound
		}
		return &keyring.StoreError{Op: "updating key provider", Err: err}
	}
	return nil
}

// Delete removes a provider that is neither current nor wrapping any of
// the tenant's keys. Errors: ErrNotFound, ErrInUse.
func (s *Service) Delete(ctx context.Context, tenantID, fingerprint string) error {
	if _, err := s.Get(ctx, tenantID, fingerprint); err != nil {
		return err
	}
	t, err := s.cfg.Tenants.Tenant(ctx, tenantID)
	if err != nil {
		return err
	}
	if t.Provider == Ref(fingerprint) {
		return fmt.Errorf("%w: it is the tenant's current key provider; reset to the default provider or migrate to another key first", ErrInUse)
	}
	counts, err := s.cfg.Tenants.CipherKeyCounts(ctx, tenantID)
	if err != nil {
		return err
	}
	if n := counts[Ref(fingerprint)]; n > 0 {
		return fmt.Errorf("%w: it still wraps %d of the tenant's data keys; wait for the migration away from it to complete", ErrInUse, n)
	}
	if err := s.cfg.Store.DeleteKeyProvider(ctx, tenantID, fingerprint); err != nil {
		if errors.Is(err, keyring.ErrNotFound) {
			return ErrNotFound
		}
		return &keyring.StoreError{Op: "deleting key provider", Err: err}
	}
	s.cfg.Logger.InfoContext(ctx, "key provider deleted", "tenant", tenantID, "fingerprint", fingerprint)
	return nil
}
