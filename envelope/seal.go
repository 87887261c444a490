package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
)

// KeySize is the length of a data key: AES-256.
const KeySize = 32

// MaxTenantIDSize is the longest tenant id, in bytes.
const MaxTenantIDSize = 128

// adDomain separates this format's associated data from any other use of
// the same key, and its version from future ones.
const adDomain = "tenantcrypt/envelope/v1\x00"

// adFixedSize is the associated data's size without tenant id and context.
const adFixedSize = len(adDomain) + 2 + KeyIDSize + 4

// NewAEAD returns AES-256-GCM for a 32-byte data key. Build it once per
// data key and reuse it: it is safe for concurrent use, and building it
// costs more than sealing a small message. The error never contains key
// bytes.
//
// In FIPS 140-3 mode (crypto/fips140.Enabled) it is the module's approved
// random-nonce construction, cipher.NewGCMWithRandomNonce: the module
// draws each nonce itself, which GODEBUG=fips140=only requires. Its
// NonceSize is then 0 and its Overhead NonceSize+TagSize, but Seal and
// Open produce and accept exactly the same bytes with either (the nonce
// precedes the sealed bytes in both), so the format has one version for
// both modes. Otherwise it is plain GCM with a 12-byte nonce that Seal
// draws from crypto/rand.
func NewAEAD(key []byte) (cipher.AEAD, error) {
	return newAEAD(key, fips140.Enabled())
}

// newAEAD is NewAEAD with the construction chosen by the caller, so that
// tests cover both in any mode.
func newAEAD(key []byte, randomNonce bool) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("envelope: data key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	var aead cipher.AEAD
	if randomNonce {
		aead, err = cipher.NewGCMWithRandomNonce(block)
	} else {
		aead, err = cipher.NewGCM(block)
	}
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	return aead, nil
}

// aeadKind tells which of NewAEAD's constructions aead is, or neither.
type aeadKind int

const (
	foreignAEAD aeadKind = iota
	// callerNonceAEAD is cipher.NewGCM: Seal passes the nonce.
	callerNonceAEAD
	// randomNonceAEAD is cipher.NewGCMWithRandomNonce: it draws the nonce
	// and writes it before the sealed bytes.
	randomNonceAEAD
)

func kindOf(aead cipher.AEAD) aeadKind {
	switch {
	case aead.NonceSize() == NonceSize && aead.Overhead() == TagSize:
		return callerNonceAEAD
	case aead.NonceSize() == 0 && aead.Overhead() == NonceSize+TagSize:
		return randomNonceAEAD
	default:
		return foreignAEAD
	}
}

// AssociatedData returns what Seal and Open authenticate beside the
// plaintext: the header (version, type, key id), the tenant id and the
// canonical context, laid out as the package documentation shows. It is
// exported for callers that seal with their own AEAD construction (such as
// the client's streaming encryption) and must bind the same things. Errors
// wrap ErrMalformed.
func AssociatedData(tenantID string, id KeyID, ctx Context) ([]byte, error) {
	return appendAssociatedData(nil, tenantID, id, ctx)
}

// appendAssociatedData validates its inputs and appends the associated
// data to dst, growing it at most once.
func appendAssociatedData(dst []byte, tenantID string, id KeyID, ctx Context) ([]byte, error) {
	if err := checkTenantID(tenantID); err != nil {
		return nil, err
	}
	var buf [smallContext]pair
	pairs, n, err := ctx.pairs(buf[:0])
	if err != nil {
		return nil, err
	}
	dst = grow(dst, adFixedSize+len(tenantID)+n)
	dst = append(dst, adDomain...)
	dst = append(dst, Version1, typeCiphertext)
	dst = append(dst, id[:]...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(tenantID)))
	dst = append(dst, tenantID...)
	return appendCanonical(dst, pairs), nil
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	return nb
}

func checkTenantID(tenantID string) error {
	switch {
	case tenantID == "":
		return fmt.Errorf("%w: tenant id is empty", ErrMalformed)
	case len(tenantID) > MaxTenantIDSize:
		return fmt.Errorf("%w: tenant id is %d bytes, more than %d", ErrMalformed, len(tenantID), MaxTenantIDSize)
	}
	return nil
}

// errForeignAEAD guards the format: an AEAD with another nonce or tag size
// would produce ciphertexts that no parser accepts.
var errForeignAEAD = errors.New("envelope: AEAD is not AES-GCM with a 12-byte nonce and 16-byte tag; use NewAEAD")

// errFixedNonce refuses a chosen nonce with the random-nonce construction.
var errFixedNonce = errors.New("envelope: the random-nonce AEAD draws its own nonces")

// Seal encrypts plaintext for the tenant under the data key id (whose key
// aead, from NewAEAD, holds), binding tenantID, id and ctx into the
// associated data. The nonce is fresh from crypto/rand (in FIPS 140-3
// mode, from the module's DRBG): with random 96-bit nonces a key must be
// retired well before 2^32 messages, which is the keyring's job. Errors
// about tenantID, ctx or the plaintext size wrap ErrMalformed.
func Seal(aead cipher.AEAD, tenantID string, id KeyID, ctx Context, plaintext []byte) (*Ciphertext, error) {
	switch kindOf(aead) {
	case randomNonceAEAD:
		ad, err := checkSeal(tenantID, id, ctx, plaintext)
		if err != nil {
			return nil, err
		}
		out := aead.Seal(make([]byte, 0, NonceSize+len(plaintext)+TagSize), nil, plaintext, ad)
		c := &Ciphertext{KeyID: id}
		copy(c.Nonce[:], out)
		c.Sealed = out[NonceSize:len(out):len(out)]
		return c, nil
	case callerNonceAEAD:
		var nonce [NonceSize]byte
		if _, err := rand.Read(nonce[:]); err != nil {
			return nil, fmt.Errorf("envelope: reading random nonce: %w", err)
		}
		return sealWithNonce(aead, tenantID, id, ctx, nonce, plaintext)
	default:
		return nil, errForeignAEAD
	}
}

// checkSeal checks Seal's arguments and returns the associated data.
func checkSeal(tenantID string, id KeyID, ctx Context, plaintext []byte) ([]byte, error) {
	if len(plaintext) > MaxPlaintextSize {
		return nil, fmt.Errorf("%w: plaintext is %d bytes, more than %d", ErrMalformed, len(plaintext), MaxPlaintextSize)
	}
	return appendAssociatedData(nil, tenantID, id, ctx)
}

// sealWithNonce is Seal with the nonce chosen by the caller. Only Seal and
// tests (for known-answer vectors) may call it: a repeated nonce under one
// key breaks GCM completely. The random-nonce construction refuses it.
func sealWithNonce(aead cipher.AEAD, tenantID string, id KeyID, ctx Context, nonce [NonceSize]byte, plaintext []byte) (*Ciphertext, error) {
	switch kindOf(aead) {
	case callerNonceAEAD:
	case randomNonceAEAD:
		return nil, errFixedNonce
	default:
		return nil, errForeignAEAD
	}
	ad, err := checkSeal(tenantID, id, ctx, plaintext)
	if err != nil {
		return nil, err
	}
	c := &Ciphertext{KeyID: id, Nonce: nonce}
	c.Sealed = aead.Seal(make([]byte, 0, len(plaintext)+TagSize), c.Nonce[:], plaintext, ad)
	return c, nil
}

// Open decrypts c for the tenant with ctx and returns the plaintext in a new
// slice; c is not modified.
//
// It returns ErrDecrypt, and nothing else, whenever c does not
// authenticate: wrong data key, tenant or context, or any altered byte. An
// error that is not ErrDecrypt (it wraps ErrMalformed) means that the
// caller's own tenantID or ctx is out of bounds, exactly as Seal would
// refuse it; it depends only on those arguments and says nothing about c.
func Open(aead cipher.AEAD, tenantID string, c *Ciphertext, ctx Context) ([]byte, error) {
	kind := kindOf(aead)
	if kind == foreignAEAD {
		return nil, errForeignAEAD
	}
	if c == nil || len(c.Sealed) < TagSize || len(c.Sealed) > MaxPlaintextSize+TagSize {
		return nil, ErrDecrypt
	}
	ad, err := appendAssociatedData(nil, tenantID, c.KeyID, ctx)
	if err != nil {
		return nil, err
	}
	var pt []byte
	if kind == randomNonceAEAD {
		// The construction reads the nonce from before the sealed
		// bytes: join them, and open in place.
		buf := make([]byte, NonceSize+len(c.Sealed))
		copy(buf, c.Nonce[:])
		copy(buf[NonceSize:], c.Sealed)
		pt, err = aead.Open(buf[:0], nil, buf, ad)
		if err != nil {
			clear(buf)
		}
	} else {
		pt, err = aead.Open(make([]byte, 0, len(c.Sealed)-TagSize), c.Nonce[:], c.Sealed, ad)
	}
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}
