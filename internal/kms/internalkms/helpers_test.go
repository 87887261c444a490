package internalkms

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// randomKeyB64 returns the base64 of a fresh root key.
func randomKeyB64() string {
	b := make([]byte, keySize)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// testRoots returns root keys with the given versions (default: 1), the
// highest one current.
func testRoots(t *testing.T, versions ...uint32) *RootKeys {
	t.Helper()
	if len(versions) == 0 {
		versions = []uint32{1}
	}
	var entries []string
	for _, v := range versions {
		entries = append(entries, fmt.Sprintf("%d:%s", v, randomKeyB64()))
	}
	r, err := ParseRootKeys(strings.Join(entries, ","))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func testBinding(tenantID string) kms.Binding {
	return kms.Binding{kms.BindingTenant: tenantID, kms.BindingKeyID: "dk-1"}
}

// fakeClock drives the KEK cache's TTL in tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

// wrapOne generates a data key for tenantID and returns its plaintext bytes
// and the wrapping.
func wrapOne(t *testing.T, s *Service, tenantID string) ([]byte, kms.Wrapped) {
	t.Helper()
	dk, w, err := s.ForTenant(tenantID).GenerateDataKey(t.Context(), testBinding(tenantID))
	if err != nil {
		t.Fatalf("GenerateDataKey(%s): %v", tenantID, err)
	}
	defer dk.Destroy()
	return append([]byte(nil), dk.Reveal()...), w
}

// mustUnwrap checks that w unwraps to want for tenantID.
func mustUnwrap(t *testing.T, s *Service, tenantID string, w kms.Wrapped, want []byte) {
	t.Helper()
	got, err := s.ForTenant(tenantID).Unwrap(t.Context(), w, testBinding(tenantID))
	if err != nil {
		t.Fatalf("Unwrap(%s, KEK v%s): %v", tenantID, w.KeyVersion, err)
	}
	defer got.Destroy()
	if string(got.Reveal()) != string(want) {
		t.Fatalf("Unwrap(%s, KEK v%s) returned another key", tenantID, w.KeyVersion)
	}
}
