package server

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// The strict pre-scan enforces what encoding/json (v1) lets through, before
// it decodes: a body that is valid UTF-8, no escaped lone surrogate
// (encoding/json turns both into U+FFFD, so that different encryption
// contexts would compare equal), no duplicate name in any object
// (encoding/json keeps the last), field names that match the struct's
// exactly (encoding/json folds case), and a top-level value of the right
// kind (encoding/json takes null for an empty object).
//
// It is one pass over the bytes, guided by the type being decoded into, and
// allocates only for objects of many names and for names with escapes.
// Syntax errors are left to encoding/json, which words them better: the
// scan then returns errScanSyntax.

// errScanSyntax says that the scan met bytes that are not JSON.
var errScanSyntax = errors.New("not JSON")

// maxScanDepth matches encoding/json's own nesting limit.
const maxScanDepth = 10000

// strictScan checks body against the rules above for a value of type t. It
// returns a 400 *httpError for a rule broken, errScanSyntax for bytes that
// are not JSON, or nil.
func strictScan(body []byte, t reflect.Type) error {
	if !utf8.Valid(body) {
		return policyError("utf-8", fmt.Sprintf("the request body is not valid UTF-8 (at byte %d)", invalidUTF8At(body)), nil)
	}
	sc := scanner{data: body}
	sc.skipSpace()
	if sc.pos >= len(sc.data) {
		return errScanSyntax
	}
	t = deref(t)
	switch c := sc.data[sc.pos]; {
	case t.Kind() == reflect.Slice && c != '[':
		return policyError("type", "the request body must be a JSON array", nil)
	case t.Kind() != reflect.Slice && c != '{':
		return policyError("type", "the request body must be a JSON object, not "+jsonKindOf(c), nil)
	}
	if err := sc.value(t, 0); err != nil {
		return err
	}
	sc.skipSpace()
	if sc.pos != len(sc.data) {
		return errScanSyntax
	}
	return nil
}

// policyError is a 400 for a strict rule broken; meta["rule"] names the
// rule (utf-8, surrogate, duplicate, field, type) for clients and for
// handlers that word other decoding errors themselves.
func policyError(rule, detail string, meta map[string]any) *requestError {
	if meta == nil {
		meta = map[string]any{}
	}
	meta["rule"] = rule
	return badRequest(detail, meta)
}

// isPolicyError reports whether err is a strict rule broken.
func isPolicyError(err error) bool {
	re, ok := err.(*requestError)
	return ok && re.meta["rule"] != nil
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

func jsonKindOf(c byte) string {
	switch {
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 'n':
		return "null"
	case c == 't' || c == 'f':
		return "a boolean"
	default:
		return "a number"
	}
}

type scanner struct {
	data []byte
	pos  int
}

func (sc *scanner) skipSpace() {
	for sc.pos < len(sc.data) {
		switch sc.data[sc.pos] {
		case ' ', '\t', '\r', '\n':
			sc.pos++
		default:
			return
		}
	}
}

// value scans one value at sc.pos for type t (nil: any value).
func (sc *scanner) value(t reflect.Type, depth int) error {
	if depth > maxScanDepth {
		return errScanSyntax
	}
	sc.skipSpace()
	if sc.pos >= len(sc.data) {
		return errScanSyntax
	}
	switch sc.data[sc.pos] {
	case '{':
		return sc.object(t, depth)
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = deref(t.Elem())
			if custom(elem) {
				elem = nil
			}
		}
		sc.pos++
		sc.skipSpace()
		if sc.pos < len(sc.data) && sc.data[sc.pos] == ']' {
			sc.pos++
			return nil
		}
		for {
			if err := sc.value(elem, depth+1); err != nil {
				return err
			}
			if done, err := sc.separator(']'); err != nil || done {
				return err
			}
		}
	case '"':
		_, _, err := sc.str()
		return err
	default:
		// A number or a literal: encoding/json checks its spelling.
		start := sc.pos
		for sc.pos < len(sc.data) {
			c := sc.data[sc.pos]
			if c == ',' || c == ']' || c == '}' || c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '"' || c == '{' || c == '[' || c == ':' {
				break
			}
			sc.pos++
		}
		if sc.pos == start {
			return errScanSyntax
		}
		return nil
	}
}

// object scans an object at sc.pos for type t: a struct's names must be
// its fields' exactly; a map's (or an untyped object's) may be anything;
// no name may appear twice.
func (sc *scanner) object(t reflect.Type, depth int) error {
	var fields *structFields
	var elem reflect.Type
	if t != nil {
		switch t.Kind() {
		case reflect.Struct:
			fields = fieldsOf(t)
		case reflect.Map:
			elem = deref(t.Elem())
			if custom(elem) {
				elem = nil
			}
		}
	}
	var seen names
	sc.pos++ // '{'
	sc.skipSpace()
	if sc.pos < len(sc.data) && sc.data[sc.pos] == '}' {
		sc.pos++
		return nil
	}
	for {
		sc.skipSpace()
		if sc.pos >= len(sc.data) || sc.data[sc.pos] != '"' {
			return errScanSyntax
		}
		name, _, err := sc.str()
		if err != nil {
			return err
		}
		if seen.add(name) {
			return policyError("duplicate", fmt.Sprintf("duplicate field %q", clip(name)), map[string]any{"field": clip(name)})
		}
		vt := elem
		if fields != nil {
			f, ok := fields.byName[string(name)]
			if !ok {
				if exact := fields.fold(name); exact != "" {
					return policyError("field", fmt.Sprintf("unknown field %q: field names are case-sensitive (did you mean %q?)", clip(name), exact),
						map[string]any{"field": clip(name)})
				}
				return policyError("field", fmt.Sprintf("unknown field %q", clip(name)), map[string]any{"field": clip(name)})
			}
			vt = f
		}
		sc.skipSpace()
		if sc.pos >= len(sc.data) || sc.data[sc.pos] != ':' {
			return errScanSyntax
		}
		sc.pos++
		if err := sc.value(vt, depth+1); err != nil {
			return err
		}
		if done, err := sc.separator('}'); err != nil || done {
			return err
		}
	}
}

// separator reads what follows an element or a member: ',' (more follow)
// or end, the closing bracket or brace (done).
func (sc *scanner) separator(end byte) (done bool, err error) {
	sc.skipSpace()
	if sc.pos >= len(sc.data) {
		return false, errScanSyntax
	}
	switch sc.data[sc.pos] {
	case ',':
		sc.pos++
		return false, nil
	case end:
		sc.pos++
		return true, nil
	}
	return false, errScanSyntax
}

// str scans a string at sc.pos (its opening quote) and returns its
// contents, unescaped when it has escapes (then escaped is true and the
// bytes are a copy). An escaped lone surrogate is a 400.
func (sc *scanner) str() (s []byte, escaped bool, err error) {
	sc.pos++ // '"'
	start := sc.pos
	for sc.pos < len(sc.data) {
		c := sc.data[sc.pos]
		switch {
		case c == '"':
			s = sc.data[start:sc.pos]
			sc.pos++
			return s, false, nil
		case c == '\\':
			return sc.escapedStr(start)
		case c < 0x20:
			return nil, false, errScanSyntax
		}
		sc.pos++
	}
	return nil, false, errScanSyntax
}

// escapedStr continues str from the first backslash, unescaping.
func (sc *scanner) escapedStr(start int) ([]byte, bool, error) {
	out := append([]byte(nil), sc.data[start:sc.pos]...)
	for sc.pos < len(sc.data) {
		c := sc.data[sc.pos]
		switch {
		case c == '"':
			sc.pos++
			return out, true, nil
		case c < 0x20:
			return nil, false, errScanSyntax
		case c != '\\':
			out = append(out, c)
			sc.pos++
			continue
		}
		at := sc.pos
		if sc.pos+1 >= len(sc.data) {
			return nil, false, errScanSyntax
		}
		e := sc.data[sc.pos+1]
		sc.pos += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := sc.hex4()
			if !ok {
				return nil, false, errScanSyntax
			}
			if utf16.IsSurrogate(r) {
				// Only a high surrogate followed by an escaped low one
				// is a character.
				var r2 rune = -1
				if r < 0xdc00 && sc.pos+1 < len(sc.data) && sc.data[sc.pos] == '\\' && sc.data[sc.pos+1] == 'u' {
					save := sc.pos
					sc.pos += 2
					if lo, ok := sc.hex4(); ok && lo >= 0xdc00 && lo <= 0xdfff {
						r2 = lo
					} else {
						sc.pos = save
					}
				}
				if r2 < 0 {
					return nil, false, policyError("surrogate", fmt.Sprintf(`the request body has a lone UTF-16 surrogate escape (\u%04x) at byte %d; strings must be valid Unicode`, r, at), nil)
				}
				r = utf16.DecodeRune(r, r2)
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, false, errScanSyntax
		}
	}
	return nil, false, errScanSyntax
}

func (sc *scanner) hex4() (rune, bool) {
	if sc.pos+4 > len(sc.data) {
		return 0, false
	}
	var r rune
	for _, c := range sc.data[sc.pos : sc.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	sc.pos += 4
	return r, true
}

// clip keeps a name quoted in an error short.
func clip(name []byte) string {
	if len(name) > 64 {
		name = name[:64]
		for len(name) > 0 && !utf8.Valid(name) {
			name = name[:len(name)-1]
		}
		return string(name) + "…"
	}
	return string(name)
}

// names is the set of names of one object: a list while it is short, a
// map beyond.
type names struct {
	list [][]byte
	set  map[string]struct{}
}

// add adds name and reports whether it was there already.
func (n *names) add(name []byte) bool {
	if n.set != nil {
		if _, ok := n.set[string(name)]; ok {
			return true
		}
		n.set[string(name)] = struct{}{}
		return false
	}
	for _, m := range n.list {
		if bytes.Equal(m, name) {
			return true
		}
	}
	if len(n.list) < 16 {
		n.list = append(n.list, name)
		return false
	}
	n.set = make(map[string]struct{}, 2*len(n.list))
	for _, m := range n.list {
		n.set[string(m)] = struct{}{}
	}
	n.set[string(name)] = struct{}{}
	n.list = nil
	return false
}

// structFields are the JSON names of a struct's fields, as encoding/json
// sees them, and the types they hold (nil: anything goes).
type structFields struct {
	byName map[string]reflect.Type
}

// fold returns the field name that name matches when case is ignored the
// way encoding/json ignores it, or "".
func (f *structFields) fold(name []byte) string {
	match := ""
	for n := range f.byName {
		if bytes.EqualFold([]byte(n), name) && (match == "" || n < match) {
			match = n
		}
	}
	return match
}

var fieldCache sync.Map // reflect.Type → *structFields

func fieldsOf(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	f := &structFields{byName: map[string]reflect.Type{}}
	collectFields(t, f.byName, 0)
	fieldCache.Store(t, f)
	return f
}

func collectFields(t reflect.Type, into map[string]reflect.Type, depth int) {
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := deref(sf.Type)
		if sf.Anonymous && name == "" && ft.Kind() == reflect.Struct && depth < 8 {
			// Promoted fields, as encoding/json promotes them (the
			// outer struct's own names win, which a map insert order
			// below respects).
			inner := map[string]reflect.Type{}
			collectFields(ft, inner, depth+1)
			for n, it := range inner {
				if _, ok := into[n]; !ok {
					into[n] = it
				}
			}
			continue
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		if custom(ft) {
			ft = nil
		}
		into[name] = ft
	}
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// custom reports whether values of t decode themselves: the scan then
// checks only what holds for every value (no duplicate names, no lone
// surrogates).
func custom(t reflect.Type) bool {
	if t == nil {
		return true
	}
	if t.Kind() == reflect.Interface {
		return true
	}
	p := reflect.PointerTo(t)
	return t.Implements(unmarshalerType) || p.Implements(unmarshalerType) ||
		t.Implements(textUnmarshalerType) || p.Implements(textUnmarshalerType)
}
