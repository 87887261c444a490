package client

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/envelope"
)

// Version 2 of the stream format (FIPS 140-3): its writer draws each
// segment's nonce inside the crypto module, so its output cannot be a
// fixed vector. The vectors in testdata/stream-vectors-v2.json are made by
// the reference encoder below, written from docs/client-stream-format.md,
// with the fixed nonces vectorNonce(i); the implementation must open them,
// and the reference decoder must open what the implementation writes.

// vectorNonce is the nonce of segment i in the version 2 vectors: "NONC"
// and i as a big-endian uint64. A real writer draws nonces at random.
func vectorNonce(i uint64) [nonceSize]byte {
	var n [nonceSize]byte
	copy(n[:], "NONC")
	binary.BigEndian.PutUint64(n[4:], i)
	return n
}

// plainGCM is GCM taking the caller's nonce, for the reference encoder and
// decoder; under GODEBUG=fips140=only it is built without enforcement, as
// only a test may.
func plainGCM(t testing.TB, key []byte) cipher.AEAD {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	var gcm cipher.AEAD
	fips140.WithoutEnforcement(func() { gcm, err = cipher.NewGCM(block) })
	if err != nil {
		t.Fatal(err)
	}
	return gcm
}

// referenceKeysV2 is version 2's key schedule as the document states it.
func referenceKeysV2(t testing.TB, key, salt []byte, digest [32]byte) []byte {
	okm, err := hkdf.Key(sha256.New, key, salt, "tenantcrypt/client-stream/v2\x00"+string(digest[:]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return okm
}

// referenceSealV2 is the reference encoder of version 2, with the nonce of
// segment i chosen by nonce.
func referenceSealV2(t testing.TB, key []byte, salt [saltSize]byte, handle string, ctx map[string]string, pt []byte, nonce func(uint64) [nonceSize]byte) []byte {
	t.Helper()
	digest, err := envelope.Context(ctx).Digest()
	if err != nil {
		t.Fatal(err)
	}
	okm := referenceKeysV2(t, key, salt[:], digest)
	out := append([]byte("TCS\x02"), salt[:]...)
	out = append(out, byte(len(handle)))
	out = append(out, handle...)
	m := hmac.New(sha256.New, okm[32:])
	m.Write(out)
	out = m.Sum(out)
	gcm := plainGCM(t, okm[:32])
	for i := uint64(0); ; i++ {
		n := min(len(pt), 65536)
		last := len(pt) <= 65536
		ad := binary.BigEndian.AppendUint64(nil, i)
		if last {
			ad = append(ad, 1)
		} else {
			ad = append(ad, 0)
		}
		nc := nonce(i)
		out = append(out, nc[:]...)
		out = gcm.Seal(out, nc[:], pt[:n], ad)
		if last {
			return out
		}
		pt = pt[n:]
	}
}

// referenceOpenV2 is the reference decoder of version 2.
func referenceOpenV2(t testing.TB, key []byte, ctx map[string]string, stream []byte) ([]byte, error) {
	gcm, payload, err := referenceHeader(t, stream, "TCS\x02", ctx, func(salt []byte, digest [32]byte) []byte {
		return referenceKeysV2(t, key, salt, digest)
	})
	if err != nil {
		return nil, err
	}
	var out []byte
	for i := uint64(0); ; i++ {
		n := min(len(payload), 12+65536+16)
		last := len(payload) <= 12+65536+16
		if n < 28 || (last && i > 0 && n == 28) {
			return nil, errors.New("bad last segment")
		}
		ad := binary.BigEndian.AppendUint64(nil, i)
		if last {
			ad = append(ad, 1)
		} else {
			ad = append(ad, 0)
		}
		pt, err := gcm.Open(nil, payload[:12], payload[12:n], ad)
		if err != nil {
			return nil, err
		}
		out = append(out, pt...)
		if last {
			return out, nil
		}
		payload = payload[n:]
	}
}

// noncesOf returns the nonces of a version 2 stream's segments, for
// re-encrypting it with the reference encoder.
func noncesOf(t testing.TB, stream []byte) func(uint64) [nonceSize]byte {
	_, n, err := parseHeader(stream)
	if err != nil {
		t.Fatal(err)
	}
	var nonces [][nonceSize]byte
	for p := stream[n:]; len(p) > 0; p = p[min(len(p), encSegmentSizeV2):] {
		nonces = append(nonces, [nonceSize]byte(p[:nonceSize]))
	}
	return func(i uint64) [nonceSize]byte { return nonces[i] }
}

func makeVectorsV2(t *testing.T) vectorFile {
	f := vectorFile{
		Comment: "tenantcrypt client stream format v2 (docs/client-stream-format.md). " +
			"plaintext byte i is i mod 251. payloadKey || macKey = HKDF-SHA256(dataKey, salt, " +
			`"tenantcrypt/client-stream/v2\u0000" || contextDigest, 64). ` +
			`segment i is nonce_i || AES-256-GCM(payloadKey, nonce_i, segment, i as uint64 || last flag); ` +
			`these vectors use nonce_i = "NONC" || i as uint64, a writer draws it at random. ` +
			"stream is given in full when at most 256 bytes; streamSHA256 always.",
		SegmentSize: segmentSize,
	}
	for _, v := range vectorInputs() {
		key, _ := hex.DecodeString(v.DataKey)
		var salt [saltSize]byte
		s, _ := hex.DecodeString(v.Salt)
		copy(salt[:], s)
		stream := referenceSealV2(t, key, salt, v.Handle, v.Context, vectorPlaintext(v.PlaintextSize), vectorNonce)
		digest, err := envelope.Context(v.Context).Digest()
		if err != nil {
			t.Fatal(err)
		}
		okm := referenceKeysV2(t, key, salt[:], digest)
		_, n, err := parseHeader(stream)
		if err != nil {
			t.Fatal(err)
		}
		v.ContextDigest = hex.EncodeToString(digest[:])
		v.PayloadKey, v.MACKey = hex.EncodeToString(okm[:32]), hex.EncodeToString(okm[32:])
		v.Header = hex.EncodeToString(stream[:n])
		if len(stream) <= 256 {
			v.Stream = hex.EncodeToString(stream)
		}
		sum := sha256.Sum256(stream)
		v.StreamSize, v.StreamSHA256 = len(stream), hex.EncodeToString(sum[:])
		f.Vectors = append(f.Vectors, v)
	}
	return f
}

// TestVectorsV2: the implementation opens the version 2 vectors, and what
// it writes for the same inputs has the vector's header and size and
// opens with the reference decoder.
func TestVectorsV2(t *testing.T) {
	t.Parallel()
	for _, c := range checkedVectors(t, "stream-vectors-v2.json", makeVectorsV2(t)) {
		w, key, salt := c.vector, c.key, c.salt
		pt := vectorPlaintext(w.PlaintextSize)
		stream := referenceSealV2(t, key, salt, w.Handle, w.Context, pt, vectorNonce)
		if w.Stream != "" && hex.EncodeToString(stream) != w.Stream {
			t.Errorf("vector %q: stream differs", w.Name)
		}
		if out, err := decryptStream(nil, stream, w.Context, staticKeys(key)); err != nil || !bytes.Equal(out, pt) {
			t.Errorf("vector %q: the implementation does not open it: %v", w.Name, err)
		}
		// The implementation's own stream for the same inputs.
		digest, _ := contextDigest(w.Context)
		keys, err := deriveStreamKeys(streamV2, key, salt[:], &digest)
		if err != nil {
			t.Fatal(err)
		}
		h := streamHeader{version: streamV2, salt: salt, handle: w.Handle}
		mine := appendStream(nil, &keys, &h, pt)
		if got, want := hex.EncodeToString(mine[:min(len(mine), len(w.Header)/2)]), w.Header; got != want {
			t.Errorf("vector %q: header %s, want %s", w.Name, got, want)
		}
		if len(mine) != w.StreamSize {
			t.Errorf("vector %q: the implementation writes %d bytes, want %d", w.Name, len(mine), w.StreamSize)
		}
		if out, err := referenceOpenV2(t, key, w.Context, mine); err != nil || !bytes.Equal(out, pt) {
			t.Errorf("vector %q: the reference does not open the implementation's stream: %v", w.Name, err)
		}
		// Same nonces, same bytes: the implementation's only freedom is
		// the nonce.
		if again := referenceSealV2(t, key, salt, w.Handle, w.Context, pt, noncesOf(t, mine)); !bytes.Equal(again, mine) {
			t.Errorf("vector %q: the implementation's stream is not the reference's with its nonces", w.Name)
		}
	}
}

// TestStreamVersionByMode: new streams are version 2 in FIPS 140-3 mode
// and version 1 otherwise; an Envelope reads both versions (but version 1
// not under GODEBUG=fips140=only, where it says so without asking the
// service for the key).
func TestStreamVersionByMode(t *testing.T) {
	t.Parallel()
	s := newFake(t)
	c, _ := newTestClient(t, s, "acme")
	e := c.Envelope()
	ctx := context.Background()
	stream, err := e.Encrypt(ctx, []byte("hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := byte(streamV1)
	if fips140.Enabled() {
		want = streamV2
	}
	if got := stream[3]; got != want {
		t.Errorf("new stream is version %d, want %d", got, want)
	}
	var v1, v2 []byte
	fips140.WithoutEnforcement(func() {
		for _, v := range []byte{streamV1, streamV2} {
			ev := *e
			ev.version = v
			b, err := ev.Encrypt(ctx, []byte("hello"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if v == streamV1 {
				v1 = b
			} else {
				v2 = b
			}
		}
	})
	if got, err := decryptAll(t, e, v2, nil); err != nil || string(got) != "hello" {
		t.Errorf("version 2: %q, %v", got, err)
	}
	before := s.Requests("")
	got, err := e.Decrypt(ctx, v1, nil)
	if fips140.Enforced() {
		if !errors.Is(err, ErrNotApproved) {
			t.Errorf("version 1 under fips140=only: %q, %v, want ErrNotApproved", got, err)
		}
		if _, err := e.NewDecryptReader(ctx, bytes.NewReader(v1), nil); !errors.Is(err, ErrNotApproved) {
			t.Errorf("version 1 reader under fips140=only: %v, want ErrNotApproved", err)
		}
		if n := s.Requests("") - before; n != 0 {
			t.Errorf("refusing version 1 made %d requests to the service, want 0", n)
		}
	} else if err != nil || string(got) != "hello" {
		t.Errorf("version 1: %q, %v", got, err)
	}
}
