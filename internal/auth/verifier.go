package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/tenantcrypt/tenantcrypt/api"
)

// Defaults and bounds of a [VerifierConfig].
const (
	// DefaultAudience is the audience tenantcrypt's tokens are for.
	DefaultAudience = "tenantcrypt"
	// DefaultSkew is the clock skew allowed when checking exp, nbf and iat.
	DefaultSkew = 30 * time.Second
	// MaxSkew bounds the configurable skew: more would stretch every
	// token's lifetime noticeably.
	MaxSkew = 5 * time.Minute
	// DefaultCacheSize is how many verified tokens a Verifier remembers.
	DefaultCacheSize = 10_000
	// DefaultCacheMaxAge bounds how long a verified token is trusted
	// without checking its signature and key again.
	DefaultCacheMaxAge = time.Minute
	// MaxTokenSize bounds the length of a token; longer ones are refused
	// before any parsing.
	MaxTokenSize = 8 << 10
	// DefaultMaxLifetime is the longest token lifetime accepted by default:
	// the built-in issuer's longest (MaxTokenTTL).
	DefaultMaxLifetime = MaxTokenTTL
)

// keyReferenceHeaders are the JWS header parameters that carry or point to
// a key or certificate. A verifier that honoured one would let the token
// choose its own verification key; tenantcrypt only uses keys it was
// configured with, and refuses tokens that bring one (RFC 8725, 3.10).
var keyReferenceHeaders = []string{"jwk", "jku", "x5u", "x5c"}

// allowedAlgorithms are the only signature algorithms accepted: asymmetric,
// so that verifying keys are public, and none of them HMAC.
var allowedAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256}

// VerifierConfig configures a [Verifier]. Zero fields take their defaults.
type VerifierConfig struct {
	// Issuer is the required "iss" claim. Required.
	Issuer string
	// Audience must be one of the token's "aud" values. Default
	// DefaultAudience.
	Audience string
	// Skew is the clock skew allowed on exp, nbf and iat. Default
	// DefaultSkew; at most MaxSkew.
	Skew time.Duration
	// MaxLifetime is the longest lifetime a token may have: from its iat
	// (or from now, whatever its iat says) to its exp. Default
	// DefaultMaxLifetime; negative: no limit.
	MaxLifetime time.Duration
	// Keys supplies the public keys that tokens name by "kid". Required.
	Keys KeySource
	// CacheSize is the number of verified tokens remembered. Default
	// DefaultCacheSize; a negative value turns the cache off.
	CacheSize int
	// CacheMaxAge bounds how long a verified token is trusted without
	// checking it again, so that a key removed from Keys stops being
	// honoured within that time. Default DefaultCacheMaxAge.
	CacheMaxAge time.Duration
	// Now returns the current time; for tests. Default time.Now.
	Now func() time.Time
}

// Verifier checks bearer tokens and turns them into principals. It is safe
// for concurrent use; build one per process and share it.
type Verifier struct {
	issuer   string
	audience string
	skew     time.Duration
	lifetime time.Duration // 0: no limit
	keys     KeySource
	cache    *tokenCache // nil when caching is off
	seed     maphash.Seed
	maxAge   time.Duration
	now      func() time.Time
}

// NewVerifier returns a Verifier configured by cfg, after checking it.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("auth: verifier needs an issuer")
	}
	if cfg.Keys == nil {
		return nil, errors.New("auth: verifier needs a key source")
	}
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	switch {
	case cfg.Skew == 0:
		cfg.Skew = DefaultSkew
	case cfg.Skew < 0 || cfg.Skew > MaxSkew:
		return nil, fmt.Errorf("auth: clock skew %v out of range (0, %v]", cfg.Skew, MaxSkew)
	}
	switch {
	case cfg.MaxLifetime == 0:
		cfg.MaxLifetime = DefaultMaxLifetime
	case cfg.MaxLifetime < 0:
		cfg.MaxLifetime = 0
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	switch {
	case cfg.CacheMaxAge == 0:
		cfg.CacheMaxAge = DefaultCacheMaxAge
	case cfg.CacheMaxAge < 0:
		return nil, fmt.Errorf("auth: negative cache max age %v", cfg.CacheMaxAge)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &Verifier{
		issuer:   cfg.Issuer,
		audience: cfg.Audience,
		skew:     cfg.Skew,
		lifetime: cfg.MaxLifetime,
		keys:     cfg.Keys,
		maxAge:   cfg.CacheMaxAge,
		now:      cfg.Now,
	}
	if cfg.CacheSize > 0 {
		v.cache = newTokenCache(cfg.CacheSize)
		v.seed = maphash.MakeSeed()
	}
	return v, nil
}

// Verify checks token, a compact JWS, and returns the principal it
// authenticates. Every refusal is an error wrapping ErrUnauthenticated
// whose message is safe to show to the client. ctx bounds the key lookup
// of a token not yet cached.
func (v *Verifier) Verify(ctx context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, errMissingToken
	}
	if len(token) > MaxTokenSize {
		return Principal{}, errTooLarge
	}
	now := v.now()
	var key uint64
	if v.cache != nil {
		key = maphash.String(v.seed, token)
		if p, ok := v.cache.get(key, token, now.UnixNano()); ok {
			p.Roles = slices.Clone(p.Roles)
			return p, nil
		}
	}
	p, err := v.verify(ctx, token, now)
	if err != nil {
		return Principal{}, err
	}
	if v.cache != nil {
		// Trust the entry until the token's exp, and for at most maxAge so
		// that a key removed from the key source stops being honoured. A
		// token already past its exp (accepted within the skew) is not
		// worth an entry.
		if deadline := min(p.ExpiresAt.UnixNano(), now.Add(v.maxAge).UnixNano()); deadline > now.UnixNano() {
			v.cache.put(key, token, p, deadline)
			p.Roles = slices.Clone(p.Roles)
		}
	}
	return p, nil
}

// claims are the registered and private claims of a tenantcrypt token.
type claims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  jwt.Audience     `json:"aud"`
	Expiry    *jwt.NumericDate `json:"exp"`
	NotBefore *jwt.NumericDate `json:"nbf"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	ID        string           `json:"jti"`
	TenantID  string           `json:"tenantId"`
	Roles     []string         `json:"roles"`
}

// verify does the full check of a token that is not cached.
func (v *Verifier) verify(ctx context.Context, token string, now time.Time) (Principal, error) {
	tok, err := jwt.ParseSigned(token, allowedAlgorithms)
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return Principal{}, errAlgorithm
		}
		return Principal{}, errMalformed
	}
	if len(tok.Headers) != 1 {
		return Principal{}, errMalformed
	}
	h := tok.Headers[0]
	// The compact form has no room for an unprotected header; "crit" and
	// "b64" change how the signature is computed and have no use in a JWT.
	if _, ok := h.ExtraHeaders["crit"]; ok {
		return Principal{}, errMalformed
	}
	if _, ok := h.ExtraHeaders["b64"]; ok {
		return Principal{}, errMalformed
	}
	if h.JSONWebKey != nil || hasKeyReference(token) {
		return Principal{}, errKeyInHeader
	}
	if h.KeyID == "" {
		return Principal{}, errMissingKeyID
	}
	key, err := v.keys.Key(ctx, h.KeyID)
	if err != nil {
		switch {
		case errors.Is(err, ErrKeyNotFound):
			return Principal{}, rejectWith(reasonUnknownKeyID, err)
		case ctx.Err() != nil:
			return Principal{}, rejectWith(reasonRequestCancelled, ctx.Err())
		default:
			return Principal{}, rejectWith(reasonKeysUnavailable, err)
		}
	}
	if err := keyFits(key, jose.SignatureAlgorithm(h.Algorithm)); err != nil {
		return Principal{}, err
	}
	// Passing the bare key, not the JSONWebKey, keeps go-jose from looking
	// for keys anywhere else.
	if err := tok.Claims(key.Key); err != nil {
		return Principal{}, errSignature
	}
	var c claims
	// The signature was verified just above, on this very token.
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		return Principal{}, errMalformedClaims
	}
	return v.checkClaims(&c, now)
}

// hasKeyReference reports whether the protected header of the compact JWS
// token names one of keyReferenceHeaders. go-jose parses "jwk" and "x5c"
// into fields of its own (and "x5c" only partly visibly), so the header is
// read here as it was sent.
func hasKeyReference(token string) bool {
	encoded, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(encoded)
	if err != nil {
		return true // go-jose has decoded it already; refuse what it would not
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw, &header); err != nil {
		return true
	}
	for _, name := range keyReferenceHeaders {
		if _, ok := header[name]; ok {
			return true
		}
	}
	return false
}

// keyFits checks that key may verify a signature made with alg: a public key
// of exactly the algorithm's type, curve and strength, meant for signatures.
func keyFits(key jose.JSONWebKey, alg jose.SignatureAlgorithm) error {
	if !key.IsPublic() {
		return errKeyNotAllowed
	}
	if key.Use != "" && key.Use != "sig" {
		return errKeyNotAllowed
	}
	if key.Algorithm != "" && key.Algorithm != string(alg) {
		return errKeyMismatch
	}
	switch alg {
	case jose.ES256:
		if k, ok := key.Key.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
			return errKeyMismatch
		}
	case jose.EdDSA:
		if k, ok := key.Key.(ed25519.PublicKey); !ok || len(k) != ed25519.PublicKeySize {
			return errKeyMismatch
		}
	case jose.RS256:
		k, ok := key.Key.(*rsa.PublicKey)
		if !ok {
			return errKeyMismatch
		}
		if k.N == nil || k.N.BitLen() < MinRSABits {
			return errKeyNotAllowed
		}
	default:
		return errAlgorithm
	}
	return nil
}

func (v *Verifier) checkClaims(c *claims, now time.Time) (Principal, error) {
	if c.Subject == "" {
		return Principal{}, errMissingSubject
	}
	if c.Expiry == nil {
		return Principal{}, errMissingExpiry
	}
	if c.Issuer != v.issuer {
		return Principal{}, errIssuer
	}
	if !c.Audience.Contains(v.audience) {
		return Principal{}, errAudience
	}
	exp := c.Expiry.Time()
	if !now.Before(exp.Add(v.skew)) {
		return Principal{}, errExpired
	}
	if c.NotBefore != nil && now.Add(v.skew).Before(c.NotBefore.Time()) {
		return Principal{}, errNotYetValid
	}
	if c.IssuedAt != nil && now.Add(v.skew).Before(c.IssuedAt.Time()) {
		return Principal{}, errIssuedInFuture
	}
	if v.lifetime > 0 {
		// From iat when the token has one, and from now in any case, so
		// that leaving iat out does not lift the limit.
		if exp.Sub(now) > v.lifetime+v.skew || c.IssuedAt != nil && exp.Sub(c.IssuedAt.Time()) > v.lifetime+v.skew {
			return Principal{}, errLifetime
		}
	}
	if len(c.Roles) == 0 {
		return Principal{}, errMissingRoles
	}
	roles := make([]Role, 0, len(c.Roles))
	tenantScoped := false
	for _, name := range c.Roles {
		r, err := ParseRole(name)
		if err != nil {
			return Principal{}, errUnknownRole
		}
		tenantScoped = tenantScoped || r.tenantScoped()
		roles = append(roles, r)
	}
	if tenantScoped && c.TenantID == "" {
		return Principal{}, errMissingTenant
	}
	if c.TenantID != "" && !api.ValidTenantID(c.TenantID) {
		// Not a tenant: "_platform" (the audit log's platform chain) or
		// anything else no tenant can be called.
		return Principal{}, errInvalidTenant
	}
	roles, _ = normalizeRoles(roles) // every role was parsed above
	return Principal{
		Subject:   c.Subject,
		TenantID:  c.TenantID,
		TokenID:   c.ID,
		Roles:     roles,
		ExpiresAt: exp,
	}, nil
}
