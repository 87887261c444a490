package client

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The fuzzers take their seeds only from testdata/fuzz/<FuzzName>/, which
// TestFuzzSeedCorpora keeps from going missing or invalid. Regenerate the
// named seeds with `go test ./client -run TestFuzzSeedCorpora -update`;
// files the fuzzer adds after finding a failure are kept as regressions.
// Both fuzzers work in memory with a fixed key: no service, no I/O, so
// that a run of 100,000 inputs takes seconds.

// FuzzParseHeader: whatever parses marshals back to the same bytes, and
// the byte-slice and reader parsers agree.
func FuzzParseHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		h, n, err := parseHeader(b)
		rh, raw, rerr := readHeader(bytes.NewReader(b))
		if !bytes.Equal(b, orig) {
			t.Fatal("parseHeader modified its input")
		}
		if (err == nil) != (rerr == nil) {
			t.Fatalf("parseHeader and readHeader disagree: %v / %v", err, rerr)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformedStream) || !errors.Is(rerr, ErrMalformedStream) {
				t.Fatalf("errors %v / %v do not wrap ErrMalformedStream", err, rerr)
			}
			return
		}
		if n > maxHeaderSize || n != h.size() || !bytes.Equal(raw, b[:n]) || rh != h {
			t.Fatalf("header of %d bytes (size %d), reader read %d", n, h.size(), len(raw))
		}
		out := append(h.appendSigned(nil), h.mac[:]...)
		if !bytes.Equal(out, b[:n]) {
			t.Fatalf("marshal(parse(b)) = %x, want %x", out, b[:n])
		}
	})
}

// FuzzDecrypt: decrypting arbitrary bytes fails cleanly, the same way for
// bytes and reader, and whatever decrypts is exactly the stream that
// encrypting its plaintext again (same salt and handle, and for version 2
// the same nonces) makes: a stream has one encoding.
func FuzzDecrypt(f *testing.F) {
	open := staticKeys(testDataKey)
	f.Fuzz(func(t *testing.T, b []byte) {
		pt, err := decryptStream(nil, b, nil, open)
		var rpt []byte
		rd, rerr := newDecryptReader(bytes.NewReader(b), nil, open)
		if rerr == nil {
			rpt, rerr = io.ReadAll(rd)
		}
		if (err == nil) != (rerr == nil) {
			t.Fatalf("Decrypt and the reader disagree: %v / %v", err, rerr)
		}
		if err != nil {
			if !isStreamFailure(err) || !isStreamFailure(rerr) {
				t.Fatalf("errors %v / %v are neither ErrDecryptionFailed nor ErrMalformedStream", err, rerr)
			}
			return
		}
		if !bytes.Equal(pt, rpt) {
			t.Fatal("Decrypt and the reader return different plaintexts")
		}
		h, _, err := parseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		again := sealWith(t, testDataKey, h.salt, h.handle, nil, pt)
		if h.version == streamV2 {
			// Version 2's nonces are the writer's only freedom.
			again = referenceSealV2(t, testDataKey, h.salt, h.handle, nil, pt, noncesOf(t, b))
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("a stream that decrypts is not the encryption of its plaintext:\n got %x\nwant %x", b, again)
		}
	})
}

// fuzzSeeds are the named seeds of each fuzzer: valid values first, then
// near misses.
func fuzzSeeds(t *testing.T) map[string]map[string][]byte {
	seal := func(pt string) []byte { return sealWith(t, testDataKey, testSalt, testHandle, nil, []byte(pt)) }
	empty := seal("")
	hello := seal("hello, world")
	_, hlen, err := parseHeader(hello)
	if err != nil {
		t.Fatal(err)
	}
	header := hello[:hlen]
	withContext := sealWith(t, testDataKey, testSalt, testHandle, map[string]string{"a": "b"}, []byte("x"))
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }
	sealV2 := func(pt string) []byte {
		return referenceSealV2(t, testDataKey, testSalt, testHandle, nil, []byte(pt), vectorNonce)
	}
	helloV2 := sealV2("hello, world")
	return map[string]map[string][]byte{
		"FuzzParseHeader": {
			"valid":             header,
			"valid-with-data":   hello,
			"truncated":         header[:hlen-1],
			"magic-only":        []byte(streamMagic),
			"version-2":         helloV2[:hlen],
			"version-3":         append([]byte("TCS\x03"), header[4:]...),
			"handle-length-0":   append(bytes.Clone(header[:36]), 0),
			"handle-length-255": append(append(bytes.Clone(header[:36]), 255), make([]byte, 300)...),
			"bad-handle":        flip(header, 40),
			"empty":             {},
		},
		"FuzzDecrypt": {
			"valid-empty":      empty,
			"valid":            hello,
			"valid-2000":       seal(strings.Repeat("0123456789", 200)),
			"other-context":    withContext,
			"flipped-mac":      flip(hello, hlen-1),
			"flipped-payload":  flip(hello, hlen+1),
			"flipped-tag":      flip(hello, len(hello)-1),
			"truncated":        hello[:len(hello)-1],
			"extended":         append(bytes.Clone(hello), 0),
			"header-only":      header,
			"empty":            {},
			"v2-valid-empty":   sealV2(""),
			"v2-valid":         helloV2,
			"v2-valid-70000":   sealV2(strings.Repeat("0123456789", 7000)),
			"v2-flipped-nonce": flip(helloV2, hlen+1),
			"v2-flipped-tag":   flip(helloV2, len(helloV2)-1),
			"v2-truncated":     helloV2[:len(helloV2)-1],
			"v2-as-v1":         append([]byte("TCS\x01"), helloV2[4:]...),
		},
	}
}

// TestFuzzSeedCorpora fails if a fuzzer's seed directory is missing,
// empty, not in the corpus file format, lacks a named seed, or holds no
// valid value, so that fuzzing never silently starts from nothing.
func TestFuzzSeedCorpora(t *testing.T) {
	seeds := fuzzSeeds(t)
	if *update {
		for fuzzer, files := range seeds {
			dir := filepath.Join("testdata", "fuzz", fuzzer)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, v := range files {
				if err := os.WriteFile(filepath.Join(dir, name), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", v), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	valid := map[string]func(b []byte) bool{
		"FuzzParseHeader": func(b []byte) bool { _, _, err := parseHeader(b); return err == nil },
		"FuzzDecrypt":     func(b []byte) bool { _, err := decryptStream(nil, b, nil, staticKeys(testDataKey)); return err == nil },
	}
	for fuzzer := range seeds {
		t.Run(fuzzer, func(t *testing.T) {
			dir := filepath.Join("testdata", "fuzz", fuzzer)
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatalf("%v (run with -update to create the seeds)", err)
			}
			nvalid := 0
			for _, e := range entries {
				raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				b, err := parseCorpusFile(raw)
				if err != nil {
					t.Fatalf("%s: %v", e.Name(), err)
				}
				if valid[fuzzer](b) {
					nvalid++
				}
			}
			if nvalid == 0 {
				t.Fatalf("%s has %d seeds, none valid", dir, len(entries))
			}
			for name := range seeds[fuzzer] {
				if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
					t.Errorf("seed %s is missing: %v", name, err)
				}
			}
		})
	}
}

// parseCorpusFile reads the single []byte value of a corpus file.
func parseCorpusFile(raw []byte) ([]byte, error) {
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" {
		return nil, errors.New(`want "go test fuzz v1" and one value`)
	}
	lit, ok := strings.CutPrefix(lines[1], "[]byte(")
	if lit, ok2 := strings.CutSuffix(lit, ")"); ok && ok2 {
		s, err := strconv.Unquote(lit)
		return []byte(s), err
	}
	return nil, errors.New("the value is not a []byte")
}
