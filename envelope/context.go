package envelope

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Bounds on an encryption context. They keep the associated data, and so
// the per-message cost, small and predictable, and cap what a caller can
// make the service hash and store: a context is for naming what the data
// is (a purpose, a record id), not for carrying data.
const (
	// MaxContextPairs is the largest number of pairs in a Context.
	MaxContextPairs = 64
	// MaxContextKeySize is the largest key of a Context, in bytes.
	MaxContextKeySize = 256
	// MaxContextValueSize is the largest value of a Context, in bytes.
	MaxContextValueSize = 4096
)

// contextDigestDomain separates Digest's hash input from any other use of
// the canonical form.
const contextDigestDomain = "tenantcrypt/context/v1\x00"

// Context is the caller's encryption context: key/value pairs bound into
// the associated data of every ciphertext, so a ciphertext only opens with
// the context it was sealed with. It is not secret and not stored in the
// ciphertext; the caller must present it again to decrypt. A nil Context
// is the empty context.
type Context map[string]string

// Validate reports whether c is within the bounds and well formed: keys are
// non-empty, and keys and values are valid UTF-8 so that the context
// survives a round trip through JSON unchanged. Errors wrap ErrMalformed.
func (c Context) Validate() error {
	var buf [smallContext]pair
	_, _, err := c.pairs(buf[:0])
	return err
}

// Canonical returns the one byte encoding of c that Seal authenticates:
// the pair count, then each pair in bytewise key order, every length a
// big-endian uint32 prefix. Sorting makes it independent of map order and
// the length prefixes make it unambiguous. It validates c first.
func (c Context) Canonical() ([]byte, error) {
	var buf [smallContext]pair
	pairs, n, err := c.pairs(buf[:0])
	if err != nil {
		return nil, err
	}
	return appendCanonical(make([]byte, 0, n), pairs), nil
}

// Digest returns the SHA-256 of a domain-separated Canonical form: a short,
// fixed-size stand-in for the context where it must be logged, compared or
// indexed without revealing or storing it.
func (c Context) Digest() ([32]byte, error) {
	var buf [smallContext]pair
	pairs, n, err := c.pairs(buf[:0])
	if err != nil {
		return [32]byte{}, err
	}
	b := make([]byte, 0, len(contextDigestDomain)+n)
	b = append(b, contextDigestDomain...)
	return sha256.Sum256(appendCanonical(b, pairs)), nil
}

// smallContext is how many pairs callers keep on the stack: typical
// contexts have a handful, and Seal and Open must not allocate for them.
const smallContext = 8

type pair struct{ k, v string }

// pairs validates c and appends its pairs to buf in canonical order,
// returning them and the length of the canonical form, so that callers
// walk the map once and allocate the output exactly once.
func (c Context) pairs(buf []pair) ([]pair, int, error) {
	if len(c) > MaxContextPairs {
		return nil, 0, fmt.Errorf("%w: context has %d pairs, more than %d", ErrMalformed, len(c), MaxContextPairs)
	}
	n := 4
	if len(c) == 0 {
		return buf, n, nil
	}
	for k, v := range c {
		switch {
		case k == "":
			return nil, 0, fmt.Errorf("%w: context key is empty", ErrMalformed)
		case len(k) > MaxContextKeySize:
			return nil, 0, fmt.Errorf("%w: context key is %d bytes, more than %d", ErrMalformed, len(k), MaxContextKeySize)
		case len(v) > MaxContextValueSize:
			return nil, 0, fmt.Errorf("%w: context value is %d bytes, more than %d", ErrMalformed, len(v), MaxContextValueSize)
		case !utf8.ValidString(k):
			return nil, 0, fmt.Errorf("%w: context key is not valid UTF-8", ErrMalformed)
		case !utf8.ValidString(v):
			return nil, 0, fmt.Errorf("%w: context value is not valid UTF-8", ErrMalformed)
		}
		n += 8 + len(k) + len(v)
		buf = append(buf, pair{k, v})
	}
	// Map keys are distinct, so the order is total.
	slices.SortFunc(buf, func(a, b pair) int { return strings.Compare(a.k, b.k) })
	return buf, n, nil
}

// appendCanonical appends the canonical form of pairs, as returned by
// Context.pairs, to dst.
func appendCanonical(dst []byte, pairs []pair) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(pairs)))
	for _, p := range pairs {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(p.k)))
		dst = append(dst, p.k...)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(p.v)))
		dst = append(dst, p.v...)
	}
	return dst
}
