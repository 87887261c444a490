package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// idp is an identity provider of the test's own: its public keys reach the
// server through a JWKS file, and it signs whatever the test asks.
type idp struct {
	t      *testing.T
	ec     *ecdsa.PrivateKey
	ed     ed25519.PrivateKey
	rsa    *rsa.PrivateKey
	issuer string
}

func newIDP(t *testing.T) (*idp, string) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	p := &idp{t: t, ec: ec, ed: ed, rsa: rk, issuer: "https://idp.test"}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &ec.PublicKey, KeyID: "ec-1", Algorithm: "ES256", Use: "sig"},
		{Key: ed.Public(), KeyID: "ed-1", Algorithm: "EdDSA", Use: "sig"},
		{Key: &rk.PublicKey, KeyID: "rsa-1", Algorithm: "RS256", Use: "sig"},
	}}
	b, _ := json.Marshal(set)
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, path
}

func (p *idp) claims(mod func(map[string]any)) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss": p.issuer, "sub": "svc-billing", "aud": "tenantcrypt", "jti": "j1",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"tenantId": "jwt", "roles": []string{"service"},
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func (p *idp) sign(alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	p.t.Helper()
	return p.signWithHeader(alg, key, kid, "", nil, claims)
}

// signWithHeader signs claims with key (under kid, or with no kid if it is
// empty), adding the protected header name: value unless name is empty.
func (p *idp) signWithHeader(alg jose.SignatureAlgorithm, key any, kid string, name jose.HeaderKey, value any, claims map[string]any) string {
	p.t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if name != "" {
		opts = opts.WithHeader(name, value)
	}
	sk := jose.SigningKey{Algorithm: alg, Key: key}
	if kid != "" {
		sk.Key = jose.JSONWebKey{Key: key, KeyID: kid}
	}
	signer, err := jose.NewSigner(sk, opts)
	if err != nil {
		p.t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		p.t.Fatal(err)
	}
	return tok
}

// handMade assembles a token from a header and claims with the given
// signature function, for algorithms no library will sign with.
func handMade(header, claims map[string]any, sig func(input string) []byte) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	return input + "." + enc.EncodeToString(sig(input))
}

// TestJWTRejections checks every way a token must be refused, end to end,
// against a server that verifies tokens from a JWKS file.
func TestJWTRejections(t *testing.T) {
	t.Parallel()
	p, jwks := newIDP(t)
	ts := startServer(t, nil, "--jwks-file", jwks, "--jwt-issuer", p.issuer)
	// The tenant is created with the IdP's own platform-admin token.
	admin := p.sign(jose.ES256, p.ec, "ec-1", p.claims(func(c map[string]any) {
		delete(c, "tenantId")
		c["roles"] = []string{"platform-admin"}
	}))
	if r := ts.do("POST", "/api/v1/tenants", admin, map[string]any{"id": "jwt", "name": "JWT", "edition": "business"}); r.status != 201 {
		t.Fatalf("create tenant with an IdP token: %d %s", r.status, r.body)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecJWK, _ := json.Marshal(jose.JSONWebKey{Key: &p.ec.PublicKey})
	tests := []struct {
		name   string
		token  string
		status int
		reason string
	}{
		{"ES256 accepted", p.sign(jose.ES256, p.ec, "ec-1", p.claims(nil)), 200, ""},
		{"EdDSA accepted", p.sign(jose.EdDSA, p.ed, "ed-1", p.claims(nil)), 200, ""},
		{"RS256 accepted", p.sign(jose.RS256, p.rsa, "rsa-1", p.claims(nil)), 200, ""},
		{"alg none", handMade(map[string]any{"alg": "none", "typ": "JWT", "kid": "ec-1"}, p.claims(nil), func(string) []byte { return nil }), 401, "algorithm not allowed"},
		{"HS256 with the public key as secret", handMade(map[string]any{"alg": "HS256", "typ": "JWT", "kid": "ec-1"}, p.claims(nil), func(in string) []byte {
			m := hmac.New(sha256.New, ecJWK)
			m.Write([]byte(in))
			return m.Sum(nil)
		}), 401, "algorithm not allowed"},
		{"RS256 header on the EC key", p.sign(jose.RS256, p.rsa, "ec-1", p.claims(nil)), 401, "key does not match algorithm"},
		{"missing kid", p.sign(jose.ES256, p.ec, "", p.claims(nil)), 401, "missing key id"},
		{"unknown kid", p.sign(jose.ES256, other, "ec-2", p.claims(nil)), 401, "unknown key id"},
		{"forged signature under a known kid", p.sign(jose.ES256, other, "ec-1", p.claims(nil)), 401, "invalid signature"},
		{"wrong issuer", p.sign(jose.ES256, p.ec, "ec-1", p.claims(func(c map[string]any) { c["iss"] = "https://evil.test" })), 401, "invalid issuer"},
		{"wrong audience", p.sign(jose.ES256, p.ec, "ec-1", p.claims(func(c map[string]any) { c["aud"] = "other-service" })), 401, "invalid audience"},
		{"missing audience", p.sign(jose.ES256, p.ec, "ec-1", p.claims(func(c map[string]any) { delete(c, "aud") })), 401, "invalid audience"},
		{"expired", p.sign(jose.ES256, p.ec, "ec-1", p.claims(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() })), 401, "token expired"},
		{"not yet valid", p.sign(jose.ES256, p.ec, "ec-1", p.claims(func(c map[string]any) { c["nbf"] = time.Now().Add(time.Hour).Unix() })), 401, "not yet valid"},
		{"tenant role without tenant", p.sign(jose.ES256, p.ec, "ec-1", p.claims(func(c map[string]any) { delete(c, "tenantId") })), 401, "tenant role without tenant id"},
		{"unknown role", p.sign(jose.ES256, p.ec, "ec-1", p.claims(func(c map[string]any) { c["roles"] = []string{"root"} })), 401, "unknown role"},
		{"a built-in issuer token", ts.token(1, ""), 401, ""},
		{"tenant _platform", p.sign(jose.ES256, p.ec, "ec-1", p.claims(func(c map[string]any) { c["tenantId"] = "_platform" })), 401, "tenantId is not a tenant id"},
		{"tenant id with a slash", p.sign(jose.ES256, p.ec, "ec-1", p.claims(func(c map[string]any) { c["tenantId"] = "jwt/../x" })), 401, "tenantId is not a tenant id"},
		{"exp a century ahead", p.sign(jose.ES256, p.ec, "ec-1", p.claims(func(c map[string]any) { c["exp"] = time.Now().AddDate(100, 0, 0).Unix() })), 401, "lifetime longer than allowed"},
		{"jwk in the header", p.signWithHeader(jose.ES256, p.ec, "ec-1", "jwk", jose.JSONWebKey{Key: &p.ec.PublicKey}, p.claims(nil)), 401, "key reference in token header"},
		{"jku in the header", p.signWithHeader(jose.ES256, p.ec, "ec-1", "jku", "https://evil.test/jwks.json", p.claims(nil)), 401, "key reference in token header"},
		{"x5u in the header", p.signWithHeader(jose.ES256, p.ec, "ec-1", "x5u", "https://evil.test/cert.pem", p.claims(nil)), 401, "key reference in token header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do("POST", "/api/v1/encryption/encrypt", tt.token, map[string]any{"plaintext": b64("x")})
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status == 200 {
				return
			}
			if got := r.errorCode(t); got != "Encryption-02" {
				t.Errorf("code = %s, want Encryption-02", got)
			}
			if !strings.Contains(string(r.body), tt.reason) {
				t.Errorf("body %s does not give the reason %q", r.body, tt.reason)
			}
			if strings.Contains(string(r.body), tt.token[:20]) {
				t.Errorf("the error echoes the token")
			}
		})
	}
	// With a JWKS configured, the built-in issuer's keys are not published.
	if r := ts.do("GET", "/.well-known/jwks.json", "", nil); r.status != 404 {
		t.Errorf("jwks with an external issuer: %d, want 404", r.status)
	}
}
