package envelope

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
)

// The append forms: Sealer, Opener, AppendText and AppendParseText do what
// Seal, Open, FormatText and ParseText do, byte for byte, but write into
// buffers the caller owns and reuses, for callers that handle many small
// messages in a row (the service's batches). Seal and Open allocate about
// five times per message (the associated data, the AEAD's output, the
// *Ciphertext, the binary and text forms); 100 messages of 1 KiB then cost
// more in the allocator and garbage collector than in AES-GCM
// (docs/PERFORMANCE.md, section 13). With the append forms a batch
// allocates its buffers once.

// Sealer seals messages for one tenant under one data key, each straight
// into a buffer the caller passes (no *Ciphertext, no intermediate
// slice), reusing one associated-data buffer. It makes exactly the bytes
// that Seal followed by MarshalBinary makes (with the same nonce); the
// nonce is drawn as Seal draws it. A Sealer is not safe for concurrent
// use: make one per goroutine (it is cheap).
type Sealer struct {
	aead     cipher.AEAD
	kind     aeadKind
	tenantID string
	id       KeyID
	ad       []byte // reused by every message
}

// NewSealer returns a Sealer for the tenant under data key id, whose key
// aead (from NewAEAD) holds. Errors about tenantID wrap ErrMalformed.
func NewSealer(aead cipher.AEAD, tenantID string, id KeyID) (*Sealer, error) {
	kind := kindOf(aead)
	if kind == foreignAEAD {
		return nil, errForeignAEAD
	}
	if err := checkTenantID(tenantID); err != nil {
		return nil, err
	}
	return &Sealer{aead: aead, kind: kind, tenantID: tenantID, id: id}, nil
}

// AppendSeal seals plaintext with ctx as Seal does and appends the
// ciphertext's binary form (the one MarshalBinary writes) to dst. Errors
// about ctx or the plaintext size wrap ErrMalformed; on error dst is
// returned unchanged.
func (s *Sealer) AppendSeal(dst []byte, ctx Context, plaintext []byte) ([]byte, error) {
	if len(plaintext) > MaxPlaintextSize {
		return dst, fmt.Errorf("%w: plaintext is %d bytes, more than %d", ErrMalformed, len(plaintext), MaxPlaintextSize)
	}
	ad, err := appendAssociatedData(s.ad[:0], s.tenantID, s.id, ctx)
	if err != nil {
		return dst, err
	}
	s.ad = ad
	out := grow(dst, ciphertextHeaderSize+len(plaintext)+TagSize)
	out = append(out, Version1, typeCiphertext)
	out = append(out, s.id[:]...)
	if s.kind == randomNonceAEAD {
		// The construction writes the nonce it draws, then the sealed
		// bytes: exactly the rest of the binary form.
		return s.aead.Seal(out, nil, plaintext, ad), nil
	}
	// Plain GCM: the nonce is drawn into its place in the binary form and
	// read from there; the sealed bytes follow it, without overlapping it.
	n := len(out)
	out = out[:n+NonceSize]
	if _, err := rand.Read(out[n:]); err != nil {
		return dst, fmt.Errorf("envelope: reading random nonce: %w", err)
	}
	return s.aead.Seal(out, out[n:], plaintext, ad), nil
}

// Opener opens binary ciphertexts for one tenant, each straight from the
// caller's bytes (no *Ciphertext, and no copy to put the nonce before the
// sealed bytes: in the binary form it already is) into a buffer the caller
// passes, reusing one associated-data buffer. It accepts and refuses
// exactly what ParseCiphertext followed by Open does. An Opener is not
// safe for concurrent use.
type Opener struct {
	aead     cipher.AEAD
	kind     aeadKind
	tenantID string
	ad       []byte
}

// NewOpener returns an Opener for the tenant with aead (from NewAEAD).
// Errors about tenantID wrap ErrMalformed.
func NewOpener(aead cipher.AEAD, tenantID string) (*Opener, error) {
	kind := kindOf(aead)
	if kind == foreignAEAD {
		return nil, errForeignAEAD
	}
	if err := checkTenantID(tenantID); err != nil {
		return nil, err
	}
	return &Opener{aead: aead, kind: kind, tenantID: tenantID}, nil
}

// AppendOpen opens the binary ciphertext bin with ctx and appends the
// plaintext to dst, which must not overlap bin. As with Open, every
// reason bin does not open (malformed, another key, tenant or context,
// any altered byte) is ErrDecrypt, and an error that wraps ErrMalformed
// is about ctx only. On error dst is returned unchanged and nothing of the
// plaintext is left in its spare capacity.
func (o *Opener) AppendOpen(dst []byte, bin []byte, ctx Context) ([]byte, error) {
	id, err := CiphertextKeyID(bin)
	if err != nil {
		return dst, ErrDecrypt
	}
	ad, err := appendAssociatedData(o.ad[:0], o.tenantID, id, ctx)
	if err != nil {
		return dst, err
	}
	o.ad = ad
	body := bin[2+KeyIDSize:] // nonce, then the sealed bytes
	var pt []byte
	if o.kind == randomNonceAEAD {
		pt, err = o.aead.Open(dst, nil, body, ad)
	} else {
		pt, err = o.aead.Open(dst, body[:NonceSize], body[NonceSize:], ad)
	}
	if err != nil {
		// GCM zeroes its output when the tag does not match; clear it
		// all the same, as the contract says.
		clear(dst[len(dst):cap(dst)])
		return dst, ErrDecrypt
	}
	return pt, nil
}

// CiphertextKeyID checks b as ParseCiphertext does, without allocating,
// and returns the key id it names. Errors wrap ErrMalformed.
func CiphertextKeyID(b []byte) (KeyID, error) {
	if err := checkCiphertext(b); err != nil {
		return KeyID{}, err
	}
	return KeyID(b[2 : 2+KeyIDSize]), nil
}

// AppendText appends the text form of a binary ciphertext or handle to
// dst, as FormatText returns it: the base64 is encoded straight into dst.
// Like every text form it is ASCII from [A-Za-z0-9#:._-] only (the prefix
// grammar and base64url), so it can be copied into JSON without escaping.
// Errors wrap ErrMalformed; on error dst is returned unchanged.
func AppendText(dst []byte, prefix string, binary []byte) ([]byte, error) {
	if err := checkPrefix(prefix); err != nil {
		return dst, err
	}
	if err := checkBinary(binary); err != nil {
		return dst, err
	}
	out := grow(dst, len(prefix)+1+textEncoding.EncodedLen(len(binary)))
	out = append(out, prefix...)
	out = append(out, ':')
	return textEncoding.AppendEncode(out, binary), nil
}

// AppendParseText is ParseText for a text form held as bytes: it checks
// text exactly as ParseText does and appends the decoded binary value to
// dst, dropping the prefix (checked, not returned), without converting
// text to a string. Errors wrap ErrMalformed; on error dst is returned
// unchanged.
func AppendParseText(dst []byte, text []byte) ([]byte, error) {
	i := bytes.LastIndexByte(text[:min(len(text), MaxPrefixSize+1)], ':')
	if i < 0 {
		return dst, fmt.Errorf("%w: text form has no ':'", ErrMalformed)
	}
	prefix, payload := text[:i], text[i+1:]
	if err := checkPrefix(prefix); err != nil {
		return dst, err
	}
	if len(payload) > maxTextPayloadSize {
		return dst, fmt.Errorf("%w: text payload is %d bytes, more than %d", ErrMalformed, len(payload), maxTextPayloadSize)
	}
	if bytes.IndexByte(payload, '\r') >= 0 || bytes.IndexByte(payload, '\n') >= 0 {
		return dst, fmt.Errorf("%w: text payload contains a line break", ErrMalformed)
	}
	out := grow(dst, textEncoding.DecodedLen(len(payload)))
	n, err := textEncoding.Decode(out[len(out):cap(out)], payload)
	bin := out[len(out) : len(out)+n]
	if err != nil {
		return dst, fmt.Errorf("%w: text payload is not canonical unpadded base64url", ErrMalformed)
	}
	if err := checkBinary(bin); err != nil {
		return dst, err
	}
	return out[:len(out)+n], nil
}
