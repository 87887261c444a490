package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// KeySource hands the verifier the public key a token names in its "kid"
// header.
type KeySource interface {
	// Key returns the public key with key id kid. It returns an error
	// wrapping ErrKeyNotFound if the source has no such key; any other
	// error means the source could not be consulted (the verifier then
	// refuses the token as "signing keys unavailable"). Key is called for
	// every token the verifier has not cached, concurrently, so it must be
	// cheap and safe for concurrent use.
	Key(ctx context.Context, kid string) (jose.JSONWebKey, error)
}

// MinRSABits is the smallest RSA modulus, in bits, that a key source
// accepts and the verifier uses.
const MinRSABits = 2048

// MaxJWKSSize bounds a JWKS document read from a file or fetched from a URL.
const MaxJWKSSize = 1 << 20

// StaticKeys returns a KeySource serving the keys of set, for keys that are
// configured rather than fetched, and for tests. It refuses a set holding a
// private or symmetric key, an RSA key shorter than [MinRSABits], a key
// without a key id, or two keys with the same key id.
func StaticKeys(set jose.JSONWebKeySet) (KeySource, error) {
	ks := &keySet{keys: make(map[string]jose.JSONWebKey, len(set.Keys))}
	for _, k := range set.Keys {
		if k.KeyID == "" {
			return nil, errors.New("auth: key without a key id")
		}
		if err := ks.add(k); err != nil {
			return nil, err
		}
	}
	return ks, nil
}

// keySet is an immutable set of public keys by key id.
type keySet struct {
	keys map[string]jose.JSONWebKey
}

var _ KeySource = (*keySet)(nil)

func (s *keySet) Key(_ context.Context, kid string) (jose.JSONWebKey, error) {
	if k, ok := s.lookup(kid); ok {
		return k, nil
	}
	return jose.JSONWebKey{}, ErrKeyNotFound
}

func (s *keySet) lookup(kid string) (jose.JSONWebKey, bool) {
	if s == nil {
		return jose.JSONWebKey{}, false
	}
	k, ok := s.keys[kid]
	return k, ok
}

func (s *keySet) add(k jose.JSONWebKey) error {
	if err := checkPublicKey(k); err != nil {
		return fmt.Errorf("auth: key %q: %w", k.KeyID, err)
	}
	if _, dup := s.keys[k.KeyID]; dup {
		return fmt.Errorf("auth: two keys with key id %q", k.KeyID)
	}
	s.keys[k.KeyID] = k
	return nil
}

// checkPublicKey accepts only valid public keys of the kinds the verifier
// can use with an allowed algorithm, and RSA keys only of a safe size.
func checkPublicKey(k jose.JSONWebKey) error {
	if !k.IsPublic() {
		return errors.New("not a public key (private and symmetric keys are refused)")
	}
	if !k.Valid() {
		return errors.New("invalid key")
	}
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		if key.N.BitLen() < MinRSABits {
			return fmt.Errorf("RSA key of %d bits, at least %d required", key.N.BitLen(), MinRSABits)
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return errUnsupportedKey
	}
	return nil
}

// errUnsupportedKey is a public key of a type no allowed algorithm uses.
var errUnsupportedKey = errors.New("unsupported key type")

// privateMembers are the JWK members that carry private or secret key
// material (RFC 7518 section 6, RFC 8037, and the "priv" of ML-DSA keys).
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"}

// parseJWKS reads a JWKS document of public keys.
//
// A document that holds private or symmetric ("oct") key material is
// refused as a whole: publishing it is a serious misconfiguration that must
// not be papered over. Keys of a type this package does not know, and keys
// without a key id (which no token of ours can select), are skipped, as
// RFC 7517 section 5 advises.
func parseJWKS(data []byte) (*keySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("auth: malformed JWKS: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`auth: malformed JWKS: no "keys" array`)
	}
	ks := &keySet{keys: make(map[string]jose.JSONWebKey, len(doc.Keys))}
	for i, raw := range doc.Keys {
		var members map[string]json.RawMessage
		if err := json.Unmarshal(raw, &members); err != nil {
			return nil, fmt.Errorf("auth: JWKS key %d: %w", i, err)
		}
		var kty string
		if v, ok := members["kty"]; ok {
			if err := json.Unmarshal(v, &kty); err != nil {
				return nil, fmt.Errorf("auth: JWKS key %d: malformed kty", i)
			}
		}
		if kty == "oct" {
			return nil, fmt.Errorf("auth: JWKS key %d: symmetric keys are refused", i)
		}
		for _, m := range privateMembers {
			if _, ok := members[m]; ok {
				return nil, fmt.Errorf("auth: JWKS key %d: private keys are refused", i)
			}
		}
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			if errors.Is(err, jose.ErrUnsupportedKeyType) {
				continue
			}
			return nil, fmt.Errorf("auth: JWKS key %d: %w", i, err)
		}
		if k.KeyID == "" || errors.Is(checkPublicKey(k), errUnsupportedKey) {
			continue
		}
		if err := ks.add(k); err != nil {
			return nil, err
		}
	}
	return ks, nil
}
