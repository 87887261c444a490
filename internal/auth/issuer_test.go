package auth

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func newTestIssuer(t *testing.T, dir string, clock *fakeClock) *Issuer {
	t.Helper()
	iss, err := LoadOrCreateIssuer(dir, testIssuer)
	if err != nil {
		t.Fatal(err)
	}
	iss.now = clock.Now
	return iss
}

func kidsOf(iss *Issuer) []string {
	var kids []string
	for _, k := range iss.JWKS().Keys {
		kids = append(kids, k.KeyID)
	}
	return kids
}

func TestIssuerCreateAndReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	clock := newClock()
	iss := newTestIssuer(t, dir, clock)
	if got, want := iss.Name(), testIssuer; got != want {
		t.Errorf("Name() = %q, want %q", got, want)
	}
	info, err := os.Stat(filepath.Join(dir, IssuerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if got, want := info.Mode().Perm(), os.FileMode(0o600); got != want {
			t.Errorf("key file mode = %v, want %v", got, want)
		}
	}
	jwks := iss.JWKS()
	if got, want := len(jwks.Keys), 1; got != want {
		t.Fatalf("JWKS has %d keys, want %d", got, want)
	}
	k := jwks.Keys[0]
	if !k.IsPublic() || k.Algorithm != "ES256" || k.Use != "sig" || len(k.KeyID) != 43 {
		t.Errorf("JWKS key: public %v, alg %q, use %q, kid %q; want public ES256 sig key with a thumbprint kid",
			k.IsPublic(), k.Algorithm, k.Use, k.KeyID)
	}
	token, err := iss.Mint(TokenRequest{Subject: "svc", TenantID: "t1", Roles: []Role{RoleService}})
	if err != nil {
		t.Fatal(err)
	}

	// A second load, as by the CLI or after a restart, has the same key.
	again := newTestIssuer(t, dir, clock)
	if got, want := kidsOf(again), kidsOf(iss); !slices.Equal(got, want) {
		t.Errorf("reloaded kids = %v, want %v", got, want)
	}
	v := newTestVerifier(t, again.KeySource(), clock)
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Errorf("token of the first load, verified by the second: %v", err)
	}
	token2, err := again.Mint(TokenRequest{Subject: "admin", Roles: []Role{RolePlatformAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	v = newTestVerifier(t, mustStatic(t, iss.JWKS().Keys...), clock)
	if _, err := v.Verify(context.Background(), token2); err != nil {
		t.Errorf("token of the second load, verified by the first's JWKS: %v", err)
	}
}

func TestIssuerRefusesExposedKeyFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes are not POSIX permissions on windows")
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o644} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			if _, err := LoadOrCreateIssuer(dir, testIssuer); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(dir, IssuerKeyFile), mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreateIssuer(dir, testIssuer)
			if err == nil || !strings.Contains(err.Error(), "chmod 600") {
				t.Errorf("LoadOrCreateIssuer with mode %v: error = %v, want a refusal", mode, err)
			}
		})
	}
}

func TestIssuerBadKeyFile(t *testing.T) {
	tests := []struct {
		name    string
		content string
	}{
		{"empty", ""},
		{"not JSON", "{"},
		{"unknown version", `{"version":2,"keys":[]}`},
		{"no keys", `{"version":1,"keys":[]}`},
		{"public current key", `{"version":1,"keys":[{"created":"2030-01-01T00:00:00Z","jwk":` + string(must(json.Marshal(testKeys()["es256"].public()))) + `}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, IssuerKeyFile), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadOrCreateIssuer(dir, testIssuer); err == nil {
				t.Error("LoadOrCreateIssuer succeeded, want an error")
			}
		})
	}
	if _, err := LoadOrCreateIssuer(t.TempDir(), ""); err == nil {
		t.Error("LoadOrCreateIssuer without a name succeeded")
	}
}

func TestIssuerConcurrentCreate(t *testing.T) {
	dir := t.TempDir()
	issuers := make([]*Issuer, 8)
	var wg sync.WaitGroup
	for i := range issuers {
		wg.Go(func() {
			iss, err := LoadOrCreateIssuer(dir, testIssuer)
			if err != nil {
				t.Error(err)
				return
			}
			issuers[i] = iss
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i, iss := range issuers {
		if got, want := kidsOf(iss), kidsOf(issuers[0]); !slices.Equal(got, want) {
			t.Errorf("issuer %d has kids %v, issuer 0 has %v", i, got, want)
		}
	}
	tmp, _ := filepath.Glob(filepath.Join(dir, ".*.tmp"))
	if len(tmp) != 0 {
		t.Errorf("temporary files left behind: %v", tmp)
	}
}

func TestIssuerMint(t *testing.T) {
	clock := newClock()
	iss := newTestIssuer(t, t.TempDir(), clock)
	v := newTestVerifier(t, iss.KeySource(), clock)
	kid := kidsOf(iss)[0]

	token, err := iss.Mint(TokenRequest{Subject: "svc", TenantID: "t1", Roles: []Role{RoleService, RoleTenantAdmin, RoleService}, TTL: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	h := headerOf(t, token)
	if h["alg"] != "ES256" || h["kid"] != kid || h["typ"] != "JWT" {
		t.Errorf("header = %v, want alg ES256, kid %s, typ JWT", h, kid)
	}
	c := payloadOf(t, token)
	for name, want := range map[string]any{
		"iss":      testIssuer,
		"sub":      "svc",
		"aud":      "tenantcrypt",
		"tenantId": "t1",
		"iat":      float64(t0.Unix()),
		"nbf":      float64(t0.Unix()),
		"exp":      float64(t0.Add(5 * time.Minute).Unix()),
	} {
		if got := c[name]; got != want {
			t.Errorf("claim %s = %v, want %v", name, got, want)
		}
	}
	if got, want := c["roles"], []any{"tenant-admin", "service"}; !slices.Equal(asSlice(got), want) {
		t.Errorf("claim roles = %v, want %v", got, want)
	}
	if jti, _ := c["jti"].(string); len(jti) < 22 {
		t.Errorf("claim jti = %q, want a random id", jti)
	}
	p, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "svc" || p.TenantID != "t1" || !slices.Equal(p.Roles, []Role{RoleTenantAdmin, RoleService}) || p.TokenID != c["jti"] {
		t.Errorf("principal = %+v", p)
	}

	other, err := iss.Mint(TokenRequest{Subject: "svc", TenantID: "t1", Roles: []Role{RoleService}})
	if err != nil {
		t.Fatal(err)
	}
	oc := payloadOf(t, other)
	if oc["jti"] == c["jti"] {
		t.Errorf("two tokens share jti %v", c["jti"])
	}
	if got, want := oc["exp"], float64(t0.Add(DefaultTokenTTL).Unix()); got != want {
		t.Errorf("default exp = %v, want %v", got, want)
	}

	// A negative TTL mints a token that is already expired, for tests.
	expired, err := iss.Mint(TokenRequest{Subject: "svc", TenantID: "t1", Roles: []Role{RoleService}, TTL: -time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), expired)
	if got, want := reasonOf(t, err), reasonExpired; got != want {
		t.Errorf("negative TTL: reason = %q, want %q", got, want)
	}

	// Another audience.
	billing, err := iss.Mint(TokenRequest{Subject: "svc", TenantID: "t1", Roles: []Role{RoleService}, Audience: "billing"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), billing)
	if got, want := reasonOf(t, err), reasonAudience; got != want {
		t.Errorf("other audience: reason = %q, want %q", got, want)
	}
}

func TestIssuerMintRefuses(t *testing.T) {
	iss := newTestIssuer(t, t.TempDir(), newClock())
	tests := []struct {
		name string
		req  TokenRequest
	}{
		{"no subject", TokenRequest{TenantID: "t1", Roles: []Role{RoleService}}},
		{"no roles", TokenRequest{Subject: "s", TenantID: "t1"}},
		{"zero role", TokenRequest{Subject: "s", TenantID: "t1", Roles: []Role{0}}},
		{"service without tenant", TokenRequest{Subject: "s", Roles: []Role{RoleService}}},
		{"tenant-admin without tenant", TokenRequest{Subject: "s", Roles: []Role{RolePlatformAdmin, RoleTenantAdmin}}},
		{"TTL too long", TokenRequest{Subject: "s", TenantID: "t1", Roles: []Role{RoleService}, TTL: MaxTokenTTL + time.Second}},
		{"tenant-admin of _platform", TokenRequest{Subject: "s", TenantID: "_platform", Roles: []Role{RoleTenantAdmin}}},
		{"platform-admin with a bad tenant id", TokenRequest{Subject: "s", TenantID: "a b", Roles: []Role{RolePlatformAdmin}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if token, err := iss.Mint(tt.req); err == nil {
				t.Errorf("Mint succeeded with %q", token)
			}
		})
	}
}

func TestIssuerRotate(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	iss := newTestIssuer(t, dir, clock)
	v := newTestVerifier(t, iss.KeySource(), clock, func(c *VerifierConfig) { c.CacheSize = -1 })
	ctx := context.Background()
	mint := func() string {
		t.Helper()
		token, err := iss.Mint(TokenRequest{Subject: "svc", TenantID: "t1", Roles: []Role{RoleService}, TTL: 2 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return token
	}
	oldKid := kidsOf(iss)[0]
	oldToken := mint()

	const keepFor = 30 * time.Minute
	if err := iss.Rotate(keepFor); err != nil {
		t.Fatal(err)
	}
	kids := kidsOf(iss)
	if len(kids) != 2 || kids[1] != oldKid || kids[0] == oldKid {
		t.Fatalf("kids after rotation = %v, want [new %s]", kids, oldKid)
	}
	newKid := kids[0]
	newToken := mint()
	if got := headerOf(t, newToken)["kid"]; got != newKid {
		t.Errorf("new token kid = %v, want %v", got, newKid)
	}

	// The key file holds the retired key's public half only, and a reload
	// sees the same keys with the new one signing.
	data, err := os.ReadFile(filepath.Join(dir, IssuerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	var file issuerFile
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	for _, fk := range file.Keys {
		var m map[string]any
		if err := json.Unmarshal(fk.JWK, &m); err != nil {
			t.Fatal(err)
		}
		_, private := m["d"]
		if got, want := private, fk.Retired == nil; got != want {
			t.Errorf("key %v: private part stored = %v, want %v", m["kid"], got, want)
		}
	}
	reloaded := newTestIssuer(t, dir, clock)
	if got, want := kidsOf(reloaded), kids; !slices.Equal(got, want) {
		t.Errorf("reloaded kids = %v, want %v", got, want)
	}
	if tok, err := reloaded.Mint(TokenRequest{Subject: "s", Roles: []Role{RolePlatformAdmin}}); err != nil {
		t.Error(err)
	} else if got := headerOf(t, tok)["kid"]; got != newKid {
		t.Errorf("reloaded issuer signs with %v, want %v", got, newKid)
	}

	// Until keepFor has passed, tokens of the old key verify.
	clock.Advance(keepFor - time.Second)
	for name, token := range map[string]string{"old": oldToken, "new": newToken} {
		if _, err := v.Verify(ctx, token); err != nil {
			t.Errorf("%s token before keepFor: %v", name, err)
		}
	}
	// Then the old key is no longer published.
	clock.Advance(time.Second)
	if got, want := kidsOf(iss), []string{newKid}; !slices.Equal(got, want) {
		t.Errorf("kids after keepFor = %v, want %v", got, want)
	}
	_, err = v.Verify(ctx, oldToken)
	if got, want := reasonOf(t, err), reasonUnknownKeyID; got != want {
		t.Errorf("old token after keepFor: reason = %q, want %q", got, want)
	}
	if _, err := v.Verify(ctx, newToken); err != nil {
		t.Errorf("new token after keepFor: %v", err)
	}

	// The next rotation drops it from the file too.
	if err := iss.Rotate(keepFor); err != nil {
		t.Fatal(err)
	}
	reloaded = newTestIssuer(t, dir, clock)
	kids = kidsOf(reloaded)
	if len(kids) != 2 || kids[1] != newKid || slices.Contains(kids, oldKid) {
		t.Errorf("kids after the second rotation = %v, want [newer %s]", kids, newKid)
	}
	if err := iss.Rotate(-time.Second); err == nil {
		t.Error("Rotate with a negative keepFor succeeded")
	}
}

func TestIssuerConcurrentMintAndRotate(t *testing.T) {
	clock := newClock()
	iss := newTestIssuer(t, t.TempDir(), clock)
	v := newTestVerifier(t, iss.KeySource(), clock)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				token, err := iss.Mint(TokenRequest{Subject: "s", TenantID: "t", Roles: []Role{RoleService}})
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := v.Verify(context.Background(), token); err != nil {
					t.Error(err)
					return
				}
				_ = iss.JWKS()
			}
		})
	}
	wg.Go(func() {
		for range 5 {
			if err := iss.Rotate(time.Hour); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}
