package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
)

// The hot path: encrypt and decrypt, single and batched, are most of the
// service's traffic, and before this path existed decoding and encoding
// their JSON through reflection (encoding/json, after the strict scan) was
// about two thirds of the server's CPU for them (docs/PERFORMANCE.md,
// section 13). This file serves exactly those two request shapes
//
//	{"plaintext": "<base64>", "context": {"k": "v", ...}}      (encrypt)
//	{"ciphertext": "<text form>", "context": {...}}           (decrypt)
//	{"items": [ <one of the above>, ... ]}                    (batch)
//
// reading them with a scanner written for them (hotparse.go) and writing
// the answers by appending bytes. It is a fast path, not a second decoder:
// it accepts only bodies that it can read completely under rules stricter
// than the general path's (no escape in any string, every string valid
// UTF-8, no duplicate or unknown name, a string for every context value,
// "items" the only name of a batch, 1 to api.MaxBatchItems items) and
// hands everything else, valid or not, to the general path (strictScan,
// then encoding/json), which words the errors. So the strict-decoding guarantees are the general
// path's, and FuzzHotPath checks, differentially, that what the fast path
// accepts the general path accepts with the same values and answers with
// the same bytes.
//
// The other optimisations, each explained where it is made: request bodies
// and answers live in pooled buffers, zeroed before reuse (they hold
// plaintext or its base64); base64 is decoded into and encoded from those
// buffers; a batch's items sharing one context share one decoded map; a
// batch counts its items for the audit log once per outcome.

// hotOp is one of the two hot operations.
type hotOp struct {
	field  string // the request's value field
	answer []byte // the answer's opening: {"ciphertext": or {"plaintext":
}

var (
	hotEncrypt = &hotOp{field: "plaintext", answer: []byte(`{"ciphertext":`)}
	hotDecrypt = &hotOp{field: "ciphertext", answer: []byte(`{"plaintext":`)}
)

// hotItem is one request read by the fast path: its value field's bytes,
// a slice of the body (no escapes, so no copy), and its context.
type hotItem struct {
	value []byte
	ectx  envelope.Context
}

// hotRequest is a body read by the fast path.
type hotRequest struct {
	batch bool
	items []hotItem
}

// The pools. Bodies and answers hold plaintext (an encrypt's body and a
// decrypt's answer are its base64), so a buffer is zeroed before it goes
// back; the zeroing is cheap (memclr, about 0.1 ns a byte) beside reading
// or writing it. Buffers larger than maxPooledBuffer are left to the
// garbage collector, zeroed all the same, so that one huge request does
// not keep its memory for ever.
var (
	bufPool = sync.Pool{New: func() any { return new([]byte) }}
	reqPool = sync.Pool{New: func() any { return new(hotRequest) }}
)

const maxPooledBuffer = 4 << 20

func getBuffer() *[]byte { return bufPool.Get().(*[]byte) }

// putBuffer zeroes the buffer's used bytes and pools it; the bytes beyond
// its length were zeroed when they were last used.
func putBuffer(b *[]byte) {
	clear(*b)
	if cap(*b) > maxPooledBuffer {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// strictBase64 is base64.StdEncoding.Strict(), made once: Strict returns a
// copy of the encoding's tables on each call.
var strictBase64 = base64.StdEncoding.Strict()

// hot serves encrypt or decrypt: through the fast path when the body is
// one of its shapes, else through general, with the body already read.
func (s *Server) hot(w http.ResponseWriter, r *http.Request, op *hotOp, general func(body []byte) error) error {
	if err := checkBodyType(r); err != nil {
		return err
	}
	bodyBuf := getBuffer()
	defer putBuffer(bodyBuf)
	body, err := readBodyInto(r, bodyBuf)
	if err != nil {
		return err
	}
	req := reqPool.Get().(*hotRequest)
	defer func() {
		clear(req.items) // drop the body's slices and the contexts
		req.items = req.items[:0]
		reqPool.Put(req)
	}()
	if !parseHot(body, op.field, req) {
		return general(body)
	}
	tenantID := principalFrom(r).TenantID
	// One quota check for the whole batch, which counts its items.
	if err := s.admit(w, r, tenantID, len(req.items)); err != nil {
		return err
	}
	outBuf := getBuffer()
	defer putBuffer(outBuf)
	scratch := getBuffer()
	defer putBuffer(scratch)
	ctx := r.Context()
	// An answer is about as large as its body (base64 both ways; a
	// ciphertext's text form is a little longer than the plaintext's
	// base64): room for it up front, once, instead of doublings (which
	// would leave copies of plaintext behind).
	out := growBuffer(*outBuf, len(body)+len(body)/4+64)
	*outBuf = out
	if !req.batch {
		out, err = s.hotItem(ctx, tenantID, op, &req.items[0], out, scratch)
		*outBuf = out
		if err != nil {
			return err
		}
		out = append(growBuffer(out, 1), '\n')
		*outBuf = out
		writeJSONBytes(w, http.StatusOK, out)
		return nil
	}
	bw := batchWriter{s: s, ctx: ctx, outBuf: outBuf}
	*outBuf = append(out, `{"items":[`...)
	s.hotBatch(ctx, tenantID, op, req.items, &bw, scratch)
	*outBuf = append(growBuffer(*outBuf, 3), "]}\n"...)
	// The audit log counts the items once per outcome, not once per item.
	if counter, ok := w.(itemCounter); ok {
		for _, o := range bw.tally {
			counter.countItems(o.code, o.n)
		}
	}
	writeJSONBytes(w, http.StatusOK, *outBuf)
	return nil
}

// batchKeyring is the batch form of Encrypt and Decrypt, which a
// *keyring.Service has: the work that does not depend on the item (the
// tenant check, the data key's cache lookup, the AES-GCM instance, the
// item's buffers) is done once per batch, and each item gets the result
// it would get alone. The text forms and plaintexts passed to done are
// valid only until done returns. A text form passed to done is one that
// envelope.AppendText writes, whose bytes ([A-Za-z0-9#:._-]) JSON never
// escapes: the fast path copies it into the answer without scanning it
// (scanning 1.4 KB per item for bytes to escape was a fifth of a batch
// encrypt's CPU).
type batchKeyring interface {
	EncryptBatch(ctx context.Context, tenantID string, n int,
		item func(i int) (envelope.Context, []byte, error), done func(i int, text []byte, err error))
	DecryptBatch(ctx context.Context, tenantID string, n int,
		item func(i int) (envelope.Context, []byte, error), done func(i int, plaintext []byte, err error))
}

var _ batchKeyring = (*keyring.Service)(nil)

// hotBatch runs a batch's items, in order, appending each answer to bw.
func (s *Server) hotBatch(ctx context.Context, tenantID string, op *hotOp, items []hotItem, bw *batchWriter, scratch *[]byte) {
	bk, ok := s.cfg.Keyring.(batchKeyring)
	switch {
	case !ok:
		for i := range items {
			bw.add(i, func(out []byte) ([]byte, error) { return s.hotItem(ctx, tenantID, op, &items[i], out, scratch) })
		}
	case op == hotEncrypt:
		var pt []byte
		bk.EncryptBatch(ctx, tenantID, len(items), func(i int) (envelope.Context, []byte, error) {
			var err error
			pt, err = decodePlaintext(items[i].value, scratch)
			return items[i].ectx, pt, err
		}, func(i int, text []byte, err error) {
			clear(pt)
			bw.add(i, func(out []byte) ([]byte, error) {
				if err != nil {
					return out, err
				}
				return appendTextForm(out, text), nil
			})
		})
	default:
		// The item's text form goes to the keyring as the body's own
		// bytes, not copied into a string.
		bk.DecryptBatch(ctx, tenantID, len(items), func(i int) (envelope.Context, []byte, error) {
			if len(items[i].value) == 0 {
				return nil, nil, errCiphertextRequired()
			}
			return items[i].ectx, items[i].value, nil
		}, func(i int, pt []byte, err error) {
			bw.add(i, func(out []byte) ([]byte, error) {
				if err != nil {
					return out, err
				}
				return appendPlaintext(out, pt), nil
			})
		})
	}
}

// batchWriter appends a batch's answers to *outBuf and counts their
// outcomes.
type batchWriter struct {
	s      *Server
	ctx    context.Context
	outBuf *[]byte
	tally  outcomes
}

// add appends item i's answer, made by answer, or its error.
func (bw *batchWriter) add(i int, answer func(out []byte) ([]byte, error)) {
	out := *bw.outBuf
	if i > 0 {
		out = append(growBuffer(out, 1), ',')
	}
	out, err := answer(out)
	*bw.outBuf = out
	if err == nil {
		bw.tally.add("")
		return
	}
	he := toHTTPError(err)
	if he.status >= 500 {
		bw.s.log.ErrorContext(bw.ctx, "batch item failed", "request_id", requestIDFrom(bw.ctx), "item", i, "error", err.Error())
	}
	*bw.outBuf = appendItemError(out, he)
	bw.tally.add(he.code)
}

// hotItem runs one item and appends its answer to out. scratch holds the
// item's plaintext while it is needed and is zeroed after.
func (s *Server) hotItem(ctx context.Context, tenantID string, op *hotOp, it *hotItem, out []byte, scratch *[]byte) ([]byte, error) {
	if op == hotEncrypt {
		pt, err := decodePlaintext(it.value, scratch)
		if err != nil {
			return out, err
		}
		ct, err := s.cfg.Keyring.Encrypt(ctx, tenantID, it.ectx, pt)
		clear(pt)
		if err != nil {
			return out, err
		}
		return appendCiphertext(out, ct), nil
	}
	if len(it.value) == 0 {
		return out, errCiphertextRequired()
	}
	pt, err := s.cfg.Keyring.Decrypt(ctx, tenantID, it.ectx, string(it.value))
	if err != nil {
		return out, err
	}
	return appendPlaintext(out, pt), nil
}

func errCiphertextRequired() error {
	return badRequest(`field "ciphertext" is required`, map[string]any{"field": "ciphertext"})
}

// decodePlaintext decodes an encrypt's base64 plaintext into the reused
// buffer *scratch rather than a fresh slice per item; the caller zeroes
// it after use (and putBuffer zeroes all of the buffer).
func decodePlaintext(value []byte, scratch *[]byte) ([]byte, error) {
	pt := growBuffer((*scratch)[:0], base64.StdEncoding.DecodedLen(len(value)))
	n, err := strictBase64.Decode(pt[:cap(pt)], value)
	*scratch = pt[:cap(pt)]
	pt = pt[:n]
	if err != nil {
		clear(pt)
		return nil, badRequest(`field "plaintext" must be standard base64 (with padding)`, map[string]any{"field": "plaintext"})
	}
	return pt, nil
}

// appendCiphertext appends an encrypt's answer.
func appendCiphertext(out []byte, text string) []byte {
	out = growBuffer(out, len(hotEncrypt.answer)+len(text)+3)
	out = append(out, hotEncrypt.answer...)
	out = appendJSONString(out, text)
	return append(out, '}')
}

// appendTextForm appends an encrypt's answer for a text form from the
// batch keyring, which needs no escaping (see batchKeyring): copied as it
// is, where appendCiphertext checks every byte of a string it is given.
func appendTextForm(out []byte, text []byte) []byte {
	out = growBuffer(out, len(hotEncrypt.answer)+len(text)+3)
	out = append(out, hotEncrypt.answer...)
	out = append(out, '"')
	out = append(out, text...)
	return append(out, '"', '}')
}

// appendPlaintext appends a decrypt's answer, base64 encoded straight into
// it (no intermediate string), and zeroes the plaintext: the answer's
// buffer is then its only copy, zeroed when the answer has been written.
func appendPlaintext(out []byte, pt []byte) []byte {
	out = growBuffer(out, len(hotDecrypt.answer)+base64.StdEncoding.EncodedLen(len(pt))+3)
	out = append(out, hotDecrypt.answer...)
	out = append(out, '"')
	out = base64.StdEncoding.AppendEncode(out, pt)
	clear(pt)
	return append(out, '"', '}')
}

// growBuffer returns b with room for n more bytes. Unlike append's growth
// it zeroes the bytes it leaves behind, which may be plaintext.
func growBuffer(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	clear(b[:cap(b)])
	return nb
}

// readBodyInto reads the body into the pooled buffer *buf, as readBody
// does into a fresh one: it grows only as data arrives, and a buffer it
// outgrows is zeroed, not left to the garbage collector with plaintext in
// it.
func readBodyInto(r *http.Request, buf *[]byte) ([]byte, error) {
	b := (*buf)[:0]
	if n := r.ContentLength; n > 0 && cap(b) == 0 {
		b = make([]byte, 0, int(min(n, firstBodyBuffer))+1)
	}
	for {
		if len(b) == cap(b) {
			b = growBuffer(b, max(512, cap(b)))
		}
		n, err := r.Body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		*buf = b
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, bodyReadError(err)
		}
	}
}

// writeJSONBytes writes an encoded JSON answer (with its final newline) as
// writeJSON does.
func writeJSONBytes(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// appendItemError appends a batch item's error as api.BatchItem's
// MarshalJSON writes it. Errors are rare: encoding/json does it.
func appendItemError(out []byte, he *httpError) []byte {
	b, err := json.Marshal(struct {
		Error *api.Error `json:"error"`
	}{he.apiError()})
	if err != nil {
		b = []byte(`{"error":{"code":"` + string(api.CodeInternal) + `","title":"Internal error","status":"500"}}`)
	}
	return append(growBuffer(out, len(b)), b...)
}

// appendJSONString appends s as encoding/json writes it. A ciphertext's
// text form is base64url after a short prefix and needs no escaping, so it
// is copied; anything else goes through encoding/json.
func appendJSONString(out []byte, s string) []byte {
	i := 0
	for i+8 <= len(s) && jsonSafe8(s[i:i+8]) {
		i += 8
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			return append(growBuffer(out, len(b)), b...)
		}
	}
	out = append(out, '"')
	out = append(out, s...)
	return append(out, '"')
}

// jsonSafe8 reports whether none of the 8 bytes of s needs escaping as
// encoding/json escapes (control characters, quote, backslash, and <, >, &
// for HTML safety) or is not printable ASCII; as plainASCII8.
func jsonSafe8(s string) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	x := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
	has := func(c uint64) uint64 { // any byte equal to c
		y := x ^ (lo * c)
		return (y - lo) &^ y
	}
	control := (x - lo*0x20) &^ x
	high := (x + lo*(0x7f-0x7e)) | x // any byte ≥ 0x7f
	return (control|high|has('"')|has('\\')|has('<')|has('>')|has('&'))&hi == 0
}

// outcomes counts a batch's items by outcome, in the order met.
type outcomes []struct {
	code api.Code
	n    int
}

func (o *outcomes) add(code api.Code) {
	for i := range *o {
		if (*o)[i].code == code {
			(*o)[i].n++
			return
		}
	}
	*o = append(*o, struct {
		code api.Code
		n    int
	}{code, 1})
}
