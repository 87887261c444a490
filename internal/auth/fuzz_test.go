package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// fuzzKeyFile is the public key (a JWKS) under which the valid seeds of
// FuzzVerify verify; TestWriteFuzzSeeds made the seeds with its private
// half and threw that away.
const fuzzKeyFile = "testdata/fuzz-verify-jwks.json"

const fuzzSeedDir = "testdata/fuzz/FuzzVerify"

// fuzzNow is FuzzVerify's clock: the seeds' valid tokens are valid then.
var fuzzNow = time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC)

func FuzzVerify(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join(fuzzSeedDir, "*"))
	if len(seeds) < 10 {
		f.Fatalf("seed corpus missing: %d files in %s, want at least 10 (TENANTCRYPT_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds)", len(seeds), fuzzSeedDir)
	}
	data, err := os.ReadFile(fuzzKeyFile)
	if err != nil {
		f.Fatalf("fuzz key missing: %v", err)
	}
	fuzzKeys, err := parseJWKS(data)
	if err != nil {
		f.Fatal(err)
	}
	// The test keys as well, so that runtime-made tokens verify too.
	es, ed := testKeys()["es256"], testKeys()["eddsa"]
	keys := keySourceFunc(func(ctx context.Context, kid string) (jose.JSONWebKey, error) {
		switch kid {
		case es.private.KeyID:
			return es.public(), nil
		case ed.private.KeyID:
			return ed.public(), nil
		}
		return fuzzKeys.Key(ctx, kid)
	})
	// The corpus's valid tokens live for a century: no lifetime limit, so
	// that they reach the end of Verify.
	v, err := NewVerifier(VerifierConfig{
		Issuer: testIssuer, Keys: keys, CacheSize: 64, MaxLifetime: -1,
		Now: func() time.Time { return fuzzNow },
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sign(f, es, claimsAt(fuzzNow), nil))
	f.Add(sign(f, ed, with(claimsAt(fuzzNow), "roles", []string{"platform-admin"}, "tenantId", nil), nil))

	f.Fuzz(func(t *testing.T, token string) {
		p, err := v.Verify(context.Background(), token)
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("error %v does not wrap ErrUnauthenticated", err)
			}
			if len(token) >= 16 && strings.Contains(err.Error(), token) {
				t.Fatalf("error message %q contains the token", err)
			}
			return
		}
		if p.Subject == "" || len(p.Roles) == 0 || p.ExpiresAt.IsZero() {
			t.Fatalf("accepted a token with an incomplete principal %+v", p)
		}
		for _, r := range p.Roles {
			if !r.valid() {
				t.Fatalf("principal with invalid role %v", r)
			}
			if r.tenantScoped() && p.TenantID == "" {
				t.Fatalf("principal with role %v but no tenant", r)
			}
		}
		if !fuzzNow.Before(p.ExpiresAt.Add(DefaultSkew)) {
			t.Fatalf("accepted a token that expired at %v", p.ExpiresAt)
		}
		// Accepted twice: the second time from the cache, identically.
		again, err := v.Verify(context.Background(), token)
		if err != nil || again.Subject != p.Subject || again.TenantID != p.TenantID {
			t.Fatalf("second Verify = %+v, %v; first was %+v", again, err, p)
		}
	})
}

// TestWriteFuzzSeeds regenerates the seed corpus of FuzzVerify and the key
// it verifies under.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("TENANTCRYPT_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set TENANTCRYPT_WRITE_FUZZ_SEEDS=1 to regenerate testdata/fuzz/FuzzVerify")
	}
	key := genKey(jose.ES256, "fuzz-1")
	pub := key.public()
	pub.Algorithm, pub.Use = "ES256", "sig"
	if err := os.WriteFile(fuzzKeyFile, append(jwksJSON(t, pub), '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	valid := with(claimsAt(fuzzNow), "exp", fuzzNow.Add(100*365*24*time.Hour).Unix())
	hdr := map[string]any{"alg": "ES256", "typ": "JWT", "kid": "fuzz-1"}
	seeds := map[string]string{
		"valid-es256":           sign(t, key, valid, nil),
		"valid-platform-admin":  sign(t, key, with(valid, "roles", []string{"platform-admin"}, "tenantId", nil), nil),
		"valid-shape-other-key": sign(t, genKey(jose.ES256, "fuzz-1"), valid, nil),
		"unknown-kid":           sign(t, key, valid, map[jose.HeaderKey]any{"kid": "nope"}),
		"no-kid":                sign(t, key, valid, map[jose.HeaderKey]any{"kid": ""}),
		"alg-none":              rawToken(map[string]any{"alg": "none", "kid": "fuzz-1"}, valid, nil),
		"alg-hs256":             rawToken(map[string]any{"alg": "HS256", "kid": "fuzz-1"}, valid, []byte("0123456789abcdef0123456789abcdef")),
		"expired":               sign(t, key, with(valid, "exp", fuzzNow.Add(-time.Hour).Unix()), nil),
		"tenant-role-no-tenant": sign(t, key, with(valid, "tenantId", nil), nil),
		"unknown-role":          sign(t, key, with(valid, "roles", []string{"root"}), nil),
		"crit-header":           sign(t, key, valid, map[jose.HeaderKey]any{"crit": []string{"b64"}, "b64": false}),
		"claims-not-object":     rawToken(hdr, []int{1, 2}, make([]byte, 64)),
		"exp-huge":              rawToken(hdr, with(valid, "exp", 1e300), make([]byte, 64)),
		"header-not-json":       "e30K.e30.AA",
		"empty-segments":        "..",
		"garbage":               "not-a-jwt",
		"json-serialization":    `{"payload":"e30","protected":"eyJhbGciOiJFUzI1NiJ9","signature":"AA"}`,
	}
	if err := os.MkdirAll(fuzzSeedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, token := range seeds {
		content := fmt.Sprintf("go test fuzz v1\nstring(%q)\n", token)
		if err := os.WriteFile(filepath.Join(fuzzSeedDir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The valid seeds must verify, or the corpus would not reach the end of
	// Verify.
	keys := mustStatic(t, pub)
	v := newTestVerifier(t, keys, &fakeClock{now: fuzzNow}, unlimitedLifetime)
	for _, name := range []string{"valid-es256", "valid-platform-admin"} {
		if _, err := v.Verify(context.Background(), seeds[name]); err != nil {
			t.Errorf("seed %s: %v", name, err)
		}
	}
}

// unlimitedLifetime lifts the lifetime limit for the corpus's valid tokens,
// which live for a century.
func unlimitedLifetime(c *VerifierConfig) { c.MaxLifetime = -1 }

// TestFuzzSeedsVerify keeps the corpus honest: its valid seeds verify.
func TestFuzzSeedsVerify(t *testing.T) {
	data, err := os.ReadFile(fuzzKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := parseJWKS(data)
	if err != nil {
		t.Fatal(err)
	}
	v := newTestVerifier(t, keys, &fakeClock{now: fuzzNow}, unlimitedLifetime)
	for _, tt := range []struct {
		seed string
		want string
	}{
		{"valid-es256", ""},
		{"valid-platform-admin", ""},
		{"valid-shape-other-key", reasonSignature},
		{"alg-none", reasonAlgorithm},
		{"alg-hs256", reasonAlgorithm},
		{"expired", reasonExpired},
	} {
		t.Run(tt.seed, func(t *testing.T) {
			token := readSeed(t, tt.seed)
			_, err := v.Verify(context.Background(), token)
			if tt.want == "" {
				if err != nil {
					t.Errorf("Verify: %v", err)
				}
				return
			}
			if got := reasonOf(t, err); got != tt.want {
				t.Errorf("reason = %q, want %q", got, tt.want)
			}
		})
	}
}

func readSeed(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fuzzSeedDir, name))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "\nstring(")
	if !ok {
		t.Fatalf("seed %s is not a go test fuzz v1 string", name)
	}
	var token string
	if err := json.Unmarshal([]byte(strings.TrimSuffix(strings.TrimSpace(rest), ")")), &token); err != nil {
		t.Fatalf("seed %s: %v", name, err)
	}
	return token
}
