// Package kmstest is the conformance suite that every kms.Provider passes:
// the internal KMS against an in-memory store, AWS KMS against local-kms.
// Call Run from a provider's tests; a test that needs an external service
// should t.Skip before calling it when the service is not configured.
//
// The suite checks only what the kms.Provider contract promises, so it runs
// unchanged against any provider. Behaviour that only some providers offer
// belongs in separate suites for separate, optional interfaces.
package kmstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// Run runs the conformance suite against the providers newProvider returns.
//
// newProvider(t, tenantID) must return tenantID's provider, ready to use, and
// register any cleanup with t.Cleanup. Two calls with the same tenant id must
// return the same master key, as two replicas of the service would see it;
// different tenant ids must get master keys that cannot unwrap each other's
// blobs. Tenant ids are fresh random strings, so the suite can run repeatedly
// against a persistent backend.
func Run(t *testing.T, newProvider func(t *testing.T, tenantID string) kms.Provider) {
	t.Helper()
	s := suite{newProvider: newProvider}
	t.Run("GenerateDataKey", s.testGenerateDataKey)
	t.Run("WrapUnwrap", s.testWrapUnwrap)
	t.Run("OtherBinding", s.testOtherBinding)
	t.Run("OtherTenant", s.testOtherTenant)
	t.Run("AlteredBlob", s.testAlteredBlob)
	t.Run("Describe", s.testDescribe)
	t.Run("Ref", s.testRef)
	t.Run("CanceledContext", s.testCanceledContext)
	t.Run("Concurrent", s.testConcurrent)
}

type suite struct {
	newProvider func(t *testing.T, tenantID string) kms.Provider
}

// newTenant returns a fresh tenant id and its provider.
func (s suite) newTenant(t *testing.T) (string, kms.Provider) {
	t.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := "kmstest-" + hex.EncodeToString(b[:])
	p := s.newProvider(t, id)
	if p == nil {
		t.Fatalf("newProvider(%q) = nil", id)
	}
	return id, p
}

// binding is shaped like the keyring's: tenant, data key id, caller context.
func binding(tenantID string) kms.Binding {
	return kms.Binding{
		kms.BindingTenant:  tenantID,
		kms.BindingKeyID:   "kmstest-key-1",
		kms.BindingContext: "purpose=conformance",
	}
}

func randomKey(t *testing.T) ([]byte, *secret.Bytes) {
	t.Helper()
	raw := make([]byte, kms.DataKeySize)
	_, _ = rand.Read(raw)
	return raw, secret.New(bytes.Clone(raw))
}

func generate(t *testing.T, p kms.Provider, b kms.Binding) (*secret.Bytes, kms.Wrapped) {
	t.Helper()
	dk, w, err := p.GenerateDataKey(t.Context(), b)
	if err != nil {
		t.Fatalf("GenerateDataKey: %v", err)
	}
	t.Cleanup(dk.Destroy)
	return dk, w
}

func wantKey(t *testing.T, what string, got *secret.Bytes, err error, want []byte) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer got.Destroy()
	if !bytes.Equal(got.Reveal(), want) {
		t.Fatalf("%s returned another key than was wrapped", what)
	}
}

// wantInvalid checks the contract for a blob that must not unwrap: the one
// opaque ErrInvalidCiphertext, inside a *kms.Error, and no key material.
func wantInvalid(t *testing.T, what string, got *secret.Bytes, err error) {
	t.Helper()
	if got != nil {
		got.Destroy()
		t.Errorf("%s: Unwrap returned a key (err = %v), want none", what, err)
	}
	if err == nil {
		t.Errorf("%s: Unwrap succeeded, want ErrInvalidCiphertext", what)
		return
	}
	if !errors.Is(err, kms.ErrInvalidCiphertext) {
		t.Errorf("%s: Unwrap error = %v, want ErrInvalidCiphertext", what, err)
	}
	var ke *kms.Error
	if !errors.As(err, &ke) {
		t.Errorf("%s: Unwrap error %T is not a *kms.Error", what, err)
	}
}

func (s suite) testGenerateDataKey(t *testing.T) {
	tenant, p := s.newTenant(t)
	b := binding(tenant)
	dk1, w1 := generate(t, p, b)
	if got := dk1.Len(); got != kms.DataKeySize {
		t.Fatalf("GenerateDataKey returned %d bytes, want %d", got, kms.DataKeySize)
	}
	if len(w1.Blob) == 0 {
		t.Fatal("GenerateDataKey returned an empty blob")
	}
	if w1.KeyVersion == "" {
		t.Error("GenerateDataKey returned an empty KeyVersion")
	}
	got, err := p.Unwrap(t.Context(), w1, b)
	wantKey(t, "Unwrap of a generated key", got, err, dk1.Reveal())

	dk2, w2 := generate(t, p, b)
	if bytes.Equal(dk1.Reveal(), dk2.Reveal()) {
		t.Error("two GenerateDataKey calls returned the same key")
	}
	if bytes.Equal(w1.Blob, w2.Blob) {
		t.Error("two GenerateDataKey calls returned the same blob")
	}
}

func (s suite) testWrapUnwrap(t *testing.T) {
	tenant, p := s.newTenant(t)
	b := binding(tenant)
	raw, dk := randomKey(t)
	defer dk.Destroy()
	w, err := p.Wrap(t.Context(), dk, b)
	if err != nil {
		t.Fatalf("Wrap: %v", err)
	}
	if !bytes.Equal(dk.Reveal(), raw) {
		t.Fatal("Wrap changed or destroyed the caller's plaintext")
	}
	if len(w.Blob) == 0 || w.KeyVersion == "" {
		t.Fatalf("Wrap returned blob of %d bytes, KeyVersion %q; want both non-empty", len(w.Blob), w.KeyVersion)
	}
	if bytes.Contains(w.Blob, raw) {
		t.Fatal("the blob contains the plaintext key")
	}

	got1, err := p.Unwrap(t.Context(), w, b)
	if err != nil {
		t.Fatalf("Unwrap: %v", err)
	}
	got2, err := p.Unwrap(t.Context(), w, b)
	if err != nil {
		t.Fatalf("second Unwrap: %v", err)
	}
	got1.Destroy()
	// Each result is the caller's to destroy: destroying one must not
	// touch the other (or a cached copy inside the provider).
	wantKey(t, "second Unwrap after destroying the first result", got2, nil, raw)

	w2, err := p.Wrap(t.Context(), dk, b)
	if err != nil {
		t.Fatalf("second Wrap: %v", err)
	}
	if bytes.Equal(w.Blob, w2.Blob) {
		t.Error("wrapping one key twice gave the same blob; wrapping must be randomized")
	}
	got, err := p.Unwrap(t.Context(), w2, b)
	wantKey(t, "Unwrap of the second wrapping", got, err, raw)

	// Bindings are order-independent maps: an equal map unwraps.
	same := kms.Binding{}
	for k, v := range b {
		same[k] = v
	}
	got, err = p.Unwrap(t.Context(), w, same)
	wantKey(t, "Unwrap with an equal binding", got, err, raw)
}

func (s suite) testOtherBinding(t *testing.T) {
	tenant, p := s.newTenant(t)
	b := binding(tenant)
	_, w := generate(t, p, b)

	with := func(edit func(kms.Binding)) kms.Binding {
		c := kms.Binding{}
		for k, v := range b {
			c[k] = v
		}
		edit(c)
		return c
	}
	tests := []struct {
		name string
		b    kms.Binding
	}{
		{"no binding", nil},
		{"other context", with(func(c kms.Binding) { c[kms.BindingContext] = "purpose=other" })},
		{"other tenant named", with(func(c kms.Binding) { c[kms.BindingTenant] = tenant + "x" })},
		{"other key id", with(func(c kms.Binding) { c[kms.BindingKeyID] = "kmstest-key-2" })},
		{"entry added", with(func(c kms.Binding) { c["extra"] = "" })},
		{"entry removed", with(func(c kms.Binding) { delete(c, kms.BindingContext) })},
		{"value emptied", with(func(c kms.Binding) { c[kms.BindingContext] = "" })},
		{"boundary moved between key and value", with(func(c kms.Binding) {
			delete(c, kms.BindingContext)
			c[kms.BindingContext+"p"] = "urpose=conformance"
		})},
	}
	for _, tt := range tests {
		got, err := p.Unwrap(t.Context(), w, tt.b)
		wantInvalid(t, tt.name, got, err)
	}
}

func (s suite) testOtherTenant(t *testing.T) {
	tenantA, pa := s.newTenant(t)
	tenantB, pb := s.newTenant(t)
	_, wa := generate(t, pa, binding(tenantA))
	// B has wrapped keys of its own, as any live tenant has: a provider
	// that has never been used may lack a master key altogether.
	_, _ = generate(t, pb, binding(tenantB))

	got, err := pb.Unwrap(t.Context(), wa, binding(tenantA))
	wantInvalid(t, "another tenant's provider, same binding", got, err)
	got, err = pb.Unwrap(t.Context(), wa, binding(tenantB))
	wantInvalid(t, "another tenant's provider and binding", got, err)
}

// maxAlterations bounds the altered blobs tried per kind, for providers
// whose Unwrap is a network call; shorter blobs are tried exhaustively.
const maxAlterations = 1024

// positions returns n indexes spread over [0, total), all of them if
// total <= n, always including both ends.
func positions(total, n int) []int {
	if total <= n {
		out := make([]int, total)
		for i := range out {
			out[i] = i
		}
		return out
	}
	out := make([]int, 0, n)
	for i := range n {
		out = append(out, i*(total-1)/(n-1))
	}
	return slices.Compact(out)
}

func (s suite) testAlteredBlob(t *testing.T) {
	tenant, p := s.newTenant(t)
	b := binding(tenant)
	_, w := generate(t, p, b)
	unwrap := func(blob []byte) (*secret.Bytes, error) {
		return p.Unwrap(t.Context(), kms.Wrapped{KeyVersion: w.KeyVersion, Blob: blob}, b)
	}

	got, err := unwrap(nil)
	wantInvalid(t, "empty blob", got, err)
	for _, n := range positions(len(w.Blob), maxAlterations) {
		got, err := unwrap(bytes.Clone(w.Blob[:n]))
		wantInvalid(t, fmt.Sprintf("blob truncated to %d of %d bytes", n, len(w.Blob)), got, err)
	}
	for _, tail := range [][]byte{{0}, {1}, w.Blob[:1], make([]byte, 16), w.Blob} {
		got, err := unwrap(append(bytes.Clone(w.Blob), tail...))
		wantInvalid(t, fmt.Sprintf("blob extended by %d bytes", len(tail)), got, err)
	}
	for _, bit := range positions(8*len(w.Blob), maxAlterations) {
		blob := bytes.Clone(w.Blob)
		blob[bit/8] ^= 1 << (bit % 8)
		got, err := unwrap(blob)
		wantInvalid(t, fmt.Sprintf("bit %d flipped", bit), got, err)
	}

	// The original still unwraps: none of the above changed w.
	got, err = unwrap(w.Blob)
	if err != nil {
		t.Fatalf("Unwrap of the unaltered blob: %v", err)
	}
	got.Destroy()
}

func (s suite) testDescribe(t *testing.T) {
	tenant, p := s.newTenant(t)
	_, _ = generate(t, p, binding(tenant))
	info, err := p.Describe(t.Context())
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	if info.State != kms.KeyEnabled {
		t.Errorf("Describe().State = %v, want %v", info.State, kms.KeyEnabled)
	}
}

func (s suite) testRef(t *testing.T) {
	tenant, p := s.newTenant(t)
	ref := p.Ref()
	if ref.IsZero() {
		t.Fatal("Ref() is empty")
	}
	_, _ = generate(t, p, binding(tenant))
	if got := p.Ref(); got != ref {
		t.Errorf("Ref() changed from %q to %q after use", ref, got)
	}
	if got := s.newProvider(t, tenant).Ref(); got != ref {
		t.Errorf("another provider for the same tenant has Ref() %q, want %q", got, ref)
	}
}

// testCanceledContext: a caller must be able to tell its own cancellation
// from a bad ciphertext, which it would treat as corrupt data.
func (s suite) testCanceledContext(t *testing.T) {
	tenant, p := s.newTenant(t)
	b := binding(tenant)
	_, w := generate(t, p, b)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	check := func(op string, err error) {
		t.Helper()
		switch {
		case err == nil:
			t.Errorf("%s with a canceled context succeeded", op)
		case errors.Is(err, kms.ErrInvalidCiphertext):
			t.Errorf("%s with a canceled context = %v, must not be ErrInvalidCiphertext", op, err)
		case !errors.Is(err, context.Canceled):
			t.Errorf("%s with a canceled context = %v, want errors.Is(err, context.Canceled)", op, err)
		}
	}
	dk, _, err := p.GenerateDataKey(ctx, b)
	dk.Destroy()
	check("GenerateDataKey", err)
	got, err := p.Unwrap(ctx, w, b)
	got.Destroy()
	check("Unwrap", err)
}

// testConcurrent uses several providers of one fresh tenant at once, as
// replicas would, so that the first use of the tenant's master key races
// too. Its value is under -race.
func (s suite) testConcurrent(t *testing.T) {
	tenant, p0 := s.newTenant(t)
	ps := []kms.Provider{p0, s.newProvider(t, tenant), s.newProvider(t, tenant)}
	b := binding(tenant)
	const goroutines, rounds = 16, 8
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range rounds {
				gen, use := ps[(g+i)%len(ps)], ps[(g+i+1)%len(ps)]
				dk, w, err := gen.GenerateDataKey(t.Context(), b)
				if err != nil {
					errs <- fmt.Errorf("generating a data key: %w", err)
					return
				}
				got, err := use.Unwrap(t.Context(), w, b)
				if err != nil {
					dk.Destroy()
					errs <- fmt.Errorf("another replica's Unwrap: %w", err)
					return
				}
				same := bytes.Equal(got.Reveal(), dk.Reveal())
				got.Destroy()
				dk.Destroy()
				if !same {
					errs <- errors.New("another replica's Unwrap returned another key")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
