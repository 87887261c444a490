// Package registry routes a key provider Ref to the provider behind it: the
// internal KMS for "internal", and (once registered) customer managed keys.
// It is the keyring.Providers that the server wires in.
package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/awskms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// Registry is the set of key providers the service can use.
type Registry struct {
	internal *internalkms.Service
	observe  Observer
	wrap     func(kms.Provider) kms.Provider

	// Customer managed keys: the tenants' registrations, and the AWS KMS
	// client that serves them. Resolved providers are cached: a
	// fingerprint always names the same ARN.
	cmkStore keyprovider.Store
	aws      *awskms.Client
	cmks     sync.Map // tenantID + "\x00" + ref → kms.Provider
	// region and drs find a multi-region key's replica to fail over to.
	region string
	drs    map[string]string
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

// WithAWS serves customer managed keys ("cmk:<fingerprint>" refs) that
// tenants registered in store, through client.
func WithAWS(store keyprovider.Store, client *awskms.Client) Option {
	return func(r *Registry) { r.cmkStore, r.aws = store, client }
}

// WithDRRegions makes multi-region keys fail over to their replica in
// the DR region (keyprovider.DRRegion) when their own region has an
// outage; region is the service's own region.
func WithDRRegions(region string, drs map[string]string) Option {
	return func(r *Registry) { r.region, r.drs = region, drs }
}

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
func (r *Registry) Provider(ctx context.Context, tenantID, text string) (kms.Provider, error) {
	ref, err := kms.ParseRef(text)
	if err != nil {
		return nil, keyring.ErrUnknownProvider
	}
	var p kms.Provider
	fp, cmk := ref.Fingerprint()
	switch {
	case ref.IsInternal():
		p = r.internal.ForTenant(tenantID)
	case cmk && r.aws != nil:
		if p, err = r.cmk(ctx, tenantID, ref, fp); err != nil {
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

func (r *Registry) cmk(ctx context.Context, tenantID string, ref kms.Ref, fp string) (kms.Provider, error) {
	key := tenantID + "\x00" + ref.String()
	if p, ok := r.cmks.Load(key); ok {
		return p.(kms.Provider), nil
	}
	kp, err := r.cmkStore.KeyProvider(ctx, tenantID, fp)
	if errors.Is(err, keyring.ErrNotFound) {
		return nil, keyring.ErrUnknownProvider
	}
	if err != nil {
		return nil, &keyring.StoreError{Op: "reading key provider", Err: err}
	}
	arn, err := awskms.ParseARN(kp.ARN)
	if err != nil {
		return nil, fmt.Errorf("registry: stored ARN of %s: %w", ref, err)
	}
	var replicas []string
	if dr := keyprovider.DRRegion(r.drs, r.region, arn.Region); dr != "" && (kp.MultiRegion || arn.MultiRegion()) {
		replicas = append(replicas, dr)
	}
	p := r.aws.Provider(ref, arn, replicas...)
	r.cmks.Store(key, p)
	return p, nil
}

// Prefix implements keyring.Providers.
func (r *Registry) Prefix(tenantID, ref string) string {
	if fp, ok := kms.FingerprintOfText(ref); ok {
		return envelope.CMKPrefix(fp)
	}
	return envelope.InternalPrefix(tenantID)
}

// Forget implements keyring.TenantForgetter: it drops the tenant's cached
// KEKs and providers after the tenant was deleted.
func (r *Registry) Forget(tenantID string) {
	r.internal.Forget(tenantID)
	r.cmks.Range(func(k, _ any) bool {
		if strings.HasPrefix(k.(string), tenantID+"\x00") {
			r.cmks.Delete(k)
		}
		return true
	})
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
