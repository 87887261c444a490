package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/envelope"
)

// Envelope is local envelope encryption: content of any size is encrypted
// and decrypted in this process, under data keys from the service, so that
// bulk data never passes through the service. Get it with Client.Envelope.
//
// The output is the client's stream format (docs/client-stream-format.md):
// a header naming the data key by its handle, then AES-256-GCM segments of
// 64 KiB in the manner of STREAM, each bound to its position and a
// last-segment flag, so that a stream cut short, extended, reordered or
// altered anywhere fails to decrypt. In FIPS 140-3 mode new streams are
// version 2 (random nonces drawn by the module, as GODEBUG=fips140=only
// requires), otherwise version 1 (counter nonces); both decrypt, except
// version 1 under fips140=only (ErrNotApproved). Byte slices (Encrypt,
// Decrypt) and streams (NewEncryptWriter, NewDecryptReader) share the
// format: what one writes the other reads.
//
// The encryption context (ectx) names what the data is, for instance
// {"object": "reports/q1.pdf"}. It is bound into the keys of the stream,
// not stored in it: decryption needs exactly the same pairs. It is not
// secret.
//
// A stream is bound to its tenant through its data key: only the tenant
// that the data key belongs to can resolve the handle, so a stream of
// tenant A does not decrypt with tenant B's token (ErrDecryptionFailed).
//
// Data keys are cached by the Client within the bounds of its
// KeyCacheConfig: one request to the service serves many objects, and
// decrypting what this Client encrypted needs no request at all. Every
// Envelope of a Client shares its cache. An Envelope is safe for
// concurrent use; a writer or reader it returns is not.
type Envelope struct {
	c *Client
	// version is the stream format version written: 2 in FIPS 140-3
	// mode, 1 otherwise (tests set it to cover both).
	version byte
}

// Envelope returns the Client's local envelope encryption.
func (c *Client) Envelope() *Envelope { return &Envelope{c: c, version: writeVersion()} }

// PurgeKeys zeroes every data key the Client has cached for local envelope
// encryption. The Client stays usable and fetches keys again as needed.
// Call it when done with the Client, and when the application learns
// that the tenant's key was revoked by other means.
func (c *Client) PurgeKeys() { c.keys.purge() }

// dataKeyContext is the encryption context, at the service, of every data
// key of the stream format: the service binds each handle to it, so a
// handle of a stream resolves only as one, and no other use of the data-key
// API can be made to produce or resolve the keys of streams. The caller's
// own encryption context is bound by the stream's keys instead, locally, so
// one data key serves objects of any context.
var dataKeyContext = map[string]string{"tenantcrypt:format": "client-stream/v1"}

func contextDigest(ectx map[string]string) ([32]byte, error) {
	d, err := envelope.Context(ectx).Digest()
	if err != nil {
		return d, fmt.Errorf("client: encryption context: %w", err)
	}
	return d, nil
}

// newStreamKeys reserves a use of the cached data key (or gets a new one)
// and derives a new stream's keys and header.
func (e *Envelope) newStreamKeys(ctx context.Context, ectx map[string]string, size int64) (streamKeys, streamHeader, *dataKey, error) {
	digest, err := contextDigest(ectx)
	if err != nil {
		return streamKeys{}, streamHeader{}, nil, err
	}
	h := streamHeader{version: e.version}
	if _, err := rand.Read(h.salt[:]); err != nil {
		return streamKeys{}, streamHeader{}, nil, fmt.Errorf("client: reading random salt: %w", err)
	}
	var keys streamKeys
	var used *dataKey
	err = e.c.keys.withEncryptionKey(ctx, e.c.newStreamDataKey, size, func(secret []byte, k *dataKey) error {
		var err error
		keys, err = deriveStreamKeys(h.version, secret, h.salt[:], &digest)
		h.handle, used = k.handle, k
		return err
	})
	if err != nil {
		return streamKeys{}, streamHeader{}, nil, err
	}
	return keys, h, used, nil
}

// openStreamKeys resolves the data key of a parsed header and returns the
// stream's keys once the header's MAC checks out. It is the Envelope's
// keySource.
func (e *Envelope) openStreamKeys(ctx context.Context) keySource {
	return func(h *streamHeader, signed []byte, ectx map[string]string) (streamKeys, error) {
		digest, err := contextDigest(ectx)
		if err != nil {
			return streamKeys{}, err
		}
		var keys streamKeys
		err = e.c.keys.withDecryptionKey(ctx, h.handle, e.c.resolveStreamDataKey, func(secret []byte) error {
			var err error
			keys, err = deriveStreamKeys(h.version, secret, h.salt[:], &digest)
			return err
		})
		if err != nil {
			return streamKeys{}, err
		}
		return keys, verifyHeader(&keys, h, signed)
	}
}

// Encrypt encrypts plaintext locally, bound to ectx, and returns the
// stream: a header of about 100 bytes, then plaintext plus 16 bytes per
// started 64 KiB. It asks the service for a data key only when no cached
// key is usable.
func (e *Envelope) Encrypt(ctx context.Context, plaintext []byte, ectx map[string]string) ([]byte, error) {
	return e.AppendEncrypt(ctx, nil, plaintext, ectx)
}

// AppendEncrypt is Encrypt appending the stream to dst, so that a caller
// can reuse a buffer (for large objects the allocation otherwise costs as
// much as the encryption). dst must not overlap plaintext.
func (e *Envelope) AppendEncrypt(ctx context.Context, dst, plaintext []byte, ectx map[string]string) ([]byte, error) {
	keys, h, _, err := e.newStreamKeys(ctx, ectx, int64(len(plaintext)))
	if err != nil {
		return nil, err
	}
	return appendStream(dst, &keys, &h, plaintext), nil
}

// Decrypt decrypts a stream made by Encrypt or an encrypt writer with the
// same ectx. It returns all of the plaintext or none of it: any alteration,
// truncation or extension, another context, or another tenant's token is
// ErrDecryptionFailed; input that is not a stream of this format is
// ErrMalformedStream.
func (e *Envelope) Decrypt(ctx context.Context, stream []byte, ectx map[string]string) ([]byte, error) {
	return e.AppendDecrypt(ctx, nil, stream, ectx)
}

// AppendDecrypt is Decrypt appending the plaintext to dst, so that a
// caller can reuse a buffer. On an error it returns nil, and whatever it
// wrote into dst's spare capacity is zeroed. dst must not overlap stream.
func (e *Envelope) AppendDecrypt(ctx context.Context, dst, stream []byte, ectx map[string]string) ([]byte, error) {
	return decryptStream(dst, stream, ectx, e.openStreamKeys(ctx))
}

// NewEncryptWriter returns a writer that encrypts what is written to it,
// bound to ectx, into w, in constant memory (one 64 KiB segment). The
// header is written to w at once. Close writes the last segment and must
// be called, or the stream does not decrypt; it does not close w. ctx is
// used only to get the data key.
func (e *Envelope) NewEncryptWriter(ctx context.Context, w io.Writer, ectx map[string]string) (io.WriteCloser, error) {
	keys, h, k, err := e.newStreamKeys(ctx, ectx, 0)
	if err != nil {
		return nil, err
	}
	ew, err := newEncryptWriter(w, &keys, &h, func(n int) { k.bytes.Add(int64(n)) })
	if err != nil {
		return nil, err
	}
	return ew, nil
}

// NewDecryptReader reads a stream's header from r, gets its data key and
// returns a reader of the plaintext, in constant memory. Each segment's
// plaintext is returned only once the segment has authenticated, but a
// stream is whole only when Read returns io.EOF: an error at any point
// (ErrDecryptionFailed for truncation, extension, reordering or any
// alteration) means the plaintext read so far must be discarded. ctx is
// used only to get the data key.
func (e *Envelope) NewDecryptReader(ctx context.Context, r io.Reader, ectx map[string]string) (io.Reader, error) {
	dr, err := newDecryptReader(r, ectx, e.openStreamKeys(ctx))
	if err != nil {
		return nil, err
	}
	return dr, nil
}

// newStreamDataKey asks the service for a data key of the stream format.
func (c *Client) newStreamDataKey(ctx context.Context) ([]byte, string, error) {
	key, handle, err := c.dataKeyCall(ctx, api.RouteGenerateDataKey, api.DataKeyRequest{Context: dataKeyContext})
	if err != nil {
		return nil, "", err
	}
	if err := checkHandle(handle); err != nil || len(key) != envelope.KeySize {
		clear(key)
		return nil, "", errors.New("client: the service's data key answer is not a 32-byte key and a handle")
	}
	return key, handle, nil
}

// resolveStreamDataKey asks the service for the data key of a stream's
// handle.
func (c *Client) resolveStreamDataKey(ctx context.Context, handle string) ([]byte, error) {
	key, _, err := c.dataKeyCall(ctx, api.RouteDecryptDataKey,
		api.DataKeyDecryptRequest{Handle: handle, Context: dataKeyContext})
	if err != nil {
		return nil, err
	}
	if len(key) != envelope.KeySize {
		clear(key)
		return nil, errors.New("client: the service's data key is not 32 bytes")
	}
	return key, nil
}

// dataKeyCall sends a data-key request and decodes the plaintext key
// straight from the answer's bytes, which it then zeroes, so that no copy
// of the key lingers in an immutable string.
func (c *Client) dataKeyCall(ctx context.Context, rt api.Route, in any) (key []byte, handle string, err error) {
	data, _, err := c.send(ctx, to(rt), in)
	if err != nil {
		return nil, "", err
	}
	defer clear(data)
	var out struct {
		Plaintext secretBase64 `json:"plaintext"`
		Handle    string       `json:"handle"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		clear(out.Plaintext)
		// The decoder's message could quote the answer: say less.
		return nil, "", fmt.Errorf("client: the answer of %s is not the expected JSON", rt)
	}
	return out.Plaintext, out.Handle, nil
}

// secretBase64 is key material in standard base64, decoded without an
// intermediate string.
type secretBase64 []byte

func (s *secretBase64) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil
	}
	if len(data) < 2 || data[0] != '"' || data[len(data)-1] != '"' || bytes.IndexByte(data, '\\') >= 0 {
		return errors.New("client: key is not a plain JSON string")
	}
	raw := data[1 : len(data)-1]
	b := make([]byte, base64.StdEncoding.DecodedLen(len(raw)))
	n, err := base64.StdEncoding.Decode(b, raw)
	if err != nil {
		clear(b)
		return errors.New("client: key is not valid base64")
	}
	*s = b[:n]
	return nil
}
