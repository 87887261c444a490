package client

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/tenantcrypt/tenantcrypt/envelope"
)

// The client's stream format, versions 1 and 2. docs/client-stream-format.md
// is the byte-level reference and testdata/stream-vectors.json its
// executable form; in short:
//
//	header   "TCS" version | salt (32) | len(handle) (1) | handle | HMAC-SHA256 (32)
//	segments AES-256-GCM of 64 KiB plaintext segments; the last one holds
//	         0..64 KiB (0 only when it is the only one)
//	  v1:    nonce = 88-bit big-endian segment counter | last-segment flag
//	         (0x00 or 0x01); no associated data
//	  v2:    random nonce drawn by the FIPS 140-3 module, written before
//	         the segment; associated data = 64-bit big-endian segment
//	         counter | last-segment flag
//
// Keys, per stream: HKDF-SHA256(secret = data key, salt = the header's
// salt, info = the version's info string | SHA-256 digest of the
// encryption context) gives 64 bytes: the segments' AES-256 key, then the
// header's HMAC key. A fresh random salt per stream gives every stream its
// own keys, so one cached data key can seal many streams with counter
// nonces, as STREAM needs.
//
// Version 2 exists for FIPS 140-3: GODEBUG=fips140=only refuses GCM with
// nonces chosen by the caller, and the only approved construction open to
// applications is the module's random nonce (cipher.NewGCMWithRandomNonce).
// The counter and flag move into the associated data, so truncation,
// extension and reordering still fail. Writers use version 2 in FIPS
// 140-3 mode and version 1 otherwise (so that older readers keep reading
// what is written outside FIPS mode); readers read both, except version 1
// under fips140=only.

const (
	// streamMagic is the first four bytes of every stream of version 1:
	// "TCS" and the version. It differs from every value of package
	// envelope (whose first byte is its version, 0x01) and from its text
	// form ('#'). Version 2 has "TCS\x02".
	streamMagic = "TCS\x01"
	// streamInfo is HKDF's info prefix: domain separation from every other
	// use of a data key, and the version of the key schedule.
	streamInfo = "tenantcrypt/client-stream/v1\x00"
	// streamInfoV2 is version 2's.
	streamInfoV2 = "tenantcrypt/client-stream/v2\x00"

	// streamV1 and streamV2 are the versions, the magic's fourth byte.
	streamV1 = 1
	streamV2 = 2

	saltSize = 32
	macSize  = 32
	// segmentSize is the plaintext size of every segment but the last.
	// 64 KiB keeps the per-segment cost (a nonce, a tag) negligible and the
	// memory of a stream constant and small.
	segmentSize    = 64 << 10
	tagSize        = 16
	nonceSize      = 12
	encSegmentSize = segmentSize + tagSize
	// encSegmentSizeV2 is version 2's: the nonce precedes each segment.
	encSegmentSizeV2 = segmentSize + nonceSize + tagSize
	// segmentADSize is version 2's associated data of a segment.
	segmentADSize = 9
	// maxHandleSize is the longest text form of a handle: a prefix of at
	// most envelope.MaxPrefixSize bytes, ':' and the 24 characters of an
	// 18-byte handle in unpadded base64url.
	maxHandleSize = envelope.MaxPrefixSize + 1 + 24
	// headerFixedSize is the header without the handle.
	headerFixedSize = len(streamMagic) + saltSize + 1 + macSize
	maxHeaderSize   = headerFixedSize + maxHandleSize
	// maxSegments bounds the counter well inside its 88 bits: 2^64
	// segments of 64 KiB is more than any stream.
	maxSegments = 1<<64 - 1
	// maxSegmentsV2 keeps a stream of version 2 within the 2^32 random
	// nonces allowed under one key (its payload key is its own): 256 TiB.
	maxSegmentsV2 = 1 << 32
)

// errV1InFIPSOnly is what reading a version 1 stream under
// GODEBUG=fips140=only returns.
var errV1InFIPSOnly = fmt.Errorf("%w: a version 1 stream (counter nonces) cannot be decrypted under GODEBUG=fips140=only; decrypt it outside that mode (see docs/fips.md)", ErrNotApproved)

// checkApproved refuses a version 1 stream under GODEBUG=fips140=only,
// before anyone is asked for its key.
func checkApproved(version byte) error {
	if version == streamV1 && fips140.Enforced() {
		return errV1InFIPSOnly
	}
	return nil
}

// writeVersion is the version new streams get: 2 in FIPS 140-3 mode, 1
// otherwise.
func writeVersion() byte {
	if fips140.Enabled() {
		return streamV2
	}
	return streamV1
}

// layout is what differs between the versions' segments.
type layout struct {
	version byte
	// overhead is what sealing adds to a segment: tag, and v2's nonce.
	overhead int
	// encSegment is a non-final segment's size.
	encSegment int
	// maxSegments bounds a stream's segments.
	maxSegments uint64
}

func layoutOf(version byte) layout {
	if version == streamV2 {
		return layout{streamV2, nonceSize + tagSize, encSegmentSizeV2, maxSegmentsV2}
	}
	return layout{streamV1, tagSize, encSegmentSize, maxSegments}
}

// errWriterClosed is what a Write or Close after Close returns.
var errWriterClosed = errors.New("client: encrypt writer is closed")

// streamHeader is a parsed header. The handle is the data key's handle in
// the text form the service issued.
type streamHeader struct {
	// version is 1 or 2; the zero value of a header made to write is 1.
	version byte
	salt    [saltSize]byte
	handle  string
	mac     [macSize]byte
}

// appendSigned appends the header's authenticated part, everything but the
// MAC, to dst.
func (h *streamHeader) appendSigned(dst []byte) []byte {
	dst = append(dst, streamMagic[:3]...)
	dst = append(dst, max(h.version, streamV1))
	dst = append(dst, h.salt[:]...)
	dst = append(dst, byte(len(h.handle)))
	return append(dst, h.handle...)
}

// size is the header's length in bytes.
func (h *streamHeader) size() int { return headerFixedSize + len(h.handle) }

// checkHandle accepts exactly the handles the service issues: the text
// form of an envelope handle, canonical, at most maxHandleSize bytes.
// Errors wrap ErrMalformedStream and never repeat the input.
func checkHandle(s string) error {
	if len(s) == 0 || len(s) > maxHandleSize {
		return fmt.Errorf("%w: handle is %d bytes, want 1 to %d", ErrMalformedStream, len(s), maxHandleSize)
	}
	_, bin, err := envelope.ParseText(s)
	if err == nil {
		_, err = envelope.ParseHandle(bin)
	}
	if err != nil {
		return fmt.Errorf("%w: the header's handle is not a data key handle", ErrMalformedStream)
	}
	return nil
}

// parseHeader parses the header at the start of b and returns it and its
// length. It does not check the MAC (that needs the key). Errors wrap
// ErrMalformedStream.
func parseHeader(b []byte) (streamHeader, int, error) {
	var h streamHeader
	if len(b) < len(streamMagic)+saltSize+1 {
		if err := checkMagic(b); err != nil {
			return h, 0, err
		}
		return h, 0, fmt.Errorf("%w: the header is truncated", ErrMalformedStream)
	}
	if err := checkMagic(b); err != nil {
		return h, 0, err
	}
	h.version = b[3]
	i := len(streamMagic)
	copy(h.salt[:], b[i:])
	i += saltSize
	n := int(b[i])
	i++
	if n == 0 || n > maxHandleSize {
		return h, 0, fmt.Errorf("%w: handle length %d, want 1 to %d", ErrMalformedStream, n, maxHandleSize)
	}
	if len(b) < i+n+macSize {
		return h, 0, fmt.Errorf("%w: the header is truncated", ErrMalformedStream)
	}
	h.handle = string(b[i : i+n])
	if err := checkHandle(h.handle); err != nil {
		return h, 0, err
	}
	i += n
	copy(h.mac[:], b[i:])
	return h, i + macSize, nil
}

// checkMagic checks as much of the magic as b holds, so that a stream of
// another format is named as such however short it is.
func checkMagic(b []byte) error {
	m := b[:min(len(b), len(streamMagic))]
	switch {
	case string(m) == streamMagic[:len(m)]:
		return nil
	case len(m) == len(streamMagic) && string(m[:3]) == streamMagic[:3] && m[3] == streamV2:
		return nil
	case len(m) == len(streamMagic) && m[0] == 'T' && m[1] == 'C' && m[2] == 'S':
		return fmt.Errorf("%w: unsupported version", ErrMalformedStream)
	default:
		return fmt.Errorf("%w: wrong magic", ErrMalformedStream)
	}
}

// readHeader reads exactly the header from r, never more, and returns it
// with its raw bytes.
func readHeader(r io.Reader) (streamHeader, []byte, error) {
	buf := make([]byte, maxHeaderSize)
	first := len(streamMagic) + saltSize + 1
	if n, err := io.ReadFull(r, buf[:first]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			if err := checkMagic(buf[:n]); err != nil {
				return streamHeader{}, nil, err
			}
			return streamHeader{}, nil, fmt.Errorf("%w: the header is truncated", ErrMalformedStream)
		}
		return streamHeader{}, nil, fmt.Errorf("client: reading the stream header: %w", err)
	}
	if err := checkMagic(buf[:first]); err != nil {
		return streamHeader{}, nil, err
	}
	n := int(buf[first-1])
	if n == 0 || n > maxHandleSize {
		return streamHeader{}, nil, fmt.Errorf("%w: handle length %d, want 1 to %d", ErrMalformedStream, n, maxHandleSize)
	}
	total := first + n + macSize
	if _, err := io.ReadFull(r, buf[first:total]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return streamHeader{}, nil, fmt.Errorf("%w: the header is truncated", ErrMalformedStream)
		}
		return streamHeader{}, nil, fmt.Errorf("client: reading the stream header: %w", err)
	}
	h, _, err := parseHeader(buf[:total])
	return h, buf[:total], err
}

// streamKeys are one stream's keys.
type streamKeys struct {
	seg    segmentCipher
	macKey [32]byte
}

// destroy zeroes the MAC key. The AES key schedule inside aead lives in
// memory Go does not let us clear; it is dropped with the stream.
func (k *streamKeys) destroy() { clear(k.macKey[:]) }

// deriveStreamKeys derives the keys of a stream of the given version from
// the data key, the stream's salt and the digest of its encryption
// context. Under GODEBUG=fips140=only it refuses version 1 with an error
// wrapping ErrNotApproved.
func deriveStreamKeys(version byte, dataKey, salt []byte, ctxDigest *[32]byte) (streamKeys, error) {
	if len(dataKey) != envelope.KeySize {
		return streamKeys{}, fmt.Errorf("client: data key is %d bytes, want %d", len(dataKey), envelope.KeySize)
	}
	lay := layoutOf(version)
	if err := checkApproved(lay.version); err != nil {
		return streamKeys{}, err
	}
	infoPrefix := streamInfo
	if lay.version == streamV2 {
		infoPrefix = streamInfoV2
	}
	var info [len(streamInfo) + 32]byte
	copy(info[:], infoPrefix)
	copy(info[len(streamInfo):], ctxDigest[:])
	okm, err := hkdf.Key(sha256.New, dataKey, salt, string(info[:]), 64)
	if err != nil {
		return streamKeys{}, fmt.Errorf("client: deriving stream keys: %w", err)
	}
	defer clear(okm)
	block, err := aes.NewCipher(okm[:32])
	if err != nil {
		return streamKeys{}, fmt.Errorf("client: %w", err)
	}
	var aead cipher.AEAD
	if lay.version == streamV2 {
		aead, err = cipher.NewGCMWithRandomNonce(block)
	} else {
		aead, err = cipher.NewGCM(block)
	}
	if err != nil {
		return streamKeys{}, fmt.Errorf("client: %w", err)
	}
	k := streamKeys{seg: segmentCipher{aead: aead, layout: lay}}
	copy(k.macKey[:], okm[32:])
	return k, nil
}

// headerMAC is the MAC of a header's signed part.
func headerMAC(macKey *[32]byte, signed []byte) [macSize]byte {
	m := hmac.New(sha256.New, macKey[:])
	m.Write(signed)
	var out [macSize]byte
	m.Sum(out[:0])
	return out
}

// verifyHeader checks a header's MAC with the stream's keys; a mismatch
// (another data key, context or header) is ErrDecryptionFailed. It zeroes
// the MAC key, which is needed no more.
func verifyHeader(keys *streamKeys, h *streamHeader, signed []byte) error {
	mac := headerMAC(&keys.macKey, signed)
	keys.destroy()
	if !hmac.Equal(mac[:], h.mac[:]) {
		return ErrDecryptionFailed
	}
	return nil
}

// keySource finds the keys of a stream from its header and checks the
// header (verifyHeader); the Envelope's resolves the handle through the
// data-key cache, tests use a fixed key.
type keySource func(h *streamHeader, signed []byte, ectx map[string]string) (streamKeys, error)

// appendStream appends the stream of plaintext to dst: h (salt and handle
// set) with its MAC, then the segments.
func appendStream(dst []byte, keys *streamKeys, h *streamHeader, plaintext []byte) []byte {
	dst = slices.Grow(dst, h.size()+keys.seg.sealedSize(len(plaintext)))
	dst = appendHeader(dst, keys, h)
	return keys.seg.sealSegments(dst, plaintext)
}

// appendHeader appends h with its MAC and zeroes the MAC key.
func appendHeader(dst []byte, keys *streamKeys, h *streamHeader) []byte {
	start := len(dst)
	dst = h.appendSigned(dst)
	h.mac = headerMAC(&keys.macKey, dst[start:])
	keys.destroy()
	return append(dst, h.mac[:]...)
}

// decryptStream appends the plaintext of a whole stream to dst, all or
// nothing.
func decryptStream(dst, stream []byte, ectx map[string]string, open keySource) ([]byte, error) {
	h, n, err := parseHeader(stream)
	if err != nil {
		return nil, err
	}
	if err := checkApproved(h.version); err != nil {
		return nil, err
	}
	size, ok := layoutOf(h.version).openedSize(len(stream) - n)
	if !ok {
		// No segments could add up to this: cut or extended. Say so
		// before asking anyone for a key.
		return nil, ErrDecryptionFailed
	}
	keys, err := open(&h, stream[:n-macSize], ectx)
	if err != nil {
		return nil, err
	}
	return keys.seg.openSegments(slices.Grow(dst, size), stream[n:])
}

// segmentNonce writes segment i's nonce: the 88-bit big-endian counter,
// then the last-segment flag.
func segmentNonce(nonce *[nonceSize]byte, i uint64, last bool) {
	nonce[0], nonce[1], nonce[2] = 0, 0, 0
	binary.BigEndian.PutUint64(nonce[3:11], i)
	nonce[11] = 0
	if last {
		nonce[11] = 1
	}
}

// segmentAD writes version 2's associated data of segment i: the 64-bit
// big-endian counter, then the last-segment flag.
func segmentAD(ad *[segmentADSize]byte, i uint64, last bool) {
	binary.BigEndian.PutUint64(ad[:8], i)
	ad[8] = 0
	if last {
		ad[8] = 1
	}
}

// segmentCipher seals and opens the segments of one stream.
type segmentCipher struct {
	aead cipher.AEAD
	layout
}

// seal appends segment i of plaintext pt to dst.
func (c *segmentCipher) seal(dst []byte, i uint64, last bool, pt []byte) []byte {
	if c.version == streamV2 {
		var ad [segmentADSize]byte
		segmentAD(&ad, i, last)
		return c.aead.Seal(dst, nil, pt, ad[:])
	}
	var nonce [nonceSize]byte
	segmentNonce(&nonce, i, last)
	return c.aead.Seal(dst, nonce[:], pt, nil)
}

// open appends the plaintext of segment i to dst. dst may be seg[:0].
func (c *segmentCipher) open(dst []byte, i uint64, last bool, seg []byte) ([]byte, error) {
	if c.version == streamV2 {
		var ad [segmentADSize]byte
		segmentAD(&ad, i, last)
		return c.aead.Open(dst, nil, seg, ad[:])
	}
	var nonce [nonceSize]byte
	segmentNonce(&nonce, i, last)
	return c.aead.Open(dst, nonce[:], seg, nil)
}

// sealedSize is the size of the segments of an n-byte plaintext.
func (l layout) sealedSize(n int) int {
	segments := 1
	if n > 0 {
		segments = (n + segmentSize - 1) / segmentSize
	}
	return n + segments*l.overhead
}

// sealSegments appends the segments of plaintext to dst.
func (c *segmentCipher) sealSegments(dst []byte, plaintext []byte) []byte {
	for i := uint64(0); ; i++ {
		last := len(plaintext) <= segmentSize
		n := min(len(plaintext), segmentSize)
		dst = c.seal(dst, i, last, plaintext[:n])
		if last {
			return dst
		}
		plaintext = plaintext[n:]
	}
}

// openedSize returns the plaintext size of a payload of p bytes (the
// segments), or false if no stream has segments of that total size.
func (l layout) openedSize(p int) (int, bool) {
	if p < l.overhead {
		return 0, false
	}
	segments := (p + l.encSegment - 1) / l.encSegment
	last := p - (segments-1)*l.encSegment
	if last < l.overhead || (segments > 1 && last == l.overhead) || uint64(segments) > l.maxSegments {
		return 0, false
	}
	return p - segments*l.overhead, true
}

// openSegments appends the plaintext of payload to dst, or fails with
// ErrDecryptionFailed without returning any plaintext.
func (c *segmentCipher) openSegments(dst []byte, payload []byte) ([]byte, error) {
	if _, ok := c.openedSize(len(payload)); !ok {
		return nil, ErrDecryptionFailed
	}
	start := len(dst)
	for i := uint64(0); ; i++ {
		last := len(payload) <= c.encSegment
		n := min(len(payload), c.encSegment)
		out, err := c.open(dst, i, last, payload[:n])
		if err != nil {
			// Open returns nil on failure: clear through dst, the
			// buffer of every segment opened so far.
			clear(dst[start:cap(dst)])
			return nil, ErrDecryptionFailed
		}
		dst = out
		if last {
			return dst, nil
		}
		payload = payload[n:]
	}
}

// segmentBuffers recycles the segment buffers of writers and readers:
// streams of small objects would otherwise allocate 64 KiB each. A buffer
// is zeroed before it goes back, since it held plaintext.
// Sized for either version: the larger segment and a byte of lookahead.
var segmentBuffers = sync.Pool{New: func() any { return new(segmentBuffer) }}

type segmentBuffer = [encSegmentSizeV2 + 1]byte

func getSegmentBuffer() *segmentBuffer {
	return segmentBuffers.Get().(*segmentBuffer)
}

func putSegmentBuffer(b *segmentBuffer) {
	clear(b[:])
	segmentBuffers.Put(b)
}

// encryptWriter seals what is written to it into segments. It holds at
// most one segment: the last segment is only known at Close, so a full
// segment waits until more data or Close arrives.
type encryptWriter struct {
	w    io.Writer
	seg  segmentCipher
	pool *segmentBuffer
	buf  []byte // pool's first seg.encSegment bytes; buf[:n] is pending plaintext
	n    int
	i    uint64
	err  error
	// sealed accounts n more plaintext bytes to the data key.
	sealed func(n int)
}

// newEncryptWriter writes the header (h, with salt and handle set) to w
// and returns the writer of the segments.
func newEncryptWriter(w io.Writer, keys *streamKeys, h *streamHeader, sealed func(int)) (*encryptWriter, error) {
	if _, err := w.Write(appendHeader(make([]byte, 0, h.size()), keys, h)); err != nil {
		return nil, fmt.Errorf("client: writing the stream header: %w", err)
	}
	pool := getSegmentBuffer()
	return &encryptWriter{w: w, seg: keys.seg, pool: pool, buf: pool[:keys.seg.encSegment], sealed: sealed}, nil
}

// Write encrypts p. It returns an error, for good, once the underlying
// writer fails or the writer is closed.
func (w *encryptWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	written := 0
	for len(p) > 0 {
		if w.n == segmentSize {
			// More data follows a full segment: it is not the last.
			if err := w.flush(w.buf[:segmentSize], false); err != nil {
				return written, err
			}
		}
		if w.n == 0 && len(p) > segmentSize {
			// A whole segment, and more after it: seal it straight from
			// p, sparing a copy.
			if err := w.flush(p[:segmentSize], false); err != nil {
				return written, err
			}
			p, written = p[segmentSize:], written+segmentSize
			continue
		}
		k := copy(w.buf[w.n:segmentSize], p)
		w.n += k
		p, written = p[k:], written+k
	}
	return written, nil
}

// flush seals pt, which is either w.buf[:w.n] (sealed in place) or a
// segment of the caller's, into w.buf and writes it out.
func (w *encryptWriter) flush(pt []byte, last bool) error {
	if w.i == w.seg.maxSegments {
		w.err = errors.New("client: stream has too many segments")
		return w.err
	}
	out := w.seg.seal(w.buf[:0], w.i, last, pt)
	w.i++
	w.n = 0
	if w.sealed != nil {
		w.sealed(len(pt))
	}
	if _, err := w.w.Write(out); err != nil {
		w.err = fmt.Errorf("client: writing the stream: %w", err)
		w.release()
		return w.err
	}
	return nil
}

// release gives the buffer back once the writer is done for good.
func (w *encryptWriter) release() {
	if w.pool != nil {
		putSegmentBuffer(w.pool)
		w.pool, w.buf = nil, nil
	}
}

// Close seals and writes the last segment. It does not close the
// underlying writer. Without Close the stream is truncated and does not
// decrypt.
func (w *encryptWriter) Close() error {
	if w.err != nil {
		return w.err
	}
	err := w.flush(w.buf[:w.n], true)
	if err == nil {
		w.err = errWriterClosed
		w.release()
	}
	return err
}

// decryptReader opens a stream's segments one by one; it returns a
// segment's plaintext only once the segment has authenticated, and io.EOF
// only after the last segment has. It holds one segment and one byte of
// lookahead, which tells whether a full segment is the last.
type decryptReader struct {
	r    io.Reader
	seg  segmentCipher
	pool *segmentBuffer
	buf  []byte // pool[:seg.encSegment+1], until the reader is done
	have int    // ciphertext bytes in buf
	out  []byte // plaintext not yet returned, within buf
	i    uint64
	look byte // the lookahead byte, when hasLook
	has  bool
	err  error // sticky; io.EOF after the last segment
}

// newDecryptReader reads the header from r, gets the stream's keys and
// returns the reader of the segments.
func newDecryptReader(r io.Reader, ectx map[string]string, open keySource) (*decryptReader, error) {
	h, raw, err := readHeader(r)
	if err != nil {
		return nil, err
	}
	if err := checkApproved(h.version); err != nil {
		return nil, err
	}
	keys, err := open(&h, raw[:len(raw)-macSize], ectx)
	if err != nil {
		return nil, err
	}
	pool := getSegmentBuffer()
	return &decryptReader{r: r, seg: keys.seg, pool: pool, buf: pool[:keys.seg.encSegment+1]}, nil
}

func (r *decryptReader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.err != nil {
			r.release()
			return 0, r.err
		}
		r.err = r.next()
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

// WriteTo writes the rest of the plaintext to w, segment by segment; it
// lets io.Copy skip a copy.
func (r *decryptReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(r.out) > 0 {
			n, err := w.Write(r.out)
			total += int64(n)
			r.out = r.out[n:]
			if err != nil {
				return total, err
			}
			continue
		}
		if r.err != nil {
			r.release()
			if r.err == io.EOF {
				return total, nil
			}
			return total, r.err
		}
		r.err = r.next()
	}
}

// release gives the buffer back once the reader has returned its last
// plaintext or its error; it reads nothing after that.
func (r *decryptReader) release() {
	if r.pool != nil {
		putSegmentBuffer(r.pool)
		r.pool, r.buf = nil, nil
	}
}

// next reads and opens the next segment into r.out. It returns io.EOF
// with the last segment, which is then in r.out.
func (r *decryptReader) next() error {
	r.have = 0
	if r.has {
		r.buf[0], r.have, r.has = r.look, 1, false
	}
	enc := r.seg.encSegment
	n, err := io.ReadFull(r.r, r.buf[r.have:enc+1])
	r.have += n
	last := false
	switch {
	case err == nil:
		r.look, r.has = r.buf[enc], true
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		last = true
	default:
		return fmt.Errorf("client: reading the stream: %w", err)
	}
	seg := r.buf[:min(r.have, enc)]
	// The last segment may be empty only if it is the only one; anything
	// shorter than a tag (and v2's nonce) is a truncation.
	overhead := r.seg.overhead
	if last && (len(seg) < overhead || (r.i > 0 && len(seg) == overhead)) {
		return ErrDecryptionFailed
	}
	if r.i == r.seg.maxSegments {
		return ErrDecryptionFailed
	}
	pt, oerr := r.seg.open(seg[:0], r.i, last, seg)
	if oerr != nil {
		return ErrDecryptionFailed
	}
	r.i++
	r.out = pt
	if last {
		return io.EOF
	}
	return nil
}
