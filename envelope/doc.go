// Package envelope is tenantcrypt's ciphertext format and its AEAD sealing.
//
// It is the one place that knows how a tenant's data is laid out once
// encrypted, shared by the service and the Go client, so it does no I/O,
// holds no keys and imports only the standard library. Use [NewAEAD] once
// per data key, then [Seal] and [Open] per message; store or send
// [Ciphertext.MarshalBinary], or [FormatText] of it where only text fits
// (JSON). Read stored bytes back with [ParseCiphertext] (or [ParseText]
// first). A [Handle] names a data key handed to a caller without carrying
// any key material.
//
// For many small messages in a row (the service's batches), the append
// forms [Sealer], [Opener], [AppendText] and [AppendParseText] do the same
// work, byte for byte, into buffers the caller reuses, with no allocation
// per message.
//
// Every parser is strict and bounded: malformed input is an error wrapping
// [ErrMalformed], never a panic, and whatever parses marshals back to the
// same bytes, so a value has exactly one encoding. Decryption failures of
// any cause are the single opaque [ErrDecrypt].
//
// # Binary layout, version 1
//
// All integers are unsigned big-endian. A ciphertext (type 0x01) is
//
//	offset  size  field
//	0       1     version = 0x01 (Version1)
//	1       1     type    = 0x01 (ciphertext)
//	2       16    key id: the data key, never the provider, so migrating
//	              a tenant to another key provider rewrites no ciphertext
//	18      12    nonce: random, fresh for every Seal
//	30      n+16  sealed: AES-256-GCM encryption of the n-byte plaintext,
//	              followed by the 16-byte tag
//
// so it is 46+n bytes, with 0 <= n <= [MaxPlaintextSize]. The plaintext
// length is implied by the input length: a length field would be one more
// thing to check and could only disagree. The nonce directly precedes the
// sealed bytes, which is exactly what crypto/cipher's
// NewGCMWithRandomNonce emits: in FIPS 140-3 mode [NewAEAD] is that
// construction (the module draws the nonce, as GODEBUG=fips140=only
// requires), with no format change; either mode opens what the other
// sealed.
//
// A handle (type 0x02) is exactly 18 bytes:
//
//	0       1     version = 0x01
//	1       1     type    = 0x02 (handle)
//	2       16    key id
//
// # Associated data
//
// Seal and Open authenticate, beside the header, the tenant and the
// caller's encryption context ([AssociatedData]):
//
//	"tenantcrypt/envelope/v1\x00"          24 bytes, domain separation
//	version 0x01, type 0x01                  2 bytes
//	key id                                   16 bytes
//	len(tenant id) uint32, tenant id         4 + 1..128 bytes
//	Context.Canonical()                      4 + pairs
//
// The nonce and tag need no binding: GCM authenticates them by
// construction. Together this means that flipping any bit of a ciphertext,
// or opening it for another tenant, data key or context, fails.
//
// The canonical context is the pair count as uint32, then for each pair in
// bytewise order of keys: len(key) uint32, key, len(value) uint32, value.
// Length prefixes make it unambiguous ({"a":"bc"} and {"ab":"c"} differ)
// and sorting makes it independent of map order.
//
// # Text form
//
// For JSON, [FormatText] renders "<prefix>:<base64url without padding>",
// for example "#QLIKv1#:acme:AQE…". The prefix names the key provider the
// value was issued under. It is informational only and not authenticated:
// the binary names the data key, and nothing may be decided on the prefix
// alone.
package envelope
