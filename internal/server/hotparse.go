package server

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/envelope"
)

// The fast path's reading of the two hot request shapes; see hotpath.go.

// parseHot reads body as one of the hot shapes into req, with field the
// name of the value field. It reports false for anything else, valid or
// not, which the general path then reads (see the top of hotpath.go).
func parseHot(body []byte, field string, req *hotRequest) bool {
	p := hotParser{data: body, field: field}
	p.space()
	if !p.consume('{') {
		return false
	}
	p.space()
	req.batch = false
	req.items = req.items[:0]
	// The first name decides: "items" makes a batch, whose only name it
	// must be; anything else is read as a single request.
	if p.peekName("items") {
		req.batch = true
		p.pos += len(`"items"`)
		p.space()
		if !p.consume(':') {
			return false
		}
		p.space()
		if !p.consume('[') {
			return false
		}
		for {
			p.space()
			if len(req.items) == api.MaxBatchItems {
				return false // the general path words the limit
			}
			req.items = append(req.items, hotItem{})
			if !p.consume('{') || !p.item(&req.items[len(req.items)-1], len(req.items) > 1) {
				return false
			}
			p.space()
			if p.consume(',') {
				continue
			}
			if !p.consume(']') {
				return false
			}
			break
		}
		p.space()
		if !p.consume('}') {
			return false
		}
	} else {
		req.items = append(req.items, hotItem{})
		if !p.item(&req.items[0], false) {
			return false
		}
	}
	p.space()
	return p.pos == len(p.data)
}

// hotParser reads the hot shapes; see parseHot.
type hotParser struct {
	data  []byte
	pos   int
	field string
	// The previous item's context, raw and decoded: the items of a batch
	// usually share one, and then share its map (envelope.Context is
	// only read, never changed, by the keyring).
	lastRaw  []byte
	lastEctx envelope.Context
}

func (p *hotParser) space() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\r', '\n':
			p.pos++
		default:
			return
		}
	}
}

func (p *hotParser) consume(c byte) bool {
	if p.pos < len(p.data) && p.data[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

// peekName reports whether a string equal to name, quoted, is next.
func (p *hotParser) peekName(name string) bool {
	rest := p.data[p.pos:]
	return len(rest) >= len(name)+2 && rest[0] == '"' && string(rest[1:len(name)+1]) == name && rest[len(name)+1] == '"'
}

// item reads an object's members after its '{': the value field and
// "context", each at most once, nothing else. inBatch allows the previous
// item's context to be reused.
func (p *hotParser) item(it *hotItem, inBatch bool) bool {
	p.space()
	if p.consume('}') {
		return true
	}
	var haveValue, haveContext bool
	for {
		p.space()
		name, ok := p.str()
		if !ok {
			return false
		}
		p.space()
		if !p.consume(':') {
			return false
		}
		p.space()
		switch string(name) {
		case p.field:
			if haveValue {
				return false
			}
			haveValue = true
			v, ok := p.str()
			if !ok {
				return false
			}
			it.value = v
		case "context":
			if haveContext {
				return false
			}
			haveContext = true
			ectx, ok := p.context(inBatch)
			if !ok {
				return false
			}
			it.ectx = ectx
		default:
			return false
		}
		p.space()
		if p.consume(',') {
			continue
		}
		return p.consume('}')
	}
}

// maxHotContextPairs bounds the pairs the fast path reads in one context
// (a linear duplicate check); larger contexts take the general path.
const maxHotContextPairs = 16

// context reads a context object of string values.
func (p *hotParser) context(inBatch bool) (envelope.Context, bool) {
	start := p.pos
	if !p.consume('{') {
		return nil, false
	}
	type kv struct{ k, v []byte }
	var pairs [maxHotContextPairs]kv
	n := 0
	p.space()
	if !p.consume('}') {
		for {
			p.space()
			k, ok := p.str()
			if !ok || n == maxHotContextPairs {
				return nil, false
			}
			for _, q := range pairs[:n] {
				if bytes.Equal(q.k, k) {
					return nil, false // a duplicate: the general path refuses it
				}
			}
			p.space()
			if !p.consume(':') {
				return nil, false
			}
			p.space()
			v, ok := p.str()
			if !ok {
				return nil, false
			}
			pairs[n] = kv{k, v}
			n++
			p.space()
			if p.consume(',') {
				continue
			}
			if !p.consume('}') {
				return nil, false
			}
			break
		}
	}
	raw := p.data[start:p.pos]
	if inBatch && p.lastEctx != nil && bytes.Equal(raw, p.lastRaw) {
		return p.lastEctx, true
	}
	ectx := make(envelope.Context, n)
	for _, q := range pairs[:n] {
		ectx[string(q.k)] = string(q.v)
	}
	p.lastRaw, p.lastEctx = raw, ectx
	return ectx, true
}

// str reads a string without escapes and returns its contents, a slice of
// the body. A string with an escape, a control character or invalid UTF-8
// is left to the general path.
//
// Values are long runs of plain ASCII (base64, ciphertexts), so the string
// is found with two vectorised searches of bytes.IndexByte: its end, the
// first quote, and a backslash before it (any escape, an escaped quote
// included, starts with one and refuses the string). Then jsonText checks
// the contents eight bytes at a time. That is what a byte-by-byte scan
// would decide, at a fraction of its cost.
func (p *hotParser) str() ([]byte, bool) {
	if !p.consume('"') {
		return nil, false
	}
	end := bytes.IndexByte(p.data[p.pos:], '"')
	if end < 0 {
		return nil, false
	}
	s := p.data[p.pos : p.pos+end]
	if bytes.IndexByte(s, '\\') >= 0 || !jsonText(s) {
		return nil, false
	}
	p.pos += end + 1
	return s, true
}

// jsonText reports whether s, a string's contents without quote or
// backslash, has no control character and is valid UTF-8. The word loop
// (SWAR: "SIMD within a register") uses the classic "has a byte less than
// n" trick, exact for whether any byte matches, which is all that is
// asked: a word with a control character or a non-ASCII byte ends it, and
// the rest is looked at byte by byte.
func jsonText(s []byte) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := binary.LittleEndian.Uint64(s[i:])
		if ((x-lo*0x20)&^x|x)&hi != 0 {
			break
		}
	}
	ascii := true
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20:
			return false
		case c >= 0x80:
			ascii = false
		}
	}
	return ascii || utf8.Valid(s)
}
