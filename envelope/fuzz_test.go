package envelope

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The fuzzers take their seeds only from testdata/fuzz/<FuzzName>/, which
// TestFuzzSeedCorpora keeps from going missing or invalid. Regenerate the
// named seeds with `go test ./envelope -run TestFuzzSeedCorpora -update`;
// files the fuzzer adds after finding a failure are kept as regressions.

func FuzzParseCiphertext(f *testing.F) {
	aead := mustAEAD(f, testKey)
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		c, err := ParseCiphertext(b)
		if !bytes.Equal(b, orig) {
			t.Fatal("ParseCiphertext modified its input")
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		out, err := c.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary of a parsed ciphertext: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("MarshalBinary(ParseCiphertext(b)) = %x, want %x", out, b)
		}
		// Opening arbitrary input must fail cleanly (the seeds include
		// real ciphertexts, which open) and leave the input alone.
		if _, err := Open(aead, "acme", c, nil); err != nil && err != ErrDecrypt {
			t.Fatalf("Open: got %v, want nil or ErrDecrypt", err)
		}
		if !bytes.Equal(b, orig) {
			t.Fatal("Open modified the ciphertext")
		}
	})
}

func FuzzParseHandle(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHandle(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		out, err := h.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary of a parsed handle: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("MarshalBinary(ParseHandle(b)) = %x, want %x", out, b)
		}
	})
}

func FuzzParseText(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		prefix, b, err := ParseText(s)
		// AppendParseText, its append form, must agree on every input.
		ab, aerr := AppendParseText(nil, []byte(s))
		if (err == nil) != (aerr == nil) || err != nil && err.Error() != aerr.Error() || !bytes.Equal(ab, b) {
			t.Fatalf("AppendParseText = %x, %v; ParseText = %x, %v", ab, aerr, b, err)
		}
		if err != nil {
			checkMalformed(t, err, s)
			return
		}
		if at, err := AppendText(nil, prefix, b); err != nil || string(at) != s {
			t.Fatalf("AppendText(ParseText(s)) = %q, %v, want %q", at, err, s)
		}
		out, err := FormatText(prefix, b)
		if err != nil {
			t.Fatalf("FormatText of a parsed text form: %v", err)
		}
		if out != s {
			t.Fatalf("FormatText(ParseText(s)) = %q, want %q", out, s)
		}
		if _, err := ParseCiphertext(b); err != nil {
			if _, err := ParseHandle(b); err != nil {
				t.Fatal("ParseText accepted a payload that is neither a ciphertext nor a handle")
			}
		}
	})
}

// FuzzContextCanonical checks that the canonical form is injective and
// unique: decoding it gives back the context, and anything that decodes as
// a canonical form is what Canonical produces for its context.
func FuzzContextCanonical(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		// Direction 1: b as a canonical form.
		if ctx, ok := decodeCanonical(b); ok && ctx.Validate() == nil {
			got, err := ctx.Canonical()
			if err != nil {
				t.Fatalf("Canonical: %v", err)
			}
			if !bytes.Equal(got, b) {
				t.Fatalf("Canonical(decode(b)) = %x, want %x", got, b)
			}
		}
		// Direction 2: b as pairs separated by 0xff (never in UTF-8).
		ctx := Context{}
		parts := bytes.Split(b, []byte{0xff})
		for i := 0; i+1 < len(parts); i += 2 {
			ctx[string(parts[i])] = string(parts[i+1])
		}
		canon, err := ctx.Canonical()
		if err != nil {
			checkMalformed(t, err, "")
			if ctx.Validate() == nil {
				t.Fatal("Canonical refused a context that Validate accepts")
			}
			return
		}
		back, ok := decodeCanonical(canon)
		if !ok || len(back) != len(ctx) {
			t.Fatalf("canonical form %x does not decode to the context", canon)
		}
		for k, v := range ctx {
			if bv, ok := back[k]; !ok || bv != v {
				t.Fatalf("canonical form %x does not decode to the context", canon)
			}
		}
		digest, err := ctx.Digest()
		if err != nil {
			t.Fatalf("Digest: %v", err)
		}
		if want := sha256.Sum256(append([]byte(contextDigestDomain), canon...)); digest != want {
			t.Fatalf("Digest = %x, want %x", digest, want)
		}
	})
}

// decodeCanonical is an independent, strict reader of the canonical form:
// keys strictly increasing, nothing trailing.
func decodeCanonical(b []byte) (Context, bool) {
	next := func() ([]byte, bool) {
		if len(b) < 4 {
			return nil, false
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		if uint64(n) > uint64(len(b)) {
			return nil, false
		}
		s := b[:n]
		b = b[n:]
		return s, true
	}
	if len(b) < 4 {
		return nil, false
	}
	count := binary.BigEndian.Uint32(b)
	b = b[4:]
	if count > MaxContextPairs {
		return nil, false
	}
	ctx := Context{}
	prev := ""
	for i := range count {
		k, ok1 := next()
		v, ok2 := next()
		if !ok1 || !ok2 || (i > 0 && string(k) <= prev) {
			return nil, false
		}
		prev = string(k)
		ctx[prev] = string(v)
	}
	return ctx, len(b) == 0
}

// fuzzSeeds are the named seeds of each fuzzer: valid values first (so the
// fuzzer starts from inputs that reach the round-trip checks), then near
// misses.
func fuzzSeeds(t *testing.T) map[string]map[string]any {
	aead := mustFixedNonceAEAD(t, testKey)
	seal := func(ctx Context, pt string) []byte {
		c, err := sealWithNonce(aead, "acme", testKeyID, ctx, testNonce, []byte(pt))
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	text := func(prefix string, b []byte) string {
		s, err := FormatText(prefix, b)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ct := seal(nil, "hello, world")
	ctEmpty := seal(nil, "")
	handle := Handle{testKeyID}.mustMarshal()
	canon := func(ctx Context) []byte {
		b, err := ctx.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return map[string]map[string]any{
		"FuzzParseCiphertext": {
			"valid":            ct,
			"valid-empty":      ctEmpty,
			"valid-context":    seal(Context{"purpose": "secret"}, "x"),
			"handle":           handle,
			"truncated":        ct[:minCiphertextSize-1],
			"header-only":      ct[:ciphertextHeaderSize],
			"version-2":        append([]byte{2}, ct[1:]...),
			"empty":            []byte{},
			"one-byte-version": []byte{Version1},
		},
		"FuzzParseHandle": {
			"valid":         handle,
			"valid-zero-id": Handle{}.mustMarshal(),
			"ciphertext":    ctEmpty,
			"truncated":     handle[:handleSize-1],
			"trailing":      append(bytes.Clone(handle), 0),
			"empty":         []byte{},
		},
		"FuzzParseText": {
			"valid-ciphertext": text(InternalPrefix("acme"), ct),
			"valid-handle":     text(CMKPrefix("9f86d081884c7d659a2feaa0c55ad015"), handle),
			"valid-long-tag":   text("#ABCDEFGHv1234#:x.y_z-0", ctEmpty),
			"padded":           text(InternalPrefix("acme"), ctEmpty) + "==",
			"line-break":       strings.Replace(text(InternalPrefix("acme"), ct), "AQ", "A\nQ", 1),
			"no-prefix":        ":" + strings.SplitN(text(InternalPrefix("acme"), ct), ":", 3)[2],
			"empty":            "",
		},
		"FuzzContextCanonical": {
			"empty":         canon(nil),
			"one-pair":      canon(Context{"a": "bc"}),
			"two-pairs":     canon(Context{"purpose": "secret", "record": "42"}),
			"unicode":       canon(Context{"clé": "värde ✓"}),
			"pairs-split":   []byte("a\xffbc\xffab\xffc"),
			"unsorted":      mustHex(t, "00000002"+"0000000162"+"00000000"+"0000000161"+"00000000"),
			"bad-length":    mustHex(t, "00000001"+"ffffffff"),
			"invalid-utf-8": []byte("k\xff\xc3"),
		},
	}
}

// TestFuzzSeedCorpora fails if a fuzzer's seed directory is missing,
// empty, not in the corpus file format, or holds no valid value, so that
// fuzzing never silently starts from nothing.
func TestFuzzSeedCorpora(t *testing.T) {
	seeds := fuzzSeeds(t)
	if *update {
		for fuzzer, files := range seeds {
			dir := filepath.Join("testdata", "fuzz", fuzzer)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, v := range files {
				if err := os.WriteFile(filepath.Join(dir, name), corpusFile(v), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	valid := map[string]func(v any) bool{
		"FuzzParseCiphertext": func(v any) bool { b, ok := v.([]byte); return ok && second(ParseCiphertext(b)) == nil },
		"FuzzParseHandle":     func(v any) bool { b, ok := v.([]byte); return ok && second(ParseHandle(b)) == nil },
		"FuzzParseText": func(v any) bool {
			s, ok := v.(string)
			if !ok {
				return false
			}
			_, _, err := ParseText(s)
			return err == nil
		},
		"FuzzContextCanonical": func(v any) bool {
			b, ok := v.([]byte)
			if !ok {
				return false
			}
			ctx, ok := decodeCanonical(b)
			return ok && ctx.Validate() == nil
		},
	}
	for fuzzer := range seeds {
		t.Run(fuzzer, func(t *testing.T) {
			dir := filepath.Join("testdata", "fuzz", fuzzer)
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatalf("%v (run with -update to create the seeds)", err)
			}
			var nvalid int
			for _, e := range entries {
				raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				v, err := parseCorpusFile(raw)
				if err != nil {
					t.Fatalf("%s: %v", e.Name(), err)
				}
				if valid[fuzzer](v) {
					nvalid++
				}
			}
			if len(entries) == 0 || nvalid == 0 {
				t.Fatalf("%s has %d seeds, %d of them valid; want at least one valid", dir, len(entries), nvalid)
			}
			for name := range seeds[fuzzer] {
				if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
					t.Errorf("seed %s is missing: %v", name, err)
				}
			}
		})
	}
}

// corpusFile renders one value in the "go test fuzz v1" format.
func corpusFile(v any) []byte {
	switch v := v.(type) {
	case []byte:
		return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", v)
	case string:
		return fmt.Appendf(nil, "go test fuzz v1\nstring(%q)\n", v)
	}
	panic(fmt.Sprintf("no corpus encoding for %T", v))
}

// parseCorpusFile reads the single []byte or string value of a corpus
// file, which is all these fuzzers take.
func parseCorpusFile(raw []byte) (any, error) {
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" {
		return nil, errors.New(`want "go test fuzz v1" and one value`)
	}
	for _, typ := range []string{"[]byte", "string"} {
		lit, ok := strings.CutPrefix(lines[1], typ+"(")
		if !ok {
			continue
		}
		lit, ok = strings.CutSuffix(lit, ")")
		if !ok {
			break
		}
		s, err := strconv.Unquote(lit)
		if err != nil {
			return nil, err
		}
		if typ == "string" {
			return s, nil
		}
		return []byte(s), nil
	}
	return nil, errors.New("value is neither []byte nor string")
}
