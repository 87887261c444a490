package envelope

import (
	"fmt"
)

// Version1 is the first byte of every value in this format. A parser that
// meets another version refuses it rather than guess, so a future format
// can only be read by code that knows it.
const Version1 byte = 1

// Sizes of the AES-256-GCM parts of a ciphertext.
const (
	// NonceSize is the length of the random GCM nonce (96 bits, the only
	// size GCM handles without hashing it).
	NonceSize = 12
	// TagSize is the length of the GCM authentication tag.
	TagSize = 16
)

// MaxPlaintextSize is the largest plaintext Seal accepts, in bytes. The
// service encrypts small secrets itself; anything bigger belongs in local
// envelope encryption under a data key. The bound also caps what a parser
// can be made to accept.
const MaxPlaintextSize = 8 << 20

// MaxCiphertextSize is the longest binary ciphertext, in bytes (a 30-byte
// header, the plaintext, the tag), for callers that must bound a read
// before parsing.
const MaxCiphertextSize = 30 + MaxPlaintextSize + TagSize

// Type bytes: the second byte says what a value is, so a handle can never
// be taken for a ciphertext or the other way round.
const (
	typeCiphertext byte = 0x01
	typeHandle     byte = 0x02
)

const (
	ciphertextHeaderSize = 2 + KeyIDSize + NonceSize
	minCiphertextSize    = ciphertextHeaderSize + TagSize
	handleSize           = 2 + KeyIDSize
)

// Ciphertext is a parsed binary ciphertext: which data key sealed it, the
// nonce, and the GCM output. The tenant and context are not in it; they are
// bound by the associated data and must be supplied again to Open.
type Ciphertext struct {
	KeyID KeyID
	Nonce [NonceSize]byte
	// Sealed is the AES-GCM output: the encrypted payload followed by the
	// TagSize-byte tag. After ParseCiphertext it shares memory with the
	// parsed input.
	Sealed []byte
}

// ParseCiphertext parses the binary form produced by MarshalBinary. It is
// strict (version, type and length all checked, nothing trailing) so that
// every ciphertext has exactly one encoding. To avoid copying up to
// MaxCiphertextSize bytes, the result's Sealed aliases b: b must not be
// modified while the result is in use. Nothing in this package writes to
// Sealed. Errors wrap ErrMalformed.
func ParseCiphertext(b []byte) (*Ciphertext, error) {
	if err := checkCiphertext(b); err != nil {
		return nil, err
	}
	c := &Ciphertext{}
	copy(c.KeyID[:], b[2:])
	copy(c.Nonce[:], b[2+KeyIDSize:])
	// Capacity is clipped so that appending to Sealed can never write into
	// memory of b beyond the ciphertext.
	c.Sealed = b[ciphertextHeaderSize:len(b):len(b)]
	return c, nil
}

// checkCiphertext is ParseCiphertext's check of b, without its result.
func checkCiphertext(b []byte) error {
	if err := checkHeader(b, typeCiphertext, "ciphertext"); err != nil {
		return err
	}
	if len(b) < minCiphertextSize {
		return fmt.Errorf("%w: ciphertext is %d bytes, want at least %d", ErrMalformed, len(b), minCiphertextSize)
	}
	if len(b) > MaxCiphertextSize {
		return fmt.Errorf("%w: ciphertext is %d bytes, more than %d", ErrMalformed, len(b), MaxCiphertextSize)
	}
	return nil
}

// MarshalBinary returns the binary form, the one ParseCiphertext reads. It
// refuses a Sealed that could not have come from Seal, so that nothing
// unparsable is ever stored; such errors wrap ErrMalformed.
func (c *Ciphertext) MarshalBinary() ([]byte, error) {
	return c.AppendBinary(make([]byte, 0, ciphertextHeaderSize+len(c.Sealed)))
}

// AppendBinary appends the binary form to b, for callers that reuse a
// buffer; it implements encoding.BinaryAppender.
func (c *Ciphertext) AppendBinary(b []byte) ([]byte, error) {
	if len(c.Sealed) < TagSize {
		return nil, fmt.Errorf("%w: sealed payload is %d bytes, shorter than a tag", ErrMalformed, len(c.Sealed))
	}
	if len(c.Sealed) > MaxPlaintextSize+TagSize {
		return nil, fmt.Errorf("%w: sealed payload is %d bytes, more than %d", ErrMalformed, len(c.Sealed), MaxPlaintextSize+TagSize)
	}
	b = append(b, Version1, typeCiphertext)
	b = append(b, c.KeyID[:]...)
	b = append(b, c.Nonce[:]...)
	return append(b, c.Sealed...), nil
}

// Handle names a data key handed to a caller (the datakeys API), who later
// trades it back for the key. It carries no key material: only the service,
// which keeps the wrapped key, can resolve it, and for the caller's tenant
// only.
type Handle struct {
	KeyID KeyID
}

// ParseHandle parses the binary form produced by Handle.MarshalBinary.
// Errors wrap ErrMalformed.
func ParseHandle(b []byte) (Handle, error) {
	if err := checkHeader(b, typeHandle, "handle"); err != nil {
		return Handle{}, err
	}
	if len(b) != handleSize {
		return Handle{}, fmt.Errorf("%w: handle is %d bytes, want %d", ErrMalformed, len(b), handleSize)
	}
	var h Handle
	copy(h.KeyID[:], b[2:])
	return h, nil
}

// MarshalBinary returns the binary form, the one ParseHandle reads. It
// never fails; the error is there for encoding.BinaryMarshaler.
func (h Handle) MarshalBinary() ([]byte, error) {
	return h.AppendBinary(make([]byte, 0, handleSize))
}

// AppendBinary appends the binary form to b; it implements
// encoding.BinaryAppender.
func (h Handle) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, Version1, typeHandle)
	return append(b, h.KeyID[:]...), nil
}

// checkHeader checks the version and type bytes common to every value, so
// that the error names the first thing wrong, however short b is.
func checkHeader(b []byte, typ byte, what string) error {
	switch {
	case len(b) < 2:
		return fmt.Errorf("%w: %s is %d bytes, too short for a header", ErrMalformed, what, len(b))
	case b[0] != Version1:
		return fmt.Errorf("%w: %s has an unsupported version", ErrMalformed, what)
	case b[1] != typ:
		return fmt.Errorf("%w: not a %s: the type byte names %s", ErrMalformed, what, typeName(b[1]))
	}
	return nil
}

// typeName names a type byte for error messages without echoing it: the
// byte is input.
func typeName(t byte) string {
	switch t {
	case typeCiphertext:
		return "a ciphertext"
	case typeHandle:
		return "a handle"
	default:
		return "an unknown type"
	}
}
