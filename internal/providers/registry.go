// Package providers routes a key provider Ref to the provider behind it:
// the internal KMS, or a customer managed key the tenant registered, which
// the key-provider service (package keyprovider) opens through its kind.
// Its Registry is the keyring.Providers that the composition root wires
// in; it knows no concrete kind of customer managed key.
package providers

import (
	"context"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// Registry is the set of key providers the service can use.
type Registry struct {
	internal Internal
	observe  Observer
	wrap     func(kms.Provider) kms.Provider

	// Customer managed keys: opened (and kept) by cmks.
	cmks Opener
}

// Internal is the internal KMS (an *internalkms.Service): the default
// provider, one per tenant.
type Internal interface {
	// ForTenant returns the provider of the tenant's KEK; it calls
	// nothing and cannot fail.
	ForTenant(tenantID string) kms.Provider
	// Forget drops what is cached of the tenant's KEKs.
	Forget(tenantID string)
}

// Opener opens the customer managed keys that tenants registered (a
// *keyprovider.Service).
type Opener interface {
	// Open returns the provider ref names for the tenant; it calls no key
	// manager, and it is called on every use: it keeps what it opened. Errors: keyring.ErrUnknownProvider for a Ref that names no
	// registration; others (the store's) are passed on.
	Open(ctx context.Context, tenantID string, ref kms.Ref) (kms.Provider, error)
}

// Observer is told of every call to a provider: which provider (its
// Ref), which operation, and its error (nil on success). It must be fast;
// it is how the server counts KMS calls in its metrics.
type Observer func(ref kms.Ref, op string, err error)

// Option configures a Registry.
type Option func(*Registry)

// WithObserver reports every provider call to fn.
func WithObserver(fn Observer) Option { return func(r *Registry) { r.observe = fn } }

// WithProviderWrapper wraps every provider the registry hands out in
// wrap (after the observer), e.g. to trace its calls.
func WithProviderWrapper(wrap func(kms.Provider) kms.Provider) Option {
	return func(r *Registry) { r.wrap = wrap }
}

// WithCMKs serves the customer managed keys ("cmk:" Refs) that tenants
// registered, opened by o.
func WithCMKs(o Opener) Option { return func(r *Registry) { r.cmks = o } }

var (
	_ keyring.Providers       = (*Registry)(nil)
	_ keyring.TenantForgetter = (*Registry)(nil)
)

// New returns a registry with the internal KMS.
func New(internal Internal, opts ...Option) *Registry {
	r := &Registry{internal: internal}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Provider implements keyring.Providers.
func (r *Registry) Provider(ctx context.Context, tenantID string, ref kms.Ref) (kms.Provider, error) {
	var p kms.Provider
	var err error
	_, cmk := ref.Fingerprint()
	switch {
	case ref.IsInternal():
		p = r.internal.ForTenant(tenantID)
	case cmk && r.cmks != nil:
		if p, err = r.cmks.Open(ctx, tenantID, ref); err != nil {
			return nil, err
		}
	default:
		return nil, keyring.ErrUnknownProvider
	}
	if r.observe != nil {
		p = observed{p, r.observe}
	}
	if r.wrap != nil {
		p = r.wrap(p)
	}
	return p, nil
}

// Prefix implements keyring.Providers.
func (r *Registry) Prefix(tenantID string, ref kms.Ref) string {
	if fp, ok := ref.Fingerprint(); ok {
		return envelope.CMKPrefix(fp)
	}
	return envelope.InternalPrefix(tenantID)
}

// Forget implements keyring.TenantForgetter: it drops the tenant's cached
// KEKs and providers after the tenant was deleted.
func (r *Registry) Forget(tenantID string) {
	r.internal.Forget(tenantID)
	if f, ok := r.cmks.(keyring.TenantForgetter); ok {
		f.Forget(tenantID)
	}
}

// observed reports each call of a provider to an Observer.
type observed struct {
	kms.Provider
	observe Observer
}

func (o observed) GenerateDataKey(ctx context.Context, b kms.Binding) (*secret.Bytes, kms.Wrapped, error) {
	k, w, err := o.Provider.GenerateDataKey(ctx, b)
	o.observe(o.Ref(), "GenerateDataKey", err)
	return k, w, err
}

func (o observed) Wrap(ctx context.Context, plaintext *secret.Bytes, b kms.Binding) (kms.Wrapped, error) {
	w, err := o.Provider.Wrap(ctx, plaintext, b)
	o.observe(o.Ref(), "Wrap", err)
	return w, err
}

func (o observed) Unwrap(ctx context.Context, w kms.Wrapped, b kms.Binding) (*secret.Bytes, error) {
	k, err := o.Provider.Unwrap(ctx, w, b)
	o.observe(o.Ref(), "Unwrap", err)
	return k, err
}

func (o observed) Describe(ctx context.Context) (kms.KeyInfo, error) {
	info, err := o.Provider.Describe(ctx)
	o.observe(o.Ref(), "Describe", err)
	return info, err
}
