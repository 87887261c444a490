package internalkms

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// The two sealed formats of the internal KMS.
//
// A wrapped data key (kms.Wrapped.Blob) is
//
//	formatV1 | KEK version (uint32 BE) | nonce (12) | AES-256-GCM(data key) | tag (16)
//
// sealed by the tenant's KEK with associated data
//
//	len|dataKeyDomain | len|tenant id | KEK version (uint32 BE) | binding.Canonical()
//
// A sealed KEK (KEK.Wrapped in the Store) is
//
//	formatV1 | nonce (12) | AES-256-GCM(KEK) | tag (16)
//
// sealed by a root key with associated data
//
//	len|kekDomain | len|tenant id | KEK version (uint32 BE) | root version (uint32 BE)
//
// where len is a uint32 BE length prefix. Every field that selects a key is
// also authenticated, so a blob or row moved to another tenant, version or
// binding fails to open instead of opening under the wrong key. Both sizes are
// fixed, which lets the parsers reject anything else before any crypto runs.
const (
	formatV1 byte = 1

	keySize   = 32 // AES-256, for root keys and KEKs alike.
	nonceSize = 12
	tagSize   = 16

	blobHeaderSize = 1 + 4
	blobSize       = blobHeaderSize + nonceSize + kms.DataKeySize + tagSize
	sealedKEKSize  = 1 + nonceSize + keySize + tagSize
)

// Domain separation: a sealed KEK can never be accepted as a data-key blob,
// or the readiness probe as either, even if the same key sealed them. The
// suffix changes with the format.
const (
	kekDomain     = "tenantcrypt/internalkms/kek/v1"
	dataKeyDomain = "tenantcrypt/internalkms/datakey/v1"
	probeDomain   = "tenantcrypt/internalkms/probe/v1"
)

var errKeyUnusable = errors.New("key material is missing or destroyed")

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func kekAD(tenantID string, kekVersion, rootVersion uint32) []byte {
	ad := appendString(nil, kekDomain)
	ad = appendString(ad, tenantID)
	ad = binary.BigEndian.AppendUint32(ad, kekVersion)
	return binary.BigEndian.AppendUint32(ad, rootVersion)
}

func dataKeyAD(tenantID string, kekVersion uint32, b kms.Binding) []byte {
	ad := appendString(nil, dataKeyDomain)
	ad = appendString(ad, tenantID)
	ad = binary.BigEndian.AppendUint32(ad, kekVersion)
	// Canonical is self-delimiting, so it can close the encoding unprefixed.
	return append(ad, b.Canonical()...)
}

// newAEAD builds a fresh cipher per operation rather than caching one per
// key: a cipher.AEAD holds an expanded key schedule that cannot be zeroed,
// whereas a secret.Bytes can, and key expansion costs far less than the
// store round trip a cache miss already implies.
func newAEAD(key *secret.Bytes) (cipher.AEAD, error) {
	k := key.Reveal()
	if len(k) != keySize {
		return nil, errKeyUnusable
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}

func sealKEK(root *secret.Bytes, tenantID string, kekVersion, rootVersion uint32, kek *secret.Bytes) ([]byte, error) {
	aead, err := newAEAD(root)
	if err != nil {
		return nil, err
	}
	pt := kek.Reveal()
	if len(pt) != keySize {
		return nil, errKeyUnusable
	}
	out := make([]byte, 1, sealedKEKSize)
	out[0] = formatV1
	return aead.Seal(out, nil, pt, kekAD(tenantID, kekVersion, rootVersion)), nil
}

var errSealedKEK = errors.New("sealed KEK does not open")

func openKEK(root *secret.Bytes, k KEK) (*secret.Bytes, error) {
	if len(k.Wrapped) != sealedKEKSize || k.Wrapped[0] != formatV1 {
		return nil, errSealedKEK
	}
	aead, err := newAEAD(root)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, nil, k.Wrapped[1:], kekAD(k.TenantID, k.Version, k.RootVersion))
	if err != nil {
		return nil, errSealedKEK
	}
	return secret.New(pt), nil
}

// parseBlob splits a wrapped data key. It only checks the framing; whether
// the KEK version exists and the rest authenticates is up to the caller.
func parseBlob(blob []byte) (kekVersion uint32, sealed []byte, ok bool) {
	if len(blob) != blobSize || blob[0] != formatV1 {
		return 0, nil, false
	}
	kekVersion = binary.BigEndian.Uint32(blob[1:blobHeaderSize])
	if kekVersion == 0 {
		return 0, nil, false
	}
	return kekVersion, blob[blobHeaderSize:], true
}

func sealDataKey(kek *secret.Bytes, tenantID string, kekVersion uint32, dk *secret.Bytes, b kms.Binding) ([]byte, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, err
	}
	out := make([]byte, blobHeaderSize, blobSize)
	out[0] = formatV1
	binary.BigEndian.PutUint32(out[1:], kekVersion)
	return aead.Seal(out, nil, dk.Reveal(), dataKeyAD(tenantID, kekVersion, b)), nil
}

func openDataKey(kek *secret.Bytes, tenantID string, kekVersion uint32, sealed []byte, b kms.Binding) (*secret.Bytes, bool) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, false
	}
	pt, err := aead.Open(nil, nil, sealed, dataKeyAD(tenantID, kekVersion, b))
	if err != nil {
		return nil, false
	}
	return secret.New(pt), true
}
