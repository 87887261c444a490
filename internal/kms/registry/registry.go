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
)

// Registry is the set of key providers the service can use.
type Registry struct {
	internal *internalkms.Service
}

var (
	_ keyring.Providers       = (*Registry)(nil)
	_ keyring.TenantForgetter = (*Registry)(nil)
)

// New returns a registry with the internal KMS.
func New(internal *internalkms.Service) *Registry {
	return &Registry{internal: internal}
}

// Provider implements keyring.Providers.
func (r *Registry) Provider(_ context.Context, tenantID, ref string) (kms.Provider, error) {
	if ref == internalkms.Ref {
		return r.internal.ForTenant(tenantID), nil
	}
	return nil, keyring.ErrUnknownProvider
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
