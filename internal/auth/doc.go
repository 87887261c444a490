// Package auth decides who is calling tenantcrypt: it verifies the signed
// JWT that every request carries and turns it into a [Principal] (subject,
// tenant, roles), and it can act as the service's own token issuer.
//
// To authenticate requests, build one [Verifier] with [NewVerifier] at
// start-up, take the token from the request with [BearerToken] and call
// [Verifier.Verify]. Every refusal wraps [ErrUnauthenticated]; its message
// is a short reason that is safe to show to the client and never contains
// the token.
//
// The verifier's public keys come from a [KeySource]: a JWKS document
// fetched from the identity provider ([NewJWKSURL]), a JWKS file on disk
// ([NewJWKSFile]), a fixed set ([StaticKeys]) or tenantcrypt's own
// [Issuer] ([Issuer.KeySource]). Key sources accept public keys only.
//
// # What is accepted
//
// A token is a compact JWS signed with ES256 (P-256), EdDSA (Ed25519) or
// RS256 (RSA of at least 2048 bits) whose header names its key with "kid".
// The key must have the type of the header's algorithm, so an RS256 header
// cannot be checked with an EC key, and no HMAC algorithm is ever accepted,
// so a public key cannot be abused as an HMAC secret. The claims are
// iss (must equal the configured issuer), sub (required), aud (must contain
// the configured audience, by default "tenantcrypt"), exp (required), nbf
// and iat (not in the future), jti, tenantId and roles (one or more of
// "platform-admin", "tenant-admin", "service"). A token with a tenant role
// (tenant-admin or service) must name its tenant. Time checks allow a small
// clock skew (by default 30 s).
//
// # Caching and key removal
//
// At the service's request rates, verifying a signature per request is
// wasteful, so a Verifier remembers tokens it has verified, in a bounded LRU
// cache keyed by a per-process seeded hash and holding the token itself (a
// hit needs the very same token). An entry lives until the token's
// exp or for at most [VerifierConfig.CacheMaxAge] (default
// [DefaultCacheMaxAge], 1 minute), whichever comes first. The second bound
// is what makes removing a key from the key source effective: a token
// signed by a removed key keeps working for at most CacheMaxAge after the
// key source stops serving the key.
//
// # The self-issuer
//
// For local use and tests tenantcrypt signs its own tokens: [LoadOrCreateIssuer]
// keeps ES256 signing keys in a 0600 file in the data directory,
// [Issuer.Mint] signs a token, [Issuer.Rotate] replaces the signing key
// while old keys stay published for a while, and [Issuer.JWKS] is what the
// server publishes at /.well-known/jwks.json.
package auth
