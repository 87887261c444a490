// Package registry routes a key provider Ref to the provider behind it: the
// internal KMS for "internal", and (once registered) customer managed keys.
// It is the keyring.Providers that the server wires in.
package registry

import (
	"context"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// Registry is the set of key providers the service can use.
type Registry struct {
	internal *internalkms.Service
	observe  Observer
}

// Observer is told of every call to a provider: which provider (its
// Ref), which operation, and its error (nil on success). It must be fast;
// it is how the server counts KMS calls in its metrics.
type Observer func(ref, op string, err error)

// Option configures a Registry.
type Option func(*Registry)

// WithObserver reports every provider call to fn.
func WithObserver(fn Observer) Option { return func(r *Registry) { r.observe = fn } }

var (
	_ keyring.Providers       = (*Registry)(nil)
	_ keyring.TenantForgetter = (*Registry)(nil)
)

// New returns a registry with the internal KMS.
func New(internal *internalkms.Service, opts ...Option) *Registry {
	r := &Registry{internal: internal}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Provider implements keyring.Providers.
func (r *Registry) Provider(_ context.Context, tenantID, ref string) (kms.Provider, error) {
	var p kms.Provider
	switch ref {
	case internalkms.Ref:
		p = r.internal.ForTenant(tenantID)
	default:
		return nil, keyring.ErrUnknownProvider
	}
	if r.observe != nil {
		p = observed{p, r.observe}
	}
	return p, nil
}

// Prefix implements keyring.Providers.
func (r *Registry) Prefix(tenantID, ref string) string {
	if ref == internalkms.Ref {
		return envelope.InternalPrefix(tenantID)
	}
	return envelope.CMKPrefix(ref)
}

// Forget implements keyring.TenantForgetter: it drops the tenant's cached
// KEKs after the tenant was deleted.
func (r *Registry) Forget(tenantID string) {
	r.internal.Forget(tenantID)
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
