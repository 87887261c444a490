package keyprovider_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// Unit tests of the key-provider service with its store, the tenants, the
// internal KMS and the provider kinds replaced by in-memory fakes. The AWS
// kind's own checks are tested in awskms/awskind; the API end to end in
// cmd/tenantcrypt.

// memStore is a keyprovider.Store in memory.
type memStore struct {
	mu sync.Mutex
	ps map[string]keyprovider.Provider // tenant + "/" + fingerprint
	// down makes reads fail as a database that does not answer.
	down bool
}

func newMemStore() *memStore { return &memStore{ps: map[string]keyprovider.Provider{}} }

func (m *memStore) InsertKeyProvider(_ context.Context, p keyprovider.Provider) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := p.TenantID + "/" + p.Fingerprint
	if _, ok := m.ps[k]; ok {
		return fault.ErrExists
	}
	p.Key = nil // stores keep no parsed key
	m.ps[k] = p
	return nil
}

func (m *memStore) KeyProvider(_ context.Context, tenantID, fp string) (keyprovider.Provider, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return keyprovider.Provider{}, errors.New("connection refused")
	}
	p, ok := m.ps[tenantID+"/"+fp]
	if !ok {
		return keyprovider.Provider{}, fault.ErrNotFound
	}
	return p, nil
}

func (m *memStore) ListKeyProviders(_ context.Context, tenantID string) ([]keyprovider.Provider, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []keyprovider.Provider{}
	for _, k := range slices.Sorted(maps.Keys(m.ps)) {
		if strings.HasPrefix(k, tenantID+"/") {
			out = append(out, m.ps[k])
		}
	}
	return out, nil
}

func (m *memStore) UpdateKeyProvider(_ context.Context, p keyprovider.Provider) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := p.TenantID + "/" + p.Fingerprint
	old, ok := m.ps[k]
	if !ok {
		return fault.ErrNotFound
	}
	p.ARN, p.CreatedAt, p.Kind, p.Key = old.ARN, old.CreatedAt, old.Kind, nil
	m.ps[k] = p
	return nil
}

func (m *memStore) SetKeyProviderCompliance(_ context.Context, tenantID, fp string, ok bool, c keyprovider.ComplianceError, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := tenantID + "/" + fp
	p, found := m.ps[k]
	if !found {
		return fault.ErrNotFound
	}
	p.DRCompliant, p.Compliance, p.TestedAt = ok, c, at
	m.ps[k] = p
	return nil
}

func (m *memStore) DeleteKeyProvider(_ context.Context, tenantID, fp string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := tenantID + "/" + fp
	if _, ok := m.ps[k]; !ok {
		return fault.ErrNotFound
	}
	delete(m.ps, k)
	return nil
}

// tenants is keyprovider.Tenants in memory.
type tenants struct {
	ts     map[string]keyring.Tenant
	counts map[kms.Ref]int
}

func (f tenants) Tenant(_ context.Context, id string) (keyring.Tenant, error) {
	t, ok := f.ts[id]
	if !ok {
		return keyring.Tenant{}, fault.ErrNotFound
	}
	return t, nil
}

func (f tenants) CountCipherKeys(context.Context, string) (map[kms.Ref]int, error) {
	return f.counts, nil
}

// xorSecrets stands in for the internal KMS: it "wraps" a secret by
// XOR with a byte and checks the binding.
type xorSecrets struct{}

func (xorSecrets) ForTenant(tenantID string) kms.Provider { return xorProvider{tenantID} }

type xorProvider struct{ tenant string }

func (xorProvider) Ref() kms.Ref { return kms.InternalRef() }

func (p xorProvider) GenerateDataKey(context.Context, kms.Binding) (*secret.Bytes, kms.Wrapped, error) {
	return nil, kms.Wrapped{}, errors.New("not used")
}

func (p xorProvider) Wrap(_ context.Context, k *secret.Bytes, b kms.Binding) (kms.Wrapped, error) {
	out := []byte(b[kms.BindingTenant] + "|" + b[kms.BindingKeyID] + "|")
	for _, c := range k.Reveal() {
		out = append(out, c^0x5a)
	}
	return kms.Wrapped{Blob: out}, nil
}

func (p xorProvider) Unwrap(_ context.Context, w kms.Wrapped, b kms.Binding) (*secret.Bytes, error) {
	prefix := []byte(b[kms.BindingTenant] + "|" + b[kms.BindingKeyID] + "|")
	if b[kms.BindingTenant] != p.tenant || !bytes.HasPrefix(w.Blob, prefix) {
		return nil, &kms.Error{Op: "Unwrap", Kind: kms.ErrInvalidCiphertext}
	}
	out := []byte{}
	for _, c := range w.Blob[len(prefix):] {
		out = append(out, c^0x5a)
	}
	return secret.New(out), nil
}

func (xorProvider) Describe(context.Context) (kms.KeyInfo, error) { return kms.KeyInfo{}, nil }

// fakeKey is a fake kind's key: "fake://NAME".
type fakeKey string

func (k fakeKey) String() string { return string(k) }

// fakeKind is a kind with every capability. Its settings are a JSON object
// {"note": ..., "secret": ...}: the secret is taken out and kept wrapped.
type fakeKind struct {
	mu      sync.Mutex
	opened  int
	secrets []string // the secrets Test and Open saw
	testErr error
	state   keyring.TenantState
}

var (
	_ keyprovider.Configurer       = (*fakeKind)(nil)
	_ keyprovider.Tester           = (*fakeKind)(nil)
	_ keyprovider.Inspector        = (*fakeKind)(nil)
	_ keyprovider.FailoverReporter = (*fakeKind)(nil)
	_ keyprovider.HomeReporter     = (*fakeKind)(nil)
	_ keyprovider.KeyComparer      = (*fakeKind)(nil)
)

func (*fakeKind) Name() string { return "FAKE" }

func (*fakeKind) ParseKey(s string) (keyprovider.Key, error) {
	name, ok := strings.CutPrefix(s, "fake://")
	if !ok || name == "" {
		return nil, fmt.Errorf("%w: not fake://NAME", keyprovider.ErrMalformedARN)
	}
	return fakeKey("fake://" + strings.ToLower(name)), nil
}

func (k *fakeKind) Open(_ context.Context, t keyprovider.Target, ref kms.Ref) (kms.Provider, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.opened++
	if t.Secret != nil {
		k.secrets = append(k.secrets, string(t.Secret.Reveal()))
	}
	return openedProvider{ref: ref, key: t.ARN}, nil
}

func (*fakeKind) Field() string { return "fake" }

type fakeSettings struct {
	Note   string `json:"note"`
	Secret string `json:"secret,omitempty"`
}

func (*fakeKind) Configure(_ keyprovider.Key, raw json.RawMessage) (keyprovider.Settings, error) {
	if raw == nil {
		return keyprovider.Settings{}, &fault.InputError{Field: "fake", Reason: "is required"}
	}
	var s fakeSettings
	if err := json.Unmarshal(raw, &s); err != nil {
		return keyprovider.Settings{}, &fault.InputError{Field: "fake", Reason: "must be an object"}
	}
	sec := secret.New([]byte(s.Secret))
	s.Secret = ""
	config, _ := json.Marshal(s)
	return keyprovider.Settings{Config: config, Secret: sec}, nil
}

func (*fakeKind) Patch(cur keyprovider.Settings, path string, value json.RawMessage) (keyprovider.Settings, error) {
	var v string
	if err := json.Unmarshal(value, &v); err != nil {
		return keyprovider.Settings{}, &fault.InputError{Field: path, Reason: "must be a string"}
	}
	switch path {
	case "/note":
		config, _ := json.Marshal(fakeSettings{Note: v})
		return keyprovider.Settings{Config: config, Secret: cur.Secret}, nil
	case "/secret":
		return keyprovider.Settings{Config: cur.Config, Secret: secret.New([]byte(v))}, nil
	}
	return keyprovider.Settings{}, &fault.InputError{Field: path, Reason: "unknown"}
}

func (k *fakeKind) Test(_ context.Context, t *keyprovider.Target, strict bool) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if t.Secret != nil {
		k.secrets = append(k.secrets, string(t.Secret.Reveal()))
	}
	if k.testErr != nil {
		if !strict {
			t.DRCompliant, t.Compliance = false, keyprovider.ComplianceError{Code: keyprovider.CodeNotCompliant, Message: "refused"}
		}
		return k.testErr
	}
	t.MultiRegion, t.DRCompliant, t.Compliance = true, true, keyprovider.ComplianceError{}
	return nil
}

func (k *fakeKind) Inspect(_ context.Context, t keyprovider.Target, probe bool) keyprovider.Inspection {
	return keyprovider.Inspection{Known: true, State: k.state, Checks: []keyprovider.Check{{Place: "home", Key: t.ARN, Result: keyprovider.ResultOK}},
		Compliance: &keyprovider.Compliance{DRCompliant: false, Error: keyprovider.ComplianceError{Code: keyprovider.CodeNotCompliant, Region: "dr"}}}
}

func (*fakeKind) Failover(t keyprovider.Target) keyprovider.Failover {
	return keyprovider.Failover{Active: true, From: "home", To: "dr"}
}

func (*fakeKind) Home(keyprovider.Target) string { return "home" }

func (*fakeKind) SameKey(a, b keyprovider.Key) bool {
	return strings.TrimSuffix(a.String(), "-replica") == strings.TrimSuffix(b.String(), "-replica")
}

type openedProvider struct {
	kms.Provider
	ref kms.Ref
	key string
}

func (p openedProvider) Ref() kms.Ref { return p.ref }

// plainKind is a kind with no optional capability.
type plainKind struct{}

func (plainKind) Name() string { return "PLAIN" }

func (plainKind) ParseKey(s string) (keyprovider.Key, error) {
	if !strings.HasPrefix(s, "plain:") {
		return nil, keyprovider.ErrMalformedARN
	}
	return fakeKey(s), nil
}

func (plainKind) Open(_ context.Context, t keyprovider.Target, ref kms.Ref) (kms.Provider, error) {
	return openedProvider{ref: ref, key: t.ARN}, nil
}

type fixture struct {
	svc   *keyprovider.Service
	store *memStore
	kind  *fakeKind
	ts    tenants
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{store: newMemStore(), kind: &fakeKind{state: keyring.StateActive}, ts: tenants{
		ts: map[string]keyring.Tenant{
			"acme":  {ID: "acme", Edition: keyring.EditionEnterprise, Provider: kms.InternalRef()},
			"small": {ID: "small", Edition: keyring.EditionBusiness, Provider: kms.InternalRef()},
		},
		counts: map[kms.Ref]int{},
	}}
	svc, err := keyprovider.New(keyprovider.Config{Store: f.store, Tenants: f.ts, Kinds: []keyprovider.Kind{f.kind, plainKind{}}, Secrets: xorSecrets{},
		Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	return f
}

func (f *fixture) register(t *testing.T, arn, secretText string) keyprovider.Provider {
	t.Helper()
	p, err := f.svc.Register(t.Context(), "acme", keyprovider.Registration{Kind: "FAKE", ARN: arn, Name: "key",
		Settings: map[string]json.RawMessage{"fake": json.RawMessage(fmt.Sprintf(`{"note":"n","secret":%q}`, secretText))}})
	if err != nil {
		t.Fatalf("Register(%s): %v", arn, err)
	}
	return p
}

func TestNewRefusesBadKinds(t *testing.T) {
	for name, kinds := range map[string][]keyprovider.Kind{
		"twice": {plainKind{}, plainKind{}},
		"nil":   {nil},
	} {
		if _, err := keyprovider.New(keyprovider.Config{Store: newMemStore(), Tenants: tenants{}, Kinds: kinds}); err == nil {
			t.Errorf("New with kinds %s: no error", name)
		}
	}
	if _, err := keyprovider.New(keyprovider.Config{Tenants: tenants{}}); err == nil {
		t.Error("New without a Store: no error")
	}
}

func TestRegister(t *testing.T) {
	f := newFixture(t)
	p := f.register(t, "fake://KeyOne", "s3cret")
	if p.Kind != "FAKE" || p.ARN != "fake://keyone" || p.Fingerprint != keyprovider.Fingerprint("fake://keyone") || p.Key == nil {
		t.Errorf("registered %+v; want kind FAKE, the canonical key and its fingerprint", p)
	}
	if !p.DRCompliant || !p.MultiRegion || !p.TestedAt.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("registered %+v; want the kind's test recorded", p)
	}
	if got, want := string(p.Config), `{"note":"n"}`; got != want {
		t.Errorf("Config = %s, want %s", got, want)
	}
	stored, err := f.store.KeyProvider(t.Context(), "acme", p.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored.WrappedSecret, []byte("s3cret")) || len(stored.WrappedSecret) == 0 || bytes.Contains(stored.Config, []byte("s3cret")) {
		t.Errorf("stored secret %q, config %s: want it wrapped, and only there", stored.WrappedSecret, stored.Config)
	}
	if got := f.kind.secrets; !slices.Equal(got, []string{"s3cret"}) {
		t.Errorf("the kind's test saw secrets %q, want the registered one", got)
	}

	tests := []struct {
		name string
		r    keyprovider.Registration
		want func(error) bool
	}{
		{"duplicate", keyprovider.Registration{Kind: "FAKE", ARN: "fake://keyone", Name: "again", Settings: map[string]json.RawMessage{"fake": json.RawMessage(`{}`)}},
			func(err error) bool { return errors.Is(err, keyprovider.ErrExists) }},
		{"replica of a registered key", keyprovider.Registration{Kind: "FAKE", ARN: "fake://keyone-replica", Name: "again", Settings: map[string]json.RawMessage{"fake": json.RawMessage(`{}`)}},
			func(err error) bool { return errors.Is(err, keyprovider.ErrExists) }},
		{"malformed key", keyprovider.Registration{Kind: "FAKE", ARN: "arn:aws:kms:x", Name: "k"},
			func(err error) bool { return errors.Is(err, keyprovider.ErrMalformedARN) }},
		{"unknown kind", keyprovider.Registration{Kind: "HSM", ARN: "fake://k", Name: "k"}, isInputError},
		{"settings for a kind without", keyprovider.Registration{Kind: "PLAIN", ARN: "plain:k", Name: "k", Settings: map[string]json.RawMessage{"fake": json.RawMessage(`{}`)}}, isInputError},
		{"another kind's member", keyprovider.Registration{Kind: "FAKE", ARN: "fake://k2", Name: "k", Settings: map[string]json.RawMessage{"kmip": json.RawMessage(`{}`)}}, isInputError},
		{"settings missing", keyprovider.Registration{Kind: "FAKE", ARN: "fake://k2", Name: "k"}, isInputError},
		{"no name", keyprovider.Registration{Kind: "PLAIN", ARN: "plain:k"}, isInputError},
		{"default kind not served", keyprovider.Registration{ARN: "plain:k", Name: "k"}, isInputError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.svc.Register(t.Context(), "acme", tc.r); !tc.want(err) {
				t.Errorf("Register: %v", err)
			}
		})
	}
	t.Run("business edition", func(t *testing.T) {
		var refused *keyprovider.RefusedError
		if _, err := f.svc.Register(t.Context(), "small", keyprovider.Registration{Kind: "PLAIN", ARN: "plain:k", Name: "k"}); !errors.As(err, &refused) {
			t.Errorf("Register for a business tenant: %v, want *RefusedError", err)
		}
	})
	t.Run("unknown tenant", func(t *testing.T) {
		if _, err := f.svc.Register(t.Context(), "nobody", keyprovider.Registration{Kind: "PLAIN", ARN: "plain:k", Name: "k"}); !errors.Is(err, keyring.ErrTenantNotFound) {
			t.Errorf("Register for an unknown tenant: %v, want ErrTenantNotFound", err)
		}
	})
	t.Run("refused by the kind's test", func(t *testing.T) {
		f.kind.testErr = &keyprovider.RefusedError{Reason: "no"}
		defer func() { f.kind.testErr = nil }()
		var refused *keyprovider.RefusedError
		if _, err := f.svc.Register(t.Context(), "acme", keyprovider.Registration{Kind: "FAKE", ARN: "fake://other", Name: "k",
			Settings: map[string]json.RawMessage{"fake": json.RawMessage(`{}`)}}); !errors.As(err, &refused) {
			t.Errorf("Register: %v, want the kind's *RefusedError", err)
		}
		if ps, _ := f.svc.List(t.Context(), "acme"); len(ps) != 1 {
			t.Errorf("%d providers after a refused registration, want 1", len(ps))
		}
	})
	if got, want := f.svc.KindNames(), []string{"FAKE", "PLAIN"}; !slices.Equal(got, want) {
		t.Errorf("KindNames() = %q, want %q", got, want)
	}
}

func isInputError(err error) bool {
	var ie *fault.InputError
	return errors.As(err, &ie)
}

func TestTestRecordsWhatTheKindFound(t *testing.T) {
	f := newFixture(t)
	p := f.register(t, "fake://k", "s")
	f.kind.testErr = &keyprovider.RefusedError{Reason: "gone"}
	got, err := f.svc.Test(t.Context(), "acme", p.Fingerprint)
	if err != nil {
		t.Fatalf("Test: %v; a refusal is recorded, not returned", err)
	}
	if got.DRCompliant || got.Compliance.Message != "refused" {
		t.Errorf("Test recorded %+v", got)
	}
	stored, _ := f.svc.Get(t.Context(), "acme", p.Fingerprint)
	if stored.DRCompliant || stored.Compliance != got.Compliance || stored.Key == nil {
		t.Errorf("stored %+v, want the test's outcome and a parsed key", stored)
	}
	f.kind.testErr = &kms.Error{Op: "Describe", Kind: kms.ErrUnavailable}
	if _, err := f.svc.Test(t.Context(), "acme", p.Fingerprint); !errors.Is(err, kms.ErrUnavailable) {
		t.Errorf("Test with the key manager out: %v, want ErrUnavailable", err)
	}
	if _, err := f.svc.Test(t.Context(), "acme", "0000"); !errors.Is(err, keyprovider.ErrNotFound) {
		t.Errorf("Test of an unknown provider: %v", err)
	}
}

func TestOpenKeepsProvidersUntilSettingsChange(t *testing.T) {
	f := newFixture(t)
	p := f.register(t, "fake://k", "first")
	ref := kms.MustCMKRef(p.Fingerprint)
	for range 3 {
		kp, err := f.svc.Open(t.Context(), "acme", ref)
		if err != nil || kp.Ref() != ref {
			t.Fatalf("Open = %v, %v; want a provider with Ref %v", kp, err, ref)
		}
	}
	if f.kind.opened != 1 {
		t.Errorf("the kind opened the provider %d times for 3 Opens, want 1", f.kind.opened)
	}
	if _, err := f.svc.Patch(t.Context(), "acme", p.Fingerprint, []keyprovider.PatchOp{{Path: "/fake/secret", Value: json.RawMessage(`"second"`)}}); err != nil {
		t.Fatalf("Patch: %v", err)
	}
	if _, err := f.svc.Open(t.Context(), "acme", ref); err != nil {
		t.Fatal(err)
	}
	if f.kind.opened != 2 || f.kind.secrets[len(f.kind.secrets)-1] != "second" {
		t.Errorf("after a patch: opened %d times, last secret %q; want it opened again with the new secret", f.kind.opened, f.kind.secrets[len(f.kind.secrets)-1])
	}
	f.svc.Forget("acme")
	if _, err := f.svc.Open(t.Context(), "acme", ref); err != nil || f.kind.opened != 3 {
		t.Errorf("after Forget: %v, opened %d times, want 3", err, f.kind.opened)
	}
	for name, r := range map[string]kms.Ref{"internal": kms.InternalRef(), "unregistered": kms.MustCMKRef("ffff")} {
		if _, err := f.svc.Open(t.Context(), "acme", r); !errors.Is(err, keyring.ErrUnknownProvider) {
			t.Errorf("Open(%s) = %v, want ErrUnknownProvider", name, err)
		}
	}
}

// TestOpenSeesAnotherReplicasPatch: settings replaced through another
// replica (a renewed certificate) reach this one's open provider once
// it has served it for 30 s; while the database does not answer, the
// open provider keeps serving.
func TestOpenSeesAnotherReplicasPatch(t *testing.T) {
	f := newFixture(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	here, err := keyprovider.New(keyprovider.Config{Store: f.store, Tenants: f.ts, Kinds: []keyprovider.Kind{f.kind}, Secrets: xorSecrets{},
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	p := f.register(t, "fake://k", "first")
	ref := kms.MustCMKRef(p.Fingerprint)
	open := func(when string) {
		t.Helper()
		if _, err := here.Open(t.Context(), "acme", ref); err != nil {
			t.Fatalf("Open %s: %v", when, err)
		}
	}
	open("at first")
	if _, err := f.svc.Patch(t.Context(), "acme", p.Fingerprint, []keyprovider.PatchOp{{Path: "/fake/secret", Value: json.RawMessage(`"second"`)}}); err != nil {
		t.Fatalf("Patch on the other replica: %v", err)
	}
	opened := f.kind.opened // the patch's own check opened it too
	now = now.Add(29 * time.Second)
	open("29 s later")
	if f.kind.opened != opened {
		t.Errorf("opened again %d s before the recheck", 30-29)
	}
	now = now.Add(2 * time.Second)
	f.store.mu.Lock()
	f.store.down = true
	f.store.mu.Unlock()
	open("with the database down")
	if f.kind.opened != opened {
		t.Errorf("opened again while the database was down")
	}
	f.store.mu.Lock()
	f.store.down = false
	f.store.mu.Unlock()
	open("once the database is back")
	if got, want := f.kind.opened, opened+1; got != want || f.kind.secrets[len(f.kind.secrets)-1] != "second" {
		t.Errorf("after the recheck: opened %d times (want %d), last secret %q (want second)", got, want, f.kind.secrets[len(f.kind.secrets)-1])
	}
	now = now.Add(time.Minute)
	open("unchanged, a minute later")
	if f.kind.opened != opened+1 {
		t.Errorf("opened again although the settings did not change")
	}
}

func TestPatch(t *testing.T) {
	f := newFixture(t)
	p := f.register(t, "fake://k", "s")
	got, err := f.svc.Patch(t.Context(), "acme", p.Fingerprint, []keyprovider.PatchOp{{Path: "/fake/note", Value: json.RawMessage(`"renewed"`)}})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Config) != `{"note":"renewed"}` {
		t.Errorf("Config after patch = %s", got.Config)
	}
	field, config := f.svc.SettingsOf(got)
	if field != "fake" || string(config) != `{"note":"renewed"}` {
		t.Errorf("SettingsOf = %q, %s", field, config)
	}
	for name, op := range map[string]keyprovider.PatchOp{
		"outside the kind's member": {Path: "/kmip/serverCA", Value: json.RawMessage(`"x"`)},
		"the member itself":         {Path: "/fake", Value: json.RawMessage(`"x"`)},
		"unknown setting":           {Path: "/fake/nope", Value: json.RawMessage(`"x"`)},
		"wrong type":                {Path: "/fake/note", Value: json.RawMessage(`1`)},
	} {
		if _, err := f.svc.Patch(t.Context(), "acme", p.Fingerprint, []keyprovider.PatchOp{op}); !isInputError(err) {
			t.Errorf("Patch %s: %v, want *fault.InputError", name, err)
		}
	}
	f.kind.testErr = &keyprovider.RefusedError{Reason: "the new certificate is refused"}
	var refused *keyprovider.RefusedError
	if _, err := f.svc.Patch(t.Context(), "acme", p.Fingerprint, []keyprovider.PatchOp{{Path: "/fake/note", Value: json.RawMessage(`"bad"`)}}); !errors.As(err, &refused) {
		t.Errorf("Patch failing its test: %v", err)
	}
	if after, _ := f.svc.Get(t.Context(), "acme", p.Fingerprint); string(after.Config) != `{"note":"renewed"}` {
		t.Errorf("a patch that failed its test was stored: %s", after.Config)
	}
	plain, err := f.svc.Register(t.Context(), "acme", keyprovider.Registration{Kind: "PLAIN", ARN: "plain:x", Name: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Patch(t.Context(), "acme", plain.Fingerprint, []keyprovider.PatchOp{{Path: "/fake/note", Value: json.RawMessage(`"x"`)}}); !isInputError(err) {
		t.Errorf("Patch of a kind without settings: %v", err)
	}
	if field, _ := f.svc.SettingsOf(plain); field != "" {
		t.Errorf("SettingsOf a kind without settings = %q", field)
	}
}

func TestInspectAndRecordCompliance(t *testing.T) {
	f := newFixture(t)
	p := f.register(t, "fake://k", "s")
	ref := kms.MustCMKRef(p.Fingerprint)
	in, ok, err := f.svc.Inspect(t.Context(), "acme", ref, false)
	if err != nil || !ok || !in.Known || in.State != keyring.StateActive || len(in.Checks) != 1 || in.Compliance == nil {
		t.Fatalf("Inspect = %+v, %v, %v", in, ok, err)
	}
	changed, err := f.svc.RecordCompliance(t.Context(), "acme", ref, *in.Compliance, time.Now())
	if err != nil || !changed {
		t.Fatalf("RecordCompliance = %v, %v; want a change", changed, err)
	}
	if changed, err := f.svc.RecordCompliance(t.Context(), "acme", ref, *in.Compliance, time.Now()); err != nil || changed {
		t.Errorf("RecordCompliance again = %v, %v; want no change", changed, err)
	}
	if home, err := f.svc.Home(t.Context(), "acme", ref); home != "home" || err != nil {
		t.Errorf("Home = %q, %v", home, err)
	}
	if fo, err := f.svc.Failover(t.Context(), "acme", ref); !fo.Active || fo.To != "dr" || err != nil {
		t.Errorf("Failover = %+v, %v", fo, err)
	}
	plain, _ := f.svc.Register(t.Context(), "acme", keyprovider.Registration{Kind: "PLAIN", ARN: "plain:x", Name: "p"})
	pref := kms.MustCMKRef(plain.Fingerprint)
	if _, ok, err := f.svc.Inspect(t.Context(), "acme", pref, false); ok || err != nil {
		t.Errorf("Inspect of a kind that does not inspect: %v, %v", ok, err)
	}
	if fo, err := f.svc.Failover(t.Context(), "acme", pref); fo.Active || err != nil {
		t.Errorf("Failover of a kind without replicas = %+v, %v", fo, err)
	}
	if _, _, err := f.svc.Inspect(t.Context(), "acme", kms.InternalRef(), false); !errors.Is(err, keyring.ErrUnknownProvider) {
		t.Errorf("Inspect(internal) = %v, want ErrUnknownProvider", err)
	}
}

func TestStampAndDelete(t *testing.T) {
	f := newFixture(t)
	p := f.register(t, "fake://k", "s")
	ref := kms.MustCMKRef(p.Fingerprint)
	at := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := f.svc.Stamp(t.Context(), "acme", ref, true, at); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Stamp(t.Context(), "acme", kms.InternalRef(), false, at); err != nil {
		t.Errorf("Stamp of the internal KMS: %v, want nothing to do", err)
	}
	got, _ := f.svc.Get(t.Context(), "acme", p.Fingerprint)
	if !got.PromotedAt.Equal(at) || !got.DemotedAt.IsZero() {
		t.Errorf("after Stamp: promoted %v, demoted %v", got.PromotedAt, got.DemotedAt)
	}
	if arn := f.svc.KeyARN(t.Context(), "acme", ref); arn != "fake://k" {
		t.Errorf("KeyARN = %q", arn)
	}

	f.ts.ts["acme"] = keyring.Tenant{ID: "acme", Edition: keyring.EditionEnterprise, Provider: ref}
	if err := f.svc.Delete(t.Context(), "acme", p.Fingerprint); !errors.Is(err, keyprovider.ErrInUse) {
		t.Errorf("Delete of the current provider: %v, want ErrInUse", err)
	}
	f.ts.ts["acme"] = keyring.Tenant{ID: "acme", Edition: keyring.EditionEnterprise, Provider: kms.InternalRef()}
	f.ts.counts[ref] = 3
	if err := f.svc.Delete(t.Context(), "acme", p.Fingerprint); !errors.Is(err, keyprovider.ErrInUse) {
		t.Errorf("Delete of a provider wrapping keys: %v, want ErrInUse", err)
	}
	delete(f.ts.counts, ref)
	if err := f.svc.Delete(t.Context(), "acme", p.Fingerprint); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Get(t.Context(), "acme", p.Fingerprint); !errors.Is(err, keyprovider.ErrNotFound) {
		t.Errorf("Get after Delete: %v", err)
	}
	if arn := f.svc.KeyARN(t.Context(), "acme", ref); arn != p.Fingerprint {
		t.Errorf("KeyARN of a deleted registration = %q, want its fingerprint", arn)
	}
	if err := f.svc.Stamp(t.Context(), "acme", ref, false, at); err != nil {
		t.Errorf("Stamp of a deleted registration: %v, want nothing to do", err)
	}
}

func TestStoredWithoutKindIsTheDefault(t *testing.T) {
	store := newMemStore()
	svc, err := keyprovider.New(keyprovider.Config{Store: store, Tenants: tenants{}, Kinds: []keyprovider.Kind{defaultKind{}}})
	if err != nil {
		t.Fatal(err)
	}
	_ = store.InsertKeyProvider(t.Context(), keyprovider.Provider{TenantID: "acme", Fingerprint: "f1", ARN: "plain:old"})
	p, err := svc.Get(t.Context(), "acme", "f1")
	if err != nil || p.Kind != keyprovider.DefaultKind || p.Key == nil {
		t.Errorf("Get of a registration stored without a kind = %+v, %v; want kind %s with a parsed key", p, err, keyprovider.DefaultKind)
	}
}

// defaultKind is plainKind under the default kind's name.
type defaultKind struct{ plainKind }

func (defaultKind) Name() string { return keyprovider.DefaultKind }
