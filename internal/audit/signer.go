package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// maxKeyFileSize bounds the signing key file (a few hundred bytes a key).
const maxKeyFileSize = 1 << 20

// Signer signs checkpoints with an Ed25519 key kept in a file (never in the
// database: whoever can write the database must not be able to sign). Its
// public keys, the current and the retired ones, are published so that a
// tenant admin can verify an exported log offline.
type Signer struct {
	current string // key id
	keys    []signerKey
}

type signerKey struct {
	id      string
	private ed25519.PrivateKey
	created time.Time
}

// keyFile is the on-disk form: every key, the last one current.
type keyFile struct {
	Keys []keyFileEntry `json:"keys"`
}

type keyFileEntry struct {
	KeyID   string    `json:"kid"`
	Seed    string    `json:"seed"` // base64 of the 32-byte Ed25519 seed
	Created time.Time `json:"created"`
}

// LoadOrCreateSigner reads the signing keys from path, creating the file
// (0600, with one new key) if it does not exist.
func LoadOrCreateSigner(path string) (*Signer, error) {
	// Whoever reads the file can sign checkpoints and so forge a chain's
	// tail: it must be private, like the root and issuer keys.
	b, err := secret.ReadFile(path, maxKeyFileSize)
	if errors.Is(err, os.ErrNotExist) {
		s, err := newSigner()
		if err != nil {
			return nil, err
		}
		if err := s.save(path); err != nil {
			return nil, err
		}
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: signing key file: %w", err)
	}
	defer clear(b)
	var f keyFile
	if err := json.Unmarshal(b, &f); err != nil || len(f.Keys) == 0 {
		return nil, fmt.Errorf("audit: signing key file %s is not a tenantcrypt audit key file", path)
	}
	s := &Signer{}
	for i, k := range f.Keys {
		seed, err := base64.StdEncoding.DecodeString(k.Seed)
		if err != nil || len(seed) != ed25519.SeedSize || k.KeyID == "" {
			return nil, fmt.Errorf("audit: signing key file %s: key %d is malformed", path, i+1)
		}
		s.keys = append(s.keys, signerKey{id: k.KeyID, private: ed25519.NewKeyFromSeed(seed), created: k.Created})
		clear(seed)
	}
	s.current = s.keys[len(s.keys)-1].id
	return s, nil
}

func newSigner() (*Signer, error) {
	k, err := newSignerKey()
	if err != nil {
		return nil, err
	}
	return &Signer{current: k.id, keys: []signerKey{k}}, nil
}

func newSignerKey() (signerKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return signerKey{}, fmt.Errorf("audit: generating a signing key: %w", err)
	}
	sum := sha256.Sum256(pub)
	return signerKey{id: "audit-" + hex.EncodeToString(sum[:8]), private: priv, created: time.Now().UTC().Truncate(time.Second)}, nil
}

// Rotate adds a new key, makes it current and saves the file; the old keys
// stay published, so checkpoints they signed still verify.
func (s *Signer) Rotate(path string) error {
	k, err := newSignerKey()
	if err != nil {
		return err
	}
	s.keys = append(s.keys, k)
	s.current = k.id
	return s.save(path)
}

func (s *Signer) save(path string) error {
	var f keyFile
	for _, k := range s.keys {
		f.Keys = append(f.Keys, keyFileEntry{KeyID: k.id, Seed: base64.StdEncoding.EncodeToString(k.private.Seed()), Created: k.created})
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("audit: creating the signing key's directory: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("audit: writing the signing key file: %w", err)
	}
	clear(b)
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("audit: writing the signing key file: %w", err)
	}
	return nil
}

// PublicKey is a published checkpoint-verification key, in JWK form.
type PublicKey struct {
	KeyID string `json:"kid"`
	Kty   string `json:"kty"` // "OKP"
	Crv   string `json:"crv"` // "Ed25519"
	Alg   string `json:"alg"` // "EdDSA"
	Use   string `json:"use"` // "sig"
	X     string `json:"x"`   // base64url of the public key
}

// PublicKeys returns every key's public half, the current one last.
func (s *Signer) PublicKeys() []PublicKey {
	out := make([]PublicKey, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, PublicKey{KeyID: k.id, Kty: "OKP", Crv: "Ed25519", Alg: "EdDSA", Use: "sig",
			X: base64.RawURLEncoding.EncodeToString(k.private.Public().(ed25519.PublicKey))})
	}
	return out
}

// Sign signs a checkpoint of chainID at seq, whose event has hash.
func (s *Signer) Sign(chainID string, seq int64, hash []byte, at time.Time) Checkpoint {
	c := Checkpoint{ChainID: chainID, Seq: seq, Hash: hash, Time: at.UTC().Truncate(time.Microsecond), KeyID: s.current}
	for _, k := range s.keys {
		if k.id == s.current {
			c.Signature = ed25519.Sign(k.private, checkpointMessage(c))
		}
	}
	return c
}

// checkpointMessage is what a checkpoint's signature covers.
func checkpointMessage(c Checkpoint) []byte {
	return []byte("tenantcrypt audit checkpoint v1\x00" + c.ChainID + "\x00" + strconv.FormatInt(c.Seq, 10) + "\x00" +
		hex.EncodeToString(c.Hash) + "\x00" + c.Time.UTC().Format(time.RFC3339Nano) + "\x00" + c.KeyID)
}

// Keys maps published key ids to public keys, for verification.
type Keys map[string]ed25519.PublicKey

// ParseKeys reads published keys (as PublicKeys returns them).
func ParseKeys(pks []PublicKey) (Keys, error) {
	keys := Keys{}
	for _, pk := range pks {
		x, err := base64.RawURLEncoding.DecodeString(pk.X)
		if err != nil || len(x) != ed25519.PublicKeySize || pk.Kty != "OKP" || pk.Crv != "Ed25519" || pk.KeyID == "" {
			return nil, fmt.Errorf("audit: published key %q is not an Ed25519 public key", pk.KeyID)
		}
		keys[pk.KeyID] = ed25519.PublicKey(x)
	}
	if len(keys) == 0 {
		return nil, errors.New("audit: no published keys")
	}
	return keys, nil
}

// VerifyCheckpoint checks a checkpoint's signature.
func (k Keys) VerifyCheckpoint(c Checkpoint) error {
	pub, ok := k[c.KeyID]
	if !ok {
		return fmt.Errorf("checkpoint at seq %d is signed by key %q, which is not published", c.Seq, c.KeyID)
	}
	if !ed25519.Verify(pub, checkpointMessage(c), c.Signature) {
		return fmt.Errorf("checkpoint at seq %d: the signature does not verify", c.Seq)
	}
	return nil
}
