package envelope

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// Bounds of the prefix grammar; see FormatText.
const (
	maxPrefixTagSize     = 8
	maxPrefixVersionSize = 4
	maxPrefixIDSize      = 128
)

// MaxPrefixSize is the longest prefix of a text form, in bytes: exactly the
// longest the grammar of FormatText allows (1+8+1+4+2+128), so that the
// bound is tight. It is checked first, before any other work on the input.
const MaxPrefixSize = 144

const (
	internalPrefixHead = "#QLIKv1#:"
	cmkPrefixHead      = "#BYOKv1#:"
)

// maxTextPayloadSize is the base64 length of the longest binary value.
var maxTextPayloadSize = base64.RawURLEncoding.EncodedLen(MaxCiphertextSize)

// textEncoding accepts exactly one encoding of each value: no padding and
// no stray bits in the last character.
var textEncoding = base64.RawURLEncoding.Strict()

// InternalPrefix is the prefix of values issued under tenantcrypt's
// internal KMS for the given tenant, e.g. "#QLIKv1#:acme". It does not
// validate; FormatText does.
func InternalPrefix(tenantID string) string { return internalPrefixHead + tenantID }

// CMKPrefix is the prefix of values issued under a customer managed key,
// named by its fingerprint (32 hex digits), e.g. "#BYOKv1#:9f86…". It does
// not validate; FormatText does.
func CMKPrefix(fingerprint string) string { return cmkPrefixHead + fingerprint }

// FormatText renders a binary ciphertext or handle as
// "<prefix>:<base64url without padding>", the form used in JSON.
//
// The prefix tells a caller which key provider a value was issued under
// (InternalPrefix, CMKPrefix). It is informational: it is not
// authenticated, and decryption follows the key id in the binary. Its form
// is '#' TAG 'v' VERSION '#' ':' ID, with TAG 1–8 of [A-Z], VERSION 1–4
// decimal digits and ID 1–128 of [A-Za-z0-9._-]; since ID cannot contain
// ':' and base64url has none, the payload is what follows the last ':'.
//
// binary must be a valid ciphertext or handle, so that nothing FormatText
// emits is refused by ParseText. Errors wrap ErrMalformed.
func FormatText(prefix string, binary []byte) (string, error) {
	if err := checkPrefix(prefix); err != nil {
		return "", err
	}
	if err := checkBinary(binary); err != nil {
		return "", err
	}
	b := make([]byte, 0, len(prefix)+1+textEncoding.EncodedLen(len(binary)))
	b = append(b, prefix...)
	b = append(b, ':')
	return string(textEncoding.AppendEncode(b, binary)), nil
}

// ParseText splits a text form made by FormatText into its prefix and the
// decoded binary value, which it checks is a ciphertext or handle; the
// caller then parses it with ParseCiphertext or ParseHandle. The base64 must
// be canonical so that each value has one text form. Errors wrap
// ErrMalformed.
func ParseText(s string) (prefix string, binary []byte, err error) {
	// The payload (base64url) has no ':', so the last ':' is within the
	// bounded prefix; looking only there keeps long inputs cheap, and a ':'
	// further on fails the payload's decoding.
	i := strings.LastIndexByte(s[:min(len(s), MaxPrefixSize+1)], ':')
	if i < 0 {
		return "", nil, fmt.Errorf("%w: text form has no ':'", ErrMalformed)
	}
	prefix, payload := s[:i], s[i+1:]
	if err := checkPrefix(prefix); err != nil {
		return "", nil, err
	}
	if len(payload) > maxTextPayloadSize {
		return "", nil, fmt.Errorf("%w: text payload is %d bytes, more than %d", ErrMalformed, len(payload), maxTextPayloadSize)
	}
	// The decoder skips CR and LF even in strict mode; refuse them so the
	// text form stays unique.
	if strings.IndexByte(payload, '\r') >= 0 || strings.IndexByte(payload, '\n') >= 0 {
		return "", nil, fmt.Errorf("%w: text payload contains a line break", ErrMalformed)
	}
	binary, err = textEncoding.DecodeString(payload)
	if err != nil {
		// The decoder's error would quote an offset into the input; the
		// message is enough.
		return "", nil, fmt.Errorf("%w: text payload is not canonical unpadded base64url", ErrMalformed)
	}
	if err := checkBinary(binary); err != nil {
		return "", nil, err
	}
	return prefix, binary, nil
}

// checkBinary accepts a valid ciphertext or handle. It does not allocate
// (ParseCiphertext would, for its result): FormatText and AppendText call
// it for every value they write.
func checkBinary(b []byte) error {
	if len(b) >= 2 && b[1] == typeHandle {
		_, err := ParseHandle(b)
		return err
	}
	return checkCiphertext(b)
}

// checkPrefix checks the prefix grammar documented on FormatText. It takes
// bytes as well as a string so that AppendParseText checks a prefix in
// place, without converting it.
func checkPrefix[S ~string | ~[]byte](p S) error {
	if len(p) > MaxPrefixSize {
		return fmt.Errorf("%w: prefix is %d bytes, more than %d", ErrMalformed, len(p), MaxPrefixSize)
	}
	bad := func(what string) error {
		return fmt.Errorf("%w: prefix is not '#' TAG 'v' VERSION '#:' ID: %s", ErrMalformed, what)
	}
	if len(p) == 0 || p[0] != '#' {
		return bad("no leading '#'")
	}
	i := 1
	n := span(p[i:], isUpper)
	if n == 0 || n > maxPrefixTagSize {
		return bad("TAG must be 1 to 8 of A-Z")
	}
	i += n
	if i >= len(p) || p[i] != 'v' {
		return bad("no 'v' after TAG")
	}
	i++
	n = span(p[i:], isDigit)
	if n == 0 || n > maxPrefixVersionSize {
		return bad("VERSION must be 1 to 4 digits")
	}
	i += n
	if len(p) < i+2 || p[i] != '#' || p[i+1] != ':' {
		return bad("no '#:' after VERSION")
	}
	i += 2
	id := p[i:]
	if len(id) == 0 || len(id) > maxPrefixIDSize || span(id, isIDByte) != len(id) {
		return bad("ID must be 1 to 128 of A-Z a-z 0-9 . _ -")
	}
	return nil
}

// span returns the length of the longest prefix of s whose bytes all
// satisfy ok.
func span[S ~string | ~[]byte](s S, ok func(byte) bool) int {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return i
		}
	}
	return len(s)
}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isIDByte(c byte) bool {
	return isUpper(c) || 'a' <= c && c <= 'z' || isDigit(c) || c == '.' || c == '_' || c == '-'
}
