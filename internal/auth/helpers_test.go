package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/fips140"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const testIssuer = "https://issuer.test"

// t0 is the tests' "now": a whole second, as JWT times are.
var t0 = time.Date(2030, time.March, 4, 5, 6, 7, 0, time.UTC)

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testKey is a private signing key with its kid and algorithm.
type testKey struct {
	alg     jose.SignatureAlgorithm
	private jose.JSONWebKey
}

func (k testKey) public() jose.JSONWebKey { return k.private.Public() }

// genKey makes a new key; key generation does not fail in practice, so it
// panics if it does.
func genKey(alg jose.SignatureAlgorithm, kid string) testKey {
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case jose.RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		panic("genKey: unsupported " + alg)
	}
	if err != nil {
		panic(err)
	}
	return testKey{alg: alg, private: jose.JSONWebKey{Key: priv, KeyID: kid}}
}

// testKeys are generated once: RSA key generation is slow.
var testKeys = sync.OnceValue(func() map[string]testKey {
	// The weak key is a test input the verifier must refuse; under
	// GODEBUG=fips140=only only a test may make it.
	var rsa1024 *rsa.PrivateKey
	var err error
	fips140.WithoutEnforcement(func() { rsa1024, err = rsa.GenerateKey(rand.Reader, 1024) })
	if err != nil {
		panic(err)
	}
	return map[string]testKey{
		"es256":   genKey(jose.ES256, "es-1"),
		"eddsa":   genKey(jose.EdDSA, "ed-1"),
		"rs256":   genKey(jose.RS256, "rs-1"),
		"es384":   genKey(jose.ES384, "es384-1"),
		"other":   genKey(jose.ES256, "es-1"), // same kid as es256, other key
		"rsa1024": {alg: jose.RS256, private: jose.JSONWebKey{Key: rsa1024, KeyID: "rs-weak"}},
	}
})

// signWithoutFIPS is sign for a key that GODEBUG=fips140=only refuses
// (a weak one), as an outside issuer would sign with it: the verifier
// must refuse the token.
func signWithoutFIPS(t testing.TB, key testKey, claims any) string {
	var s string
	fips140.WithoutEnforcement(func() { s = sign(t, key, claims, nil) })
	return s
}

// sign makes a compact JWS of claims with key, setting the given extra
// protected headers. The kid header is the key's KeyID unless kid is set in
// headers (an empty string there omits it).
func sign(t testing.TB, key testKey, claims any, headers map[jose.HeaderKey]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	jwk := key.private
	for k, v := range headers {
		if k == "kid" {
			jwk.KeyID = v.(string)
			continue
		}
		opts = opts.WithHeader(k, v)
	}
	var signingKey any = jwk
	if jwk.KeyID == "" {
		signingKey = jwk.Key
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: key.alg, Key: signingKey}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawToken assembles a token from a header and claims, with the given
// signature bytes: for tokens go-jose refuses to make.
func rawToken(header, claims any, sig []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(c) + "." + enc.EncodeToString(sig)
}

// claimsAt are valid claims for a service of tenant t1 at now.
func claimsAt(now time.Time) map[string]any {
	return map[string]any{
		"iss":      testIssuer,
		"sub":      "svc-billing",
		"aud":      "tenantcrypt",
		"exp":      now.Add(10 * time.Minute).Unix(),
		"nbf":      now.Unix(),
		"iat":      now.Unix(),
		"jti":      "token-1",
		"tenantId": "t1",
		"roles":    []string{"service"},
	}
}

// with returns a copy of m with the given changes; a nil value deletes.
func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(out, k)
		} else {
			out[k] = kv[i+1]
		}
	}
	return out
}

// keySourceFunc adapts a function to KeySource.
type keySourceFunc func(ctx context.Context, kid string) (jose.JSONWebKey, error)

func (f keySourceFunc) Key(ctx context.Context, kid string) (jose.JSONWebKey, error) {
	return f(ctx, kid)
}

// countingKeys counts the lookups of a key source.
type countingKeys struct {
	KeySource
	n atomic.Int64
}

func (c *countingKeys) Key(ctx context.Context, kid string) (jose.JSONWebKey, error) {
	c.n.Add(1)
	return c.KeySource.Key(ctx, kid)
}

func mustStatic(t testing.TB, keys ...jose.JSONWebKey) KeySource {
	t.Helper()
	ks, err := StaticKeys(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func newTestVerifier(t testing.TB, keys KeySource, clock *fakeClock, mutate ...func(*VerifierConfig)) *Verifier {
	t.Helper()
	cfg := VerifierConfig{Issuer: testIssuer, Keys: keys, Now: clock.Now}
	for _, m := range mutate {
		m(&cfg)
	}
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// reasonOf returns the client-facing reason of a rejection, failing the
// test if err is not one.
func reasonOf(t testing.TB, err error) string {
	t.Helper()
	if !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("error %v does not wrap ErrUnauthenticated", err)
	}
	r, ok := errors.AsType[*rejection](err)
	if !ok {
		t.Fatalf("error %v is not a rejection", err)
	}
	if got, want := err.Error(), "unauthenticated: "+r.reason; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	return r.reason
}

// payloadOf decodes the claims of a compact JWS without verifying it.
func payloadOf(t testing.TB, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func headerOf(t testing.TB, token string) map[string]any {
	t.Helper()
	h, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
