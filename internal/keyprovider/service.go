package keyprovider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// Fingerprint is the stable id of a key provider entry: the first 16
// bytes of the SHA-256 of the canonical key identity (ARN), in lowercase
// hex.
func Fingerprint(arn string) string {
	sum := sha256.Sum256([]byte(arn))
	return hex.EncodeToString(sum[:16])
}

// Tenants is what the service needs of the tenants' records (a
// keyring.Store; errors as its methods').
type Tenants interface {
	Tenant(ctx context.Context, id string) (keyring.Tenant, error)
	CountCipherKeys(ctx context.Context, tenantID string) (map[kms.Ref]int, error)
}

// Secrets wraps the kinds' secrets (Settings.Secret) for storage: the
// internal KMS (an *internalkms.Service).
type Secrets interface {
	ForTenant(tenantID string) kms.Provider
}

// DefaultKind is the kind of a registration that names none, as stores
// keep it for registrations made before kinds existed: AWS KMS, the Qlik
// API's only kind then.
const DefaultKind = "AWS-KMS"

// Config configures a Service.
type Config struct {
	Store   Store
	Tenants Tenants
	// Kinds are the provider kinds this service serves, by Name.
	Kinds []Kind
	// Secrets wraps the kinds' secrets; required when a kind has any.
	Secrets Secrets
	// Timeout bounds the key manager calls of one registration or test.
	Timeout time.Duration
	Logger  *slog.Logger
	Now     func() time.Time
}

// Service manages tenants' key providers: it is the one owner of their
// registrations. The registry opens providers through it, the key monitor
// inspects keys through it, and migrations stamp their promotion through
// it.
type Service struct {
	cfg   Config
	kinds map[string]Kind
	// opened caches the providers Open returned, by tenant and Ref, until
	// the registration's settings change or it is deleted.
	opened sync.Map // openedKey → *opened
}

type openedKey struct {
	tenantID string
	ref      kms.Ref
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Tenants == nil {
		return nil, errors.New("keyprovider: Store and Tenants are required")
	}
	kinds := make(map[string]Kind, len(cfg.Kinds))
	for _, k := range cfg.Kinds {
		if k == nil || k.Name() == "" {
			return nil, errors.New("keyprovider: a kind without a name")
		}
		if _, dup := kinds[k.Name()]; dup {
			return nil, fmt.Errorf("keyprovider: kind %s given twice", k.Name())
		}
		kinds[k.Name()] = k
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
	return &Service{cfg: cfg, kinds: kinds}, nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

// Registration is what a tenant admin gives to register a key.
type Registration struct {
	// Kind is the kind's Name (the API's "keyprovider"); "" means
	// DefaultKind.
	Kind string
	// ARN is the key's identity, as the kind's ParseKey reads it.
	ARN         string
	Name        string
	Description string
	// Settings are the request's kind-specific members, by name: a
	// Configurer's kind takes the one its Field names; any other is
	// refused (*fault.InputError).
	Settings map[string]json.RawMessage
}

// List returns the tenant's registered providers, oldest first.
func (s *Service) List(ctx context.Context, tenantID string) ([]Provider, error) {
	ps, err := s.cfg.Store.ListKeyProviders(ctx, tenantID)
	if err != nil {
		return nil, &fault.StoreError{Op: "listing key providers", Err: err}
	}
	for i := range ps {
		s.parse(&ps[i])
	}
	return ps, nil
}

// Get returns one provider. Errors: ErrNotFound.
func (s *Service) Get(ctx context.Context, tenantID, fingerprint string) (Provider, error) {
	p, err := s.cfg.Store.KeyProvider(ctx, tenantID, fingerprint)
	if errors.Is(err, fault.ErrNotFound) {
		return Provider{}, ErrNotFound
	}
	if err != nil {
		return Provider{}, &fault.StoreError{Op: "reading key provider", Err: err}
	}
	s.parse(&p)
	return p, nil
}

// parse fills a stored registration's Kind (DefaultKind for one made
// before kinds existed) and Key; a key its kind cannot parse (or a kind
// this service was not given) leaves Key nil.
func (s *Service) parse(p *Provider) {
	if p.Kind == "" {
		p.Kind = DefaultKind
	}
	if k, ok := s.kinds[p.Kind]; ok {
		if key, err := k.ParseKey(p.ARN); err == nil {
			p.Key = key
		}
	}
}

// kindOf returns the kind of a stored registration.
func (s *Service) kindOf(p Provider) (Kind, error) {
	k, ok := s.kinds[p.Kind]
	if !ok {
		return nil, fmt.Errorf("%w: %q (key provider %s)", ErrUnknownKind, p.Kind, p.Fingerprint)
	}
	if p.Key == nil {
		return nil, fmt.Errorf("keyprovider: the stored key of %s does not parse as %s", p.Fingerprint, p.Kind)
	}
	return k, nil
}

func validateText(field, v string, required bool, max int) error {
	if required && strings.TrimSpace(v) == "" {
		return &fault.InputError{Field: field, Reason: "is required"}
	}
	if len(v) > max || !utf8.ValidString(v) {
		return &fault.InputError{Field: field, Reason: fmt.Sprintf("must be valid UTF-8 of at most %d bytes", max)}
	}
	return nil
}

// Register validates a key with its key manager and registers it for
// the tenant, not as its current provider.
// Errors: *fault.InputError, ErrMalformedARN, ErrUnknownKind, ErrExists,
// keyring.ErrTenantNotFound, *RefusedError, kms errors (access denied,
// unavailable).
func (s *Service) Register(ctx context.Context, tenantID string, r Registration) (Provider, error) {
	if err := validateText("name", r.Name, true, 256); err != nil {
		return Provider{}, err
	}
	if err := validateText("description", r.Description, false, 1024); err != nil {
		return Provider{}, err
	}
	if r.Kind == "" {
		r.Kind = DefaultKind
	}
	kind, ok := s.kinds[r.Kind]
	if !ok {
		return Provider{}, &fault.InputError{Field: "keyprovider", Reason: fmt.Sprintf("names no key provider kind this service supports (%q)", r.Kind)}
	}
	key, err := kind.ParseKey(r.ARN)
	if err != nil {
		return Provider{}, err
	}
	var set Settings
	c, configurable := kind.(Configurer)
	for field := range r.Settings {
		if !configurable || field != c.Field() {
			return Provider{}, &fault.InputError{Field: field, Reason: "is not taken by key providers of kind " + r.Kind}
		}
	}
	if configurable {
		if set, err = c.Configure(key, r.Settings[c.Field()]); err != nil {
			return Provider{}, err
		}
		defer set.Secret.Destroy()
	}
	t, err := s.tenant(ctx, tenantID)
	if err != nil {
		return Provider{}, err
	}
	if t.Edition != keyring.EditionEnterprise {
		return Provider{}, &RefusedError{Reason: fmt.Sprintf("the %s edition cannot use a customer managed key; only enterprise tenants can", t.Edition)}
	}
	fp := Fingerprint(key.String())
	existing, err := s.List(ctx, tenantID)
	if err != nil {
		return Provider{}, err
	}
	for _, e := range existing {
		if e.Fingerprint == fp {
			return Provider{}, ErrExists
		}
		if c, ok := kind.(KeyComparer); ok && e.Kind == r.Kind && e.Key != nil && c.SameKey(key, e.Key) {
			return Provider{}, fmt.Errorf("%w: %s is a replica of the multi-region key already registered as %q", ErrExists, key, e.Name)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	p := Provider{TenantID: tenantID, Fingerprint: fp, Kind: r.Kind, ARN: key.String(), Key: key, Config: set.Config,
		Name: r.Name, Description: r.Description, CreatedAt: s.now()}
	if set.Secret != nil {
		if p.WrappedSecret, err = s.wrapSecret(ctx, p, set.Secret); err != nil {
			return Provider{}, err
		}
	}
	if err := s.test(ctx, &p, set.Secret, true); err != nil {
		return Provider{}, err
	}
	if err := s.cfg.Store.InsertKeyProvider(ctx, p); err != nil {
		if errors.Is(err, fault.ErrExists) {
			return Provider{}, ErrExists
		}
		return Provider{}, &fault.StoreError{Op: "storing key provider", Err: err}
	}
	s.cfg.Logger.InfoContext(ctx, "key provider registered", "tenant", tenantID, "fingerprint", fp, "kind", p.Kind, "arn", p.ARN,
		"multi_region", p.MultiRegion, "dr_compliant", p.DRCompliant)
	return p, nil
}

// tenant reads the tenant. Errors: keyring.ErrTenantNotFound,
// *fault.StoreError.
func (s *Service) tenant(ctx context.Context, id string) (keyring.Tenant, error) {
	t, err := s.cfg.Tenants.Tenant(ctx, id)
	if errors.Is(err, fault.ErrNotFound) || errors.Is(err, keyring.ErrTenantNotFound) {
		return keyring.Tenant{}, keyring.ErrTenantNotFound
	}
	if err != nil {
		return keyring.Tenant{}, &fault.StoreError{Op: "reading tenant", Err: err}
	}
	return t, nil
}

// Test checks the provider's key again (state, required actions in its
// region and the DR region) and records what it found.
// Errors: ErrNotFound, kms errors (unavailable, timeout).
func (s *Service) Test(ctx context.Context, tenantID, fingerprint string) (Provider, error) {
	p, err := s.Get(ctx, tenantID, fingerprint)
	if err != nil {
		return Provider{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	sec, err := s.unwrapSecret(ctx, p)
	if err != nil {
		return Provider{}, err
	}
	defer sec.Destroy()
	var refused *RefusedError
	if err := s.test(ctx, &p, sec, false); err != nil && !errors.As(err, &refused) {
		return Provider{}, err
	}
	if err := s.cfg.Store.UpdateKeyProvider(ctx, p); err != nil {
		return Provider{}, &fault.StoreError{Op: "updating key provider", Err: err}
	}
	return p, nil
}

// test has p's kind check its key (a kind that cannot is taken as is),
// and stamps TestedAt.
func (s *Service) test(ctx context.Context, p *Provider, sec *secret.Bytes, strict bool) error {
	kind, err := s.kindOf(*p)
	if err != nil {
		return err
	}
	p.TestedAt = s.now()
	tester, ok := kind.(Tester)
	if !ok {
		return nil
	}
	t := Target{Provider: *p, Secret: sec}
	err = tester.Test(ctx, &t, strict)
	p.MultiRegion, p.Replicas, p.DRCompliant, p.Compliance = t.MultiRegion, t.Replicas, t.DRCompliant, t.Compliance
	return err
}

// secretBinding ties a registration's wrapped secret to the tenant and
// the registration.
func secretBinding(p Provider) kms.Binding {
	return kms.Binding{kms.BindingTenant: p.TenantID, kms.BindingKeyID: "keyprovider:" + p.Fingerprint}
}

func (s *Service) wrapSecret(ctx context.Context, p Provider, sec *secret.Bytes) ([]byte, error) {
	if s.cfg.Secrets == nil {
		return nil, errors.New("keyprovider: the kind keeps a secret, but the service has no Secrets to wrap it")
	}
	blob, err := sealSecret(ctx, s.cfg.Secrets.ForTenant(p.TenantID), sec, secretBinding(p))
	if err != nil {
		return nil, fmt.Errorf("keyprovider: wrapping the key provider's secret: %w", err)
	}
	return blob, nil
}

// unwrapSecret returns p's secret (nil if it has none); the caller
// destroys it.
func (s *Service) unwrapSecret(ctx context.Context, p Provider) (*secret.Bytes, error) {
	if len(p.WrappedSecret) == 0 {
		return nil, nil
	}
	if s.cfg.Secrets == nil {
		return nil, errors.New("keyprovider: a stored secret, but the service has no Secrets to unwrap it")
	}
	sec, err := openSecret(ctx, s.cfg.Secrets.ForTenant(p.TenantID), p.WrappedSecret, secretBinding(p))
	if err != nil {
		return nil, fmt.Errorf("keyprovider: unwrapping the secret of key provider %s: %w", p.Fingerprint, err)
	}
	return sec, nil
}

// Update changes a provider's name or description (nil: unchanged).
// Errors: ErrNotFound, *fault.InputError.
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
		if errors.Is(err, fault.ErrNotFound) {
			return ErrNotFound
		}
		return &fault.StoreError{Op: "updating key provider", Err: err}
	}
	return nil
}

// Delete removes a provider that is neither current nor wrapping any of
// the tenant's keys. Errors: ErrNotFound, ErrInUse.
func (s *Service) Delete(ctx context.Context, tenantID, fingerprint string) error {
	if _, err := s.Get(ctx, tenantID, fingerprint); err != nil {
		return err
	}
	t, err := s.tenant(ctx, tenantID)
	if err != nil {
		return err
	}
	ref := kms.MustCMKRef(fingerprint)
	if t.Provider == ref {
		return fmt.Errorf("%w: it is the tenant's current key provider; reset to the default provider or migrate to another key first", ErrInUse)
	}
	counts, err := s.cfg.Tenants.CountCipherKeys(ctx, tenantID)
	if err != nil {
		return &fault.StoreError{Op: "counting cipherkeys", Err: err}
	}
	if n := counts[ref]; n > 0 {
		return fmt.Errorf("%w: it still wraps %d of the tenant's data keys; wait for the migration away from it to complete", ErrInUse, n)
	}
	if err := s.cfg.Store.DeleteKeyProvider(ctx, tenantID, fingerprint); err != nil {
		if errors.Is(err, fault.ErrNotFound) {
			return ErrNotFound
		}
		return &fault.StoreError{Op: "deleting key provider", Err: err}
	}
	s.drop(openedKey{tenantID, ref})
	s.cfg.Logger.InfoContext(ctx, "key provider deleted", "tenant", tenantID, "fingerprint", fingerprint)
	return nil
}

// PatchOp is one replacement of a kind-specific setting: Path is the
// JSON Patch path ("/kmip/serverCA"), Value its new JSON value.
type PatchOp struct {
	Path  string
	Value json.RawMessage
}

// Patch replaces kind-specific settings of a registration (paths below
// "/"+Field of its kind), tests the result as a test does, and stores it.
// Errors: ErrNotFound, *fault.InputError (a path the kind does not
// take), the kind's Patch errors (ErrMalformedARN), the kind's Test errors
// (*RefusedError, kms errors): nothing is stored then.
func (s *Service) Patch(ctx context.Context, tenantID, fingerprint string, ops []PatchOp) (Provider, error) {
	p, err := s.Get(ctx, tenantID, fingerprint)
	if err != nil {
		return Provider{}, err
	}
	kind, err := s.kindOf(p)
	if err != nil {
		return Provider{}, err
	}
	c, ok := kind.(Configurer)
	if !ok {
		return Provider{}, &fault.InputError{Field: "path", Reason: "key providers of kind " + p.Kind + " have no settings to replace"}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	sec, err := s.unwrapSecret(ctx, p)
	if err != nil {
		return Provider{}, err
	}
	set := Settings{Config: p.Config, Secret: sec}
	defer func() { set.Secret.Destroy() }()
	prefix := "/" + c.Field()
	for _, op := range ops {
		sub, ok := strings.CutPrefix(op.Path, prefix)
		if !ok || !strings.HasPrefix(sub, "/") {
			return Provider{}, &fault.InputError{Field: "path", Reason: fmt.Sprintf("%q is not a setting of key providers of kind %s", op.Path, p.Kind)}
		}
		next, err := c.Patch(set, sub, op.Value)
		if err != nil {
			return Provider{}, err
		}
		if next.Secret != set.Secret {
			set.Secret.Destroy()
		}
		set = next
	}
	p.Config = set.Config
	if set.Secret == nil {
		p.WrappedSecret = nil
	} else if set.Secret != sec {
		if p.WrappedSecret, err = s.wrapSecret(ctx, p, set.Secret); err != nil {
			return Provider{}, err
		}
	}
	if err := s.test(ctx, &p, set.Secret, true); err != nil {
		return Provider{}, err
	}
	if err := s.cfg.Store.UpdateKeyProvider(ctx, p); err != nil {
		if errors.Is(err, fault.ErrNotFound) {
			return Provider{}, ErrNotFound
		}
		return Provider{}, &fault.StoreError{Op: "updating key provider", Err: err}
	}
	s.drop(openedKey{tenantID, kms.MustCMKRef(fingerprint)})
	s.cfg.Logger.InfoContext(ctx, "key provider settings replaced", "tenant", tenantID, "fingerprint", fingerprint, "kind", p.Kind)
	return p, nil
}

// SettingsOf returns the member name and value under which the API shows
// p's kind-specific settings; "" when its kind has none to show.
func (s *Service) SettingsOf(p Provider) (field string, config json.RawMessage) {
	c, ok := s.kinds[p.Kind].(Configurer)
	if !ok || len(p.Config) == 0 {
		return "", nil
	}
	return c.Field(), json.RawMessage(p.Config)
}

// KindNames lists the Names of the kinds this service serves, sorted.
func (s *Service) KindNames() []string {
	names := make([]string, 0, len(s.kinds))
	for n := range s.kinds {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
