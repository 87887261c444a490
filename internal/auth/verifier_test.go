package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestVerify(t *testing.T) {
	keys := testKeys()
	es, ed, rs := keys["es256"], keys["eddsa"], keys["rs256"]
	ecPub := es.public().Key.(*ecdsa.PublicKey)
	good := claimsAt(t0)

	// The HMAC confusion attack: an HS256 MAC keyed with the bytes of the
	// verifier's public EC key, under that key's kid.
	ecPubBytes, err := ecPub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	hsHeader := map[string]any{"alg": "HS256", "typ": "JWT", "kid": es.private.KeyID}
	hsUnsigned := strings.TrimSuffix(rawToken(hsHeader, good, nil), ".")
	mac := hmac.New(sha256.New, ecPubBytes)
	mac.Write([]byte(hsUnsigned))
	hs256 := hsUnsigned + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	tests := []struct {
		name  string
		token string
		want  string // rejection reason; empty: accepted
	}{
		{"ES256", sign(t, es, good, nil), ""},
		{"EdDSA", sign(t, ed, good, nil), ""},
		{"RS256", sign(t, rs, good, nil), ""},
		{"audience list", sign(t, es, with(good, "aud", []string{"other", "tenantcrypt"}), nil), ""},
		{"platform-admin without tenant", sign(t, es, with(good, "roles", []string{"platform-admin"}, "tenantId", nil), nil), ""},
		{"expired within skew", sign(t, es, with(good, "exp", t0.Add(-20*time.Second).Unix()), nil), ""},
		{"nbf within skew", sign(t, es, with(good, "nbf", t0.Add(20*time.Second).Unix()), nil), ""},
		{"no nbf, iat, jti", sign(t, es, with(good, "nbf", nil, "iat", nil, "jti", nil), nil), ""},

		{"empty", "", reasonMissingToken},
		{"too large", sign(t, es, with(good, "pad", strings.Repeat("x", MaxTokenSize)), nil), reasonTooLarge},
		{"garbage", "not-a-jwt", reasonMalformed},
		{"two segments", "eyJhbGciOiJFUzI1NiJ9.e30", reasonMalformed},
		{"JSON serialization", `{"payload":"e30","protected":"eyJhbGciOiJFUzI1NiJ9","signature":"AA"}`, reasonMalformed},
		{"alg none", rawToken(map[string]any{"alg": "none", "typ": "JWT", "kid": es.private.KeyID}, good, nil), reasonAlgorithm},
		{"alg None", rawToken(map[string]any{"alg": "None", "kid": es.private.KeyID}, good, nil), reasonAlgorithm},
		{"no alg", rawToken(map[string]any{"kid": es.private.KeyID}, good, []byte("sig")), reasonAlgorithm},
		{"HS256 keyed with the public key", hs256, reasonAlgorithm},
		{"ES384", sign(t, keys["es384"], good, nil), reasonAlgorithm},
		{"RS256 header with EC kid", sign(t, rs, good, map[jose.HeaderKey]any{"kid": es.private.KeyID}), reasonKeyMismatch},
		{"ES256 header with EdDSA kid", sign(t, es, good, map[jose.HeaderKey]any{"kid": ed.private.KeyID}), reasonKeyMismatch},
		{"EdDSA header with RSA kid", sign(t, ed, good, map[jose.HeaderKey]any{"kid": rs.private.KeyID}), reasonKeyMismatch},
		{"signed by another key", sign(t, keys["other"], good, nil), reasonSignature},
		{"tampered claims", tamper(t, sign(t, es, good, nil)), reasonSignature},
		{"missing kid", sign(t, es, good, map[jose.HeaderKey]any{"kid": ""}), reasonMissingKeyID},
		{"unknown kid", sign(t, es, good, map[jose.HeaderKey]any{"kid": "nope"}), reasonUnknownKeyID},
		{"crit header", sign(t, es, good, map[jose.HeaderKey]any{"crit": []string{"exp"}, "exp": 1}), reasonMalformed},
		{"wrong issuer", sign(t, es, with(good, "iss", "https://evil.test"), nil), reasonIssuer},
		{"missing issuer", sign(t, es, with(good, "iss", nil), nil), reasonIssuer},
		{"wrong audience", sign(t, es, with(good, "aud", "other"), nil), reasonAudience},
		{"missing audience", sign(t, es, with(good, "aud", nil), nil), reasonAudience},
		{"missing subject", sign(t, es, with(good, "sub", nil), nil), reasonMissingSubject},
		{"missing exp", sign(t, es, with(good, "exp", nil), nil), reasonMissingExpiry},
		{"expired", sign(t, es, with(good, "exp", t0.Add(-DefaultSkew).Unix()), nil), reasonExpired},
		{"long expired", sign(t, es, with(good, "exp", t0.Add(-time.Hour).Unix()), nil), reasonExpired},
		{"nbf in future", sign(t, es, with(good, "nbf", t0.Add(DefaultSkew+time.Second).Unix()), nil), reasonNotYetValid},
		{"iat in future", sign(t, es, with(good, "iat", t0.Add(time.Minute).Unix()), nil), reasonIssuedInFuture},
		{"exp not a number", sign(t, es, with(good, "exp", "tomorrow"), nil), reasonMalformedClaims},
		{"roles not an array", sign(t, es, with(good, "roles", "service"), nil), reasonMalformedClaims},
		{"no roles", sign(t, es, with(good, "roles", nil), nil), reasonMissingRoles},
		{"empty roles", sign(t, es, with(good, "roles", []string{}), nil), reasonMissingRoles},
		{"unknown role", sign(t, es, with(good, "roles", []string{"service", "root"}), nil), reasonUnknownRole},
		{"role in wrong case", sign(t, es, with(good, "roles", []string{"Service"}), nil), reasonUnknownRole},
		{"service without tenant", sign(t, es, with(good, "tenantId", nil), nil), reasonMissingTenant},
		{"tenant-admin with empty tenant", sign(t, es, with(good, "tenantId", "", "roles", []string{"tenant-admin"}), nil), reasonMissingTenant},
		{"platform-admin and service without tenant", sign(t, es, with(good, "tenantId", nil, "roles", []string{"platform-admin", "service"}), nil), reasonMissingTenant},

		{"tenant-admin of _platform", sign(t, es, with(good, "tenantId", "_platform", "roles", []string{"tenant-admin"}), nil), reasonInvalidTenant},
		{"service of _platform", sign(t, es, with(good, "tenantId", "_platform"), nil), reasonInvalidTenant},
		{"platform-admin with a bad tenantId", sign(t, es, with(good, "tenantId", "../acme", "roles", []string{"platform-admin"}), nil), reasonInvalidTenant},
		{"tenantId too long", sign(t, es, with(good, "tenantId", strings.Repeat("a", 65)), nil), reasonInvalidTenant},
		{"tenantId not ASCII", sign(t, es, with(good, "tenantId", "acmé"), nil), reasonInvalidTenant},

		{"lifetime of exactly the maximum", sign(t, es, with(good, "exp", t0.Add(DefaultMaxLifetime).Unix()), nil), ""},
		{"exp a century ahead", sign(t, es, with(good, "exp", t0.AddDate(100, 0, 0).Unix()), nil), reasonLifetime},
		{"exp a century ahead, no iat", sign(t, es, with(good, "exp", t0.AddDate(100, 0, 0).Unix(), "iat", nil), nil), reasonLifetime},
		{"issued two days ago, valid for ten minutes more", sign(t, es, with(good, "iat", t0.Add(-48*time.Hour).Unix()), nil), reasonLifetime},

		{"jwk header", sign(t, es, good, map[jose.HeaderKey]any{"jwk": es.public()}), reasonKeyInHeader},
		{"jku header", sign(t, es, good, map[jose.HeaderKey]any{"jku": "https://evil.test/jwks.json"}), reasonKeyInHeader},
		{"x5u header", sign(t, es, good, map[jose.HeaderKey]any{"x5u": "https://evil.test/cert.pem"}), reasonKeyInHeader},
		{"x5c header", sign(t, es, good, map[jose.HeaderKey]any{"x5c": []string{selfSignedCert(t)}}), reasonKeyInHeader},
	}
	clock := newClock()
	v := newTestVerifier(t, mustStatic(t, es.public(), ed.public(), rs.public()), clock)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), tt.token)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Verify: %v, want success", err)
				}
				if p.Subject != "svc-billing" {
					t.Errorf("Subject = %q, want %q", p.Subject, "svc-billing")
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify succeeded, want %q", tt.want)
			}
			if got := reasonOf(t, err); got != tt.want {
				t.Errorf("reason = %q, want %q", got, tt.want)
			}
			if len(tt.token) > 20 && strings.Contains(err.Error(), tt.token) {
				t.Errorf("error message contains the token")
			}
		})
	}
}

// tamper changes one claim of a signed token without re-signing it.
func tamper(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	claims := payloadOf(t, token)
	claims["tenantId"] = "t2"
	forged := rawToken(headerOf(t, token), claims, nil)
	fp := strings.Split(forged, ".")
	return fp[0] + "." + fp[1] + "." + parts[2]
}

func TestVerifyPrincipal(t *testing.T) {
	es := testKeys()["es256"]
	clock := newClock()
	v := newTestVerifier(t, mustStatic(t, es.public()), clock)
	claims := with(claimsAt(t0), "roles", []string{"service", "tenant-admin", "service"})
	p, err := v.Verify(context.Background(), sign(t, es, claims, nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Principal{
		Subject:   "svc-billing",
		TenantID:  "t1",
		TokenID:   "token-1",
		Roles:     []Role{RoleTenantAdmin, RoleService},
		ExpiresAt: t0.Add(10 * time.Minute),
	}
	if got := p; got.Subject != want.Subject || got.TenantID != want.TenantID || got.TokenID != want.TokenID ||
		!slices.Equal(got.Roles, want.Roles) || !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Errorf("principal = %+v, want %+v", got, want)
	}
	for _, tt := range []struct {
		role Role
		want bool
	}{{RolePlatformAdmin, false}, {RoleTenantAdmin, true}, {RoleService, true}, {0, false}} {
		if got := p.Has(tt.role); got != tt.want {
			t.Errorf("Has(%v) = %v, want %v", tt.role, got, tt.want)
		}
	}
}

// TestVerifyKeyChecks covers keys that a custom key source might hand out
// but that must not be used.
func TestVerifyKeyChecks(t *testing.T) {
	keys := testKeys()
	es, rs, weak := keys["es256"], keys["rs256"], keys["rsa1024"]
	good := claimsAt(t0)
	withUse := es.public()
	withUse.Use = "enc"
	withAlg := es.public()
	withAlg.Algorithm = "RS256"
	weakToken := signWithoutFIPS(t, weak, good) // as an outside issuer would
	tests := []struct {
		name   string
		key    jose.JSONWebKey
		keyErr error
		token  string
		want   string
	}{
		{"RSA key under 2048 bits", weak.public(), nil, weakToken, reasonKeyNotAllowed},
		{"private key", es.private, nil, sign(t, es, good, nil), reasonKeyNotAllowed},
		{"symmetric key", jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "es-1"}, nil, sign(t, es, good, nil), reasonKeyNotAllowed},
		{"encryption key", withUse, nil, sign(t, es, good, nil), reasonKeyNotAllowed},
		{"key for another algorithm", withAlg, nil, sign(t, es, good, nil), reasonKeyMismatch},
		{"P-256 key with ES256 but RSA token", es.public(), nil, sign(t, rs, good, map[jose.HeaderKey]any{"kid": "es-1"}), reasonKeyMismatch},
		{"key source down", jose.JSONWebKey{}, errors.New("connection refused"), sign(t, es, good, nil), reasonKeysUnavailable},
		{"key not found", jose.JSONWebKey{}, ErrKeyNotFound, sign(t, es, good, nil), reasonUnknownKeyID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := keySourceFunc(func(context.Context, string) (jose.JSONWebKey, error) { return tt.key, tt.keyErr })
			v := newTestVerifier(t, src, newClock())
			_, err := v.Verify(context.Background(), tt.token)
			if err == nil {
				t.Fatalf("Verify succeeded, want %q", tt.want)
			}
			if got := reasonOf(t, err); got != tt.want {
				t.Errorf("reason = %q, want %q", got, tt.want)
			}
			if tt.keyErr != nil && !errors.Is(err, tt.keyErr) {
				t.Errorf("error %v does not wrap the key source's %v", err, tt.keyErr)
			}
		})
	}
}

func TestVerifyCancelled(t *testing.T) {
	es := testKeys()["es256"]
	src := keySourceFunc(func(ctx context.Context, _ string) (jose.JSONWebKey, error) {
		<-ctx.Done()
		return jose.JSONWebKey{}, ctx.Err()
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	v := newTestVerifier(t, src, newClock())
	_, err := v.Verify(ctx, sign(t, es, claimsAt(t0), nil))
	if got, want := reasonOf(t, err), reasonRequestCancelled; got != want {
		t.Errorf("reason = %q, want %q", got, want)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v does not wrap context.Canceled", err)
	}
}

func TestVerifierConfig(t *testing.T) {
	keys := mustStatic(t)
	tests := []struct {
		name    string
		cfg     VerifierConfig
		wantErr bool
	}{
		{"minimal", VerifierConfig{Issuer: "i", Keys: keys}, false},
		{"no issuer", VerifierConfig{Keys: keys}, true},
		{"no keys", VerifierConfig{Issuer: "i"}, true},
		{"negative skew", VerifierConfig{Issuer: "i", Keys: keys, Skew: -time.Second}, true},
		{"huge skew", VerifierConfig{Issuer: "i", Keys: keys, Skew: time.Hour}, true},
		{"negative cache age", VerifierConfig{Issuer: "i", Keys: keys, CacheMaxAge: -time.Second}, true},
		{"cache off", VerifierConfig{Issuer: "i", Keys: keys, CacheSize: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewVerifier(tt.cfg)
			if got := err != nil; got != tt.wantErr {
				t.Errorf("NewVerifier error = %v, want error: %v", err, tt.wantErr)
			}
		})
	}
	v, err := NewVerifier(VerifierConfig{Issuer: "i", Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if v.audience != DefaultAudience || v.skew != DefaultSkew || v.maxAge != DefaultCacheMaxAge || v.cache == nil {
		t.Errorf("defaults: audience %q, skew %v, max age %v, cache %v; want %q, %v, %v, on",
			v.audience, v.skew, v.maxAge, v.cache != nil, DefaultAudience, DefaultSkew, DefaultCacheMaxAge)
	}
}

func TestVerifyCustomAudienceAndSkew(t *testing.T) {
	es := testKeys()["es256"]
	clock := newClock()
	v := newTestVerifier(t, mustStatic(t, es.public()), clock, func(c *VerifierConfig) {
		c.Audience = "billing"
		c.Skew = time.Second
	})
	tests := []struct {
		name   string
		claims map[string]any
		want   string
	}{
		{"own audience", with(claimsAt(t0), "aud", "billing"), ""},
		{"default audience", claimsAt(t0), reasonAudience},
		{"expired by 1s", with(claimsAt(t0), "aud", "billing", "exp", t0.Add(-time.Second).Unix()), reasonExpired},
		{"nbf in 2s", with(claimsAt(t0), "aud", "billing", "nbf", t0.Add(2*time.Second).Unix()), reasonNotYetValid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), sign(t, es, tt.claims, nil))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if got := reasonOf(t, err); got != tt.want {
				t.Errorf("reason = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestVerifyRejectsECKeyOnOtherCurve: a P-384 key published under a kid
// must not verify an ES256 token even if someone signed with it.
func TestVerifyRejectsECKeyOnOtherCurve(t *testing.T) {
	es384 := testKeys()["es384"]
	pub := es384.public()
	pub.KeyID = "es-1"
	v := newTestVerifier(t, mustStatic(t, pub), newClock())
	token := sign(t, testKeys()["es256"], claimsAt(t0), nil)
	_, err := v.Verify(context.Background(), token)
	if got, want := reasonOf(t, err), reasonKeyMismatch; got != want {
		t.Errorf("reason = %q, want %q", got, want)
	}
}

// selfSignedCert is a base64 DER certificate, as an x5c header carries.
func selfSignedCert(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "evil"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}
