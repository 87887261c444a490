package keyprovider

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"context"
	"crypto/aes"
	"crypto/cipher"
	"fmt"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// kekProvider wraps like the internal KMS: data keys only (32 bytes),
// AES-GCM under its KEK, the binding as associated data.
type kekProvider struct{ aead cipher.AEAD }

func newKEKProvider(t *testing.T) kekProvider {
	block, _ := aes.NewCipher(make([]byte, 32))
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return kekProvider{aead}
}

func (kekProvider) Ref() kms.Ref { return kms.InternalRef() }
func (kekProvider) GenerateDataKey(context.Context, kms.Binding) (*secret.Bytes, kms.Wrapped, error) {
	return nil, kms.Wrapped{}, errors.New("not used")
}
func (p kekProvider) Wrap(_ context.Context, k *secret.Bytes, b kms.Binding) (kms.Wrapped, error) {
	if k.Len() != kms.DataKeySize {
		return kms.Wrapped{}, fmt.Errorf("data key is %d bytes, want 32", k.Len())
	}
	nonce := make([]byte, 12)
	return kms.Wrapped{Blob: p.aead.Seal(nonce, nonce, k.Reveal(), b.Canonical())}, nil
}
func (p kekProvider) Unwrap(_ context.Context, w kms.Wrapped, b kms.Binding) (*secret.Bytes, error) {
	if len(w.Blob) < 12 {
		return nil, &kms.Error{Kind: kms.ErrInvalidCiphertext}
	}
	out, err := p.aead.Open(nil, w.Blob[:12], w.Blob[12:], b.Canonical())
	if err != nil {
		return nil, &kms.Error{Kind: kms.ErrInvalidCiphertext}
	}
	return secret.New(out), nil
}
func (kekProvider) Describe(context.Context) (kms.KeyInfo, error) { return kms.KeyInfo{}, nil }

// TestSecretBox: a secret longer than a data key (a PEM client key) is
// sealed under a data key that the internal KMS (which wraps only data
// keys) wraps, bound to its
// registration, and nothing of it is in the blob in clear.
func TestSecretBox(t *testing.T) {
	p := newKEKProvider(t)
	pem := strings.Repeat("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n", 3)
	b := kms.Binding{kms.BindingTenant: "t1", kms.BindingKeyID: "keyprovider:fp"}
	blob, err := sealSecret(t.Context(), p, secret.New([]byte(pem)), b)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(blob, []byte("PRIVATE KEY")) || bytes.Contains(blob, []byte("MIGHAgEA")) {
		t.Fatal("the sealed secret holds the secret in clear")
	}
	got, err := openSecret(t.Context(), p, blob, b)
	if err != nil || string(got.Reveal()) != pem {
		t.Fatalf("openSecret = %v, want the secret back", err)
	}
	other := kms.Binding{kms.BindingTenant: "t1", kms.BindingKeyID: "keyprovider:other"}
	if _, err := openSecret(t.Context(), p, blob, other); err == nil {
		t.Error("openSecret with another registration's binding succeeded")
	}
	for _, bad := range [][]byte{nil, {2}, blob[:10], append(bytes.Clone(blob[:len(blob)-1]), blob[len(blob)-1]^1)} {
		if _, err := openSecret(t.Context(), p, bad, b); err == nil {
			t.Errorf("openSecret of a damaged blob (%d bytes) succeeded", len(bad))
		} else if !errors.Is(err, errSecretBox) && !errors.Is(err, kms.ErrInvalidCiphertext) {
			t.Errorf("openSecret of a damaged blob: %v", err)
		}
	}
}
