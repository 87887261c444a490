package providers_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
	"github.com/tenantcrypt/tenantcrypt/internal/providers"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
	"github.com/tenantcrypt/tenantcrypt/internal/store/sqlite"
)

// fakeCMK is a customer managed key provider that wraps by copying.
type fakeCMK struct {
	kms.Provider
	ref  kms.Ref
	fail error
}

func (p fakeCMK) Ref() kms.Ref { return p.ref }

func (p fakeCMK) Wrap(_ context.Context, k *secret.Bytes, _ kms.Binding) (kms.Wrapped, error) {
	if p.fail != nil {
		return kms.Wrapped{}, p.fail
	}
	return kms.Wrapped{KeyVersion: "1", Blob: append([]byte(nil), k.Reveal()...)}, nil
}

func (p fakeCMK) Describe(context.Context) (kms.KeyInfo, error) {
	return kms.KeyInfo{State: kms.KeyEnabled}, p.fail
}

// opener is a providers.Opener over a set of registered Refs.
type opener struct {
	mu        sync.Mutex
	known     map[string]error // tenant + ref → the provider's failure
	opens     int
	forgotten []string
}

func (o *opener) Open(_ context.Context, tenantID string, ref kms.Ref) (kms.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.opens++
	fail, ok := o.known[tenantID+" "+ref.String()]
	if !ok {
		return nil, keyring.ErrUnknownProvider
	}
	return fakeCMK{ref: ref, fail: fail}, nil
}

func (o *opener) Forget(tenantID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.forgotten = append(o.forgotten, tenantID)
}

type call struct {
	ref kms.Ref
	op  string
	err error
}

func newRegistry(t *testing.T, opts ...providers.Option) (*providers.Registry, *opener) {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	roots, err := internalkms.LoadOrCreateRootKeyFile(filepath.Join(dir, "root-keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	internal := internalkms.New(roots, st)
	t.Cleanup(internal.Close)
	o := &opener{known: map[string]error{
		"acme " + kms.MustCMKRef("f1").String(): nil,
		"acme " + kms.MustCMKRef("f2").String(): &kms.Error{Op: "Wrap", Kind: kms.ErrKeyDisabled},
	}}
	return providers.New(internal, append([]providers.Option{providers.WithCMKs(o)}, opts...)...), o
}

func TestProviderRoutesRefs(t *testing.T) {
	r, o := newRegistry(t)
	ctx := t.Context()
	for _, tc := range []struct {
		name, tenant string
		ref, want    kms.Ref
		err          error
	}{
		{"internal", "acme", kms.InternalRef(), kms.InternalRef(), nil},
		{"registered cmk", "acme", kms.MustCMKRef("f1"), kms.MustCMKRef("f1"), nil},
		{"another tenant's cmk", "other", kms.MustCMKRef("f1"), kms.Ref{}, keyring.ErrUnknownProvider},
		{"unregistered cmk", "acme", kms.MustCMKRef("f9"), kms.Ref{}, keyring.ErrUnknownProvider},
		{"zero", "acme", kms.Ref{}, kms.Ref{}, keyring.ErrUnknownProvider},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := r.Provider(ctx, tc.tenant, tc.ref)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Provider(%s, %q) error = %v, want %v", tc.tenant, tc.ref, err, tc.err)
			}
			if err == nil && p.Ref() != tc.want {
				t.Errorf("Provider(%s, %q).Ref() = %v, want %v", tc.tenant, tc.ref, p.Ref(), tc.want)
			}
		})
	}
	if o.opens != 3 {
		t.Errorf("the opener was asked %d times, want 3 (the cmk refs only)", o.opens)
	}

	r.Forget("acme")
	if len(o.forgotten) != 1 || o.forgotten[0] != "acme" {
		t.Errorf("Forget reached the opener as %q, want [acme]", o.forgotten)
	}

	without := providers.New(nil)
	if _, err := without.Provider(ctx, "acme", kms.MustCMKRef("f1")); !errors.Is(err, keyring.ErrUnknownProvider) {
		t.Errorf("a registry without CMKs: %v, want ErrUnknownProvider", err)
	}
}

func TestObserverAndWrapper(t *testing.T) {
	var mu sync.Mutex
	var calls []call
	wrapped := 0
	r, _ := newRegistry(t,
		providers.WithObserver(func(ref kms.Ref, op string, err error) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, call{ref, op, err})
		}),
		providers.WithProviderWrapper(func(p kms.Provider) kms.Provider { wrapped++; return p }))
	ctx := t.Context()
	key := secret.New(make([]byte, kms.DataKeySize))
	defer key.Destroy()
	b := kms.Binding{kms.BindingTenant: "acme", kms.BindingKeyID: "k"}
	for _, ref := range []kms.Ref{kms.InternalRef(), kms.MustCMKRef("f1"), kms.MustCMKRef("f2")} {
		p, err := r.Provider(ctx, "acme", ref)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = p.Wrap(ctx, key, b)
		_, _ = p.Describe(ctx)
	}
	if wrapped != 3 {
		t.Errorf("the wrapper saw %d providers, want 3", wrapped)
	}
	want := []call{
		{kms.InternalRef(), "Wrap", nil}, {kms.InternalRef(), "Describe", nil},
		{kms.MustCMKRef("f1"), "Wrap", nil}, {kms.MustCMKRef("f1"), "Describe", nil},
		{kms.MustCMKRef("f2"), "Wrap", kms.ErrKeyDisabled}, {kms.MustCMKRef("f2"), "Describe", kms.ErrKeyDisabled},
	}
	if len(calls) != len(want) {
		t.Fatalf("observed %d calls, want %d: %v", len(calls), len(want), calls)
	}
	for i, w := range want {
		if g := calls[i]; g.ref != w.ref || g.op != w.op || !errors.Is(g.err, w.err) || (w.err == nil) != (g.err == nil) {
			t.Errorf("call %d = %v %s %v, want %v %s %v", i, g.ref, g.op, g.err, w.ref, w.op, w.err)
		}
	}
}

func TestPrefix(t *testing.T) {
	r, _ := newRegistry(t)
	if got, want := r.Prefix("acme", kms.InternalRef()), envelope.InternalPrefix("acme"); got != want {
		t.Errorf("Prefix(internal) = %q, want %q", got, want)
	}
	if got, want := r.Prefix("acme", kms.MustCMKRef("f1")), envelope.CMKPrefix("f1"); got != want {
		t.Errorf("Prefix(cmk:f1) = %q, want %q", got, want)
	}
}
