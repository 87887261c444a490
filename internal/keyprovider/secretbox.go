package keyprovider

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// A kind's secret (a KMIP client key in PEM) is longer than the data keys
// the internal KMS wraps (kms.DataKeySize), so it is sealed in an
// envelope: a fresh data key, wrapped by the internal KMS, seals the secret with
// AES-256-GCM, and the stored blob is
//
//	len(wrapped data key) (2 bytes, big-endian) | wrapped data key | nonce (12) | sealed secret
//
// with the binding's canonical form as the associated data of both.
const secretBoxVersion = 1

var errSecretBox = errors.New("keyprovider: the stored secret is not a sealed secret")

func sealSecret(ctx context.Context, p kms.Provider, sec *secret.Bytes, b kms.Binding) ([]byte, error) {
	dk, err := secret.Random(kms.DataKeySize)
	if err != nil {
		return nil, err
	}
	defer dk.Destroy()
	w, err := p.Wrap(ctx, dk, b)
	if err != nil {
		return nil, err
	}
	if len(w.Blob) > 0xffff {
		return nil, errors.New("keyprovider: the wrapped data key is too long")
	}
	aead, err := secretAEAD(dk)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := []byte{secretBoxVersion}
	out = binary.BigEndian.AppendUint16(out, uint16(len(w.Blob)))
	out = append(out, w.Blob...)
	out = append(out, nonce...)
	return aead.Seal(out, nonce, sec.Reveal(), b.Canonical()), nil
}

func openSecret(ctx context.Context, p kms.Provider, blob []byte, b kms.Binding) (*secret.Bytes, error) {
	if len(blob) < 3 || blob[0] != secretBoxVersion {
		return nil, errSecretBox
	}
	n := int(binary.BigEndian.Uint16(blob[1:3]))
	rest := blob[3:]
	if len(rest) < n+12 {
		return nil, errSecretBox
	}
	dk, err := p.Unwrap(ctx, kms.Wrapped{Blob: rest[:n]}, b)
	if err != nil {
		return nil, err
	}
	defer dk.Destroy()
	aead, err := secretAEAD(dk)
	if err != nil {
		return nil, err
	}
	nonce, sealed := rest[n:n+aead.NonceSize()], rest[n+aead.NonceSize():]
	plain, err := aead.Open(nil, nonce, sealed, b.Canonical())
	if err != nil {
		return nil, errSecretBox
	}
	return secret.New(plain), nil
}

func secretAEAD(dk *secret.Bytes) (cipher.AEAD, error) {
	block, err := aes.NewCipher(dk.Reveal())
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
