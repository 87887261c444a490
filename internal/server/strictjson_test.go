package server

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tenantcrypt/tenantcrypt/api"
)

func TestDecodeStrictRules(t *testing.T) {
	t.Parallel()
	type single = api.EncryptRequest
	type batch = api.BatchRequest[api.EncryptRequest]
	tests := []struct {
		name string
		body string
		into func() any
		rule string // "" for accepted
	}{
		{"plain", `{"plaintext":"YQ==","context":{"k":"v"}}`, func() any { return new(single) }, ""},
		{"escaped name matches", `{"pl\u0061intext":"YQ=="}`, func() any { return new(single) }, ""},
		{"surrogate pair", `{"plaintext":"YQ==","context":{"k":"\ud83d\ude00"}}`, func() any { return new(single) }, ""},
		{"raw non-ASCII", `{"plaintext":"YQ==","context":{"k":"é😀"}}`, func() any { return new(single) }, ""},
		{"context name any case", `{"plaintext":"YQ==","context":{"PlainText":"v","K":"1","k":"2"}}`, func() any { return new(single) }, ""},
		{"batch", `{"items":[{"plaintext":"YQ=="},{"plaintext":"Yg=="}]}`, func() any { return new(batch) }, ""},
		{"patch array", `[{"op":"replace","path":"/name","value":"x"}]`, func() any { return new([]api.PatchOperation) }, ""},
		{"patch value any", `[{"op":"replace","path":"/name","value":{"Op":1,"op":2}}]`, func() any { return new([]api.PatchOperation) }, ""},
		{"both spellings", `{"arn":"a","name":"n","keyprovider":"AWS-KMS","keyProvider":"AWS-KMS"}`, func() any { return new(api.RegisterKeyProviderRequest) }, ""},

		{"invalid UTF-8 in value", "{\"plaintext\":\"YQ==\",\"context\":{\"k\":\"\xff\"}}", func() any { return new(single) }, "utf-8"},
		{"invalid UTF-8 in name", "{\"plaintext\":\"YQ==\",\"context\":{\"\xfe\":\"v\"}}", func() any { return new(single) }, "utf-8"},
		{"overlong UTF-8", "{\"plaintext\":\"YQ==\",\"context\":{\"k\":\"\xc0\xaf\"}}", func() any { return new(single) }, "utf-8"},
		{"encoded surrogate", "{\"plaintext\":\"YQ==\",\"context\":{\"k\":\"\xed\xa0\x80\"}}", func() any { return new(single) }, "utf-8"},
		{"lone high surrogate", `{"plaintext":"YQ==","context":{"k":"\ud800"}}`, func() any { return new(single) }, "surrogate"},
		{"lone low surrogate", `{"plaintext":"YQ==","context":{"k":"\udc00"}}`, func() any { return new(single) }, "surrogate"},
		{"high then non-surrogate", `{"plaintext":"YQ==","context":{"k":"\ud800\u0041"}}`, func() any { return new(single) }, "surrogate"},
		{"two highs", `{"plaintext":"YQ==","context":{"k":"\ud800\ud800"}}`, func() any { return new(single) }, "surrogate"},
		{"surrogate in a name", `{"plaintext":"YQ==","context":{"\udfff":"v"}}`, func() any { return new(single) }, "surrogate"},
		{"surrogate in a batch item", `{"items":[{"plaintext":"YQ==","context":{"k":"\ud800x"}}]}`, func() any { return new(batch) }, "surrogate"},
		{"surrogate in an unknown place", `[{"op":"replace","path":"/name","value":["\ud800"]}]`, func() any { return new([]api.PatchOperation) }, "surrogate"},
		{"case-mismatched field", `{"PlainText":"YQ=="}`, func() any { return new(single) }, "field"},
		{"case-mismatched in batch item", `{"items":[{"Plaintext":"YQ=="}]}`, func() any { return new(batch) }, "field"},
		{"case-mismatched Items", `{"Items":[{"plaintext":"YQ=="}]}`, func() any { return new(batch) }, "field"},
		{"kelvin sign folds", `{"plaintext":"YQ==","conte\u212at":{}}`, func() any { return new(single) }, "field"},
		{"case-mismatched patch op", `[{"OP":"replace","path":"/name","value":"x"}]`, func() any { return new([]api.PatchOperation) }, "field"},
		{"unknown field", `{"plaintext":"YQ==","extra":1}`, func() any { return new(single) }, "field"},
		{"duplicate field", `{"plaintext":"YQ==","plaintext":"Yg=="}`, func() any { return new(single) }, "duplicate"},
		{"duplicate by escape", `{"plaintext":"YQ==","pl\u0061intext":"Yg=="}`, func() any { return new(single) }, "duplicate"},
		{"duplicate context key", `{"plaintext":"YQ==","context":{"k":"a","k":"b"}}`, func() any { return new(single) }, "duplicate"},
		{"duplicate in a big object", `{"plaintext":"YQ==","context":{` + manyKeys(40) + `,"k7":"again"}}`, func() any { return new(single) }, "duplicate"},
		{"duplicate inside any", `[{"op":"replace","path":"/name","value":{"a":1,"a":2}}]`, func() any { return new([]api.PatchOperation) }, "duplicate"},
		{"null body", `null`, func() any { return new(single) }, "type"},
		{"array body", `[{"plaintext":"YQ=="}]`, func() any { return new(single) }, "type"},
		{"string body", `"x"`, func() any { return new(single) }, "type"},
		{"number body", ` 1`, func() any { return new(api.CreateTenantRequest) }, "type"},
		{"object for a patch", `{"op":"replace"}`, func() any { return new([]api.PatchOperation) }, "type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := decodeStrict([]byte(tt.body), tt.into())
			if tt.rule == "" {
				if err != nil {
					t.Fatalf("decodeStrict(%s) = %v, want nil", tt.body, err)
				}
				return
			}
			_, ok := err.(*requestError)
			he := toHTTPError(err)
			if !ok || he.status != 400 || he.code != api.CodeBadRequest {
				t.Fatalf("decodeStrict(%q) = %v, want a 400 %s", tt.body, err, api.CodeBadRequest)
			}
			if got := he.meta["rule"]; got != tt.rule {
				t.Errorf("decodeStrict(%q): rule %v (%s), want %s", tt.body, got, he.detail, tt.rule)
			}
		})
	}
}

func manyKeys(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + string(rune('0'+i%10)) + string(rune('a'+i/10)) + `":"v"`)
	}
	// k7 is not among them (k7a, k7b, ... are): add it once.
	return b.String() + `,"k7":"v"`
}

// TestDecodeStrictSyntaxWording keeps encoding/json's wording of syntax
// errors: the scan leaves them to it.
func TestDecodeStrictSyntaxWording(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{"plaintext":`, `{"plaintext" "x"}`, `{"plaintext":"x",}`, `{"plaintext":tru}`, `{"plaintext":"x"} {}`} {
		err := decodeStrict([]byte(body), new(api.EncryptRequest))
		_, ok := err.(*requestError)
		if he := toHTTPError(err); !ok || he.status != 400 || he.meta["rule"] != nil {
			t.Errorf("decodeStrict(%q) = %v, want a 400 from the JSON decoder", body, err)
		}
	}
}

// FuzzStrictScan checks the scan against encoding/json: it understands
// every valid JSON text (never errScanSyntax for one), finds every
// duplicate name that encoding/json would silently merge, and never lets a
// duplicate through.
func FuzzStrictScan(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		for _, typ := range []reflect.Type{
			reflect.TypeFor[map[string]any](), reflect.TypeFor[[]any](),
			reflect.TypeFor[api.EncryptRequest](), reflect.TypeFor[api.BatchRequest[api.DecryptRequest]](),
			reflect.TypeFor[[]api.PatchOperation](),
		} {
			err := strictScan(b, typ)
			if !bytes.Equal(b, orig) {
				t.Fatal("strictScan modified its input")
			}
			if err != nil && err != errScanSyntax && !isPolicyError(err) {
				t.Fatalf("strictScan(%q, %v) = %v: neither a syntax nor a policy error", b, typ, err)
			}
			if !json.Valid(b) {
				continue
			}
			if err == errScanSyntax {
				t.Fatalf("strictScan(%q, %v) says the valid JSON is not JSON", b, typ)
			}
			dup, lossy := duplicateNames(b)
			if err == nil && dup {
				t.Fatalf("strictScan(%q, %v) let a duplicate name through", b, typ)
			}
			if err == nil && lossy {
				t.Fatalf("strictScan(%q, %v) let invalid UTF-8 or a lone surrogate through", b, typ)
			}
		}
	})
}

// duplicateNames walks b (valid JSON) with encoding/json's tokenizer and
// reports whether an object repeats a name, and whether any string was
// lossy (invalid UTF-8 or lone surrogates turned into U+FFFD, so that
// different names may compare equal).
func duplicateNames(b []byte) (dup, lossy bool) {
	lossy = !strictStringsOK(b)
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		object bool
		names  map[string]bool
		key    bool // the next string token is a name
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF || err != nil {
			return dup, lossy
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				if top != nil && top.object {
					top.key = true
				}
				stack = append(stack, &frame{object: true, names: map[string]bool{}, key: true})
			case '[':
				if top != nil && top.object {
					top.key = true
				}
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
			}
		default:
			if top != nil && top.object {
				if top.key {
					s := v.(string)
					if top.names[s] {
						dup = true
					}
					top.names[s] = true
					top.key = false
				} else {
					top.key = true
				}
			}
		}
	}
}

// strictStringsOK reports whether b (valid JSON) is valid UTF-8 with every
// escaped surrogate in a pair. In valid JSON a backslash occurs only in
// strings, so walking the escapes from the start finds them all.
func strictStringsOK(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	pendingHigh := false
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			if pendingHigh {
				return false
			}
			continue
		}
		if b[i+1] != 'u' {
			if pendingHigh {
				return false
			}
			i++
			continue
		}
		v, _ := strconv.ParseUint(string(b[i+2:i+6]), 16, 16)
		i += 5
		switch {
		case v >= 0xd800 && v < 0xdc00:
			if pendingHigh {
				return false
			}
			pendingHigh = true
		case v >= 0xdc00 && v <= 0xdfff:
			if !pendingHigh {
				return false
			}
			pendingHigh = false
		default:
			if pendingHigh {
				return false
			}
		}
	}
	return !pendingHigh
}

// TestFuzzStrictScanSeeds keeps the fuzzer's seed corpus from going
// missing: go test -fuzz FuzzStrictScan starts from it.
func TestFuzzStrictScanSeeds(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzStrictScan", "*"))
	if err != nil || len(files) < 10 {
		t.Fatalf("testdata/fuzz/FuzzStrictScan has %d seeds (%v), want at least 10", len(files), err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || !bytes.HasPrefix(b, []byte("go test fuzz v1\n[]byte(")) {
			t.Errorf("%s is not a []byte seed: %v", f, err)
		}
	}
}

// BenchmarkDecodeStrict measures the strict scan's share of decoding a
// data-plane body: "json" is encoding/json alone (the decoding before the
// scan existed), "scan" the strict scan alone, "strict" is decodeStrict
// (scan, then encoding/json).
//
//	go test -run '^$' -bench DecodeStrict ./internal/server
func BenchmarkDecodeStrict(b *testing.B) {
	item := func(i int) string {
		return `{"plaintext":"` + strings.Repeat("QUJD", 342) + `","context":{"app":"bench","item":"` + strconv.Itoa(i) + `"}}`
	}
	var items []string
	for i := range 100 {
		items = append(items, item(i))
	}
	bodies := []struct {
		name string
		body []byte
		into func() any
	}{
		{"single-1KiB", []byte(item(0)), func() any { return new(api.EncryptRequest) }},
		{"batch-100x1KiB", []byte(`{"items":[` + strings.Join(items, ",") + `]}`), func() any { return new(api.BatchRequest[api.EncryptRequest]) }},
	}
	for _, bb := range bodies {
		b.Run(bb.name+"/json", func(b *testing.B) {
			b.SetBytes(int64(len(bb.body)))
			for b.Loop() {
				dec := json.NewDecoder(bytes.NewReader(bb.body))
				dec.DisallowUnknownFields()
				if err := dec.Decode(bb.into()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bb.name+"/scan", func(b *testing.B) {
			b.SetBytes(int64(len(bb.body)))
			t := reflect.TypeOf(bb.into())
			for b.Loop() {
				if err := strictScan(bb.body, t); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bb.name+"/strict", func(b *testing.B) {
			b.SetBytes(int64(len(bb.body)))
			for b.Loop() {
				if err := decodeStrict(bb.body, bb.into()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
