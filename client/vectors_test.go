package client

import (
	"bytes"
	"crypto/cipher"
	"crypto/fips140"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/envelope"
)

// The known-answer vectors of the stream format live in
// testdata/stream-vectors.json, with everything an independent
// implementation needs to check itself step by step. TestVectors fails on
// any difference, so that a format change cannot pass unnoticed; `go test
// ./client -run TestVectors -update` rewrites the file after a deliberate
// change (which needs a new version, see docs/client-stream-format.md).

type vectorFile struct {
	Comment     string   `json:"comment"`
	SegmentSize int      `json:"segmentSize"`
	Vectors     []vector `json:"vectors"`
}

type vector struct {
	Name string `json:"name"`
	// Inputs.
	DataKey       string            `json:"dataKey"`
	Salt          string            `json:"salt"`
	Handle        string            `json:"handle"`
	Context       map[string]string `json:"context"`
	PlaintextSize int               `json:"plaintextSize"`
	// Intermediate values.
	ContextDigest string `json:"contextDigest"`
	PayloadKey    string `json:"payloadKey"`
	MACKey        string `json:"macKey"`
	Header        string `json:"header"`
	// Output: the whole stream when short, its SHA-256 always.
	Stream       string `json:"stream,omitempty"`
	StreamSize   int    `json:"streamSize"`
	StreamSHA256 string `json:"streamSHA256"`
}

// vectorPlaintext is byte i = i mod 251: it differs from segment to
// segment, so that a mix-up of segments shows.
func vectorPlaintext(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func vectorInputs() []vector {
	obj := map[string]string{"object": "reports/q1.pdf", "tenant-app": "crm"}
	h := func(b []byte) string { return hex.EncodeToString(b) }
	key, salt := h(testDataKey), h(testSalt[:])
	return []vector{
		{Name: "empty", DataKey: key, Salt: salt, Handle: testHandle, PlaintextSize: 0},
		{Name: "five bytes", DataKey: key, Salt: salt, Handle: testHandle, PlaintextSize: 5},
		{Name: "five bytes with a context", DataKey: key, Salt: salt, Handle: testHandle, Context: obj, PlaintextSize: 5},
		{Name: "five bytes, another salt", DataKey: key, Salt: h(bytes.Repeat([]byte{0x5a}, saltSize)), Handle: testHandle, PlaintextSize: 5},
		{Name: "customer managed key handle", DataKey: key, Salt: salt,
			Handle: func() string {
				bin, _ := envelope.Handle{KeyID: envelope.KeyID{15: 1}}.MarshalBinary()
				s, _ := envelope.FormatText(envelope.CMKPrefix("9444ba74ef5bb4785bf9ff6cf01a4792"), bin)
				return s
			}(), PlaintextSize: 5},
		{Name: "segment - 1", DataKey: key, Salt: salt, Handle: testHandle, Context: obj, PlaintextSize: segmentSize - 1},
		{Name: "one full segment", DataKey: key, Salt: salt, Handle: testHandle, Context: obj, PlaintextSize: segmentSize},
		{Name: "segment + 1", DataKey: key, Salt: salt, Handle: testHandle, Context: obj, PlaintextSize: segmentSize + 1},
		{Name: "three segments", DataKey: key, Salt: salt, Handle: testHandle, Context: obj, PlaintextSize: 2*segmentSize + 1000},
	}
}

func makeVectors(t *testing.T) vectorFile {
	f := vectorFile{
		Comment: "tenantcrypt client stream format v1 (docs/client-stream-format.md). " +
			"plaintext byte i is i mod 251. payloadKey || macKey = HKDF-SHA256(dataKey, salt, " +
			`"tenantcrypt/client-stream/v1\u0000" || contextDigest, 64). ` +
			"stream is given in full when at most 256 bytes; streamSHA256 always.",
		SegmentSize: segmentSize,
	}
	for _, v := range vectorInputs() {
		key, _ := hex.DecodeString(v.DataKey)
		var salt [saltSize]byte
		s, _ := hex.DecodeString(v.Salt)
		copy(salt[:], s)
		stream := sealWith(t, key, salt, v.Handle, v.Context, vectorPlaintext(v.PlaintextSize))
		digest, err := envelope.Context(v.Context).Digest()
		if err != nil {
			t.Fatal(err)
		}
		okm := referenceKeys(t, key, salt[:], digest)
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

// referenceKeys is the key schedule as the format document states it.
func referenceKeys(t *testing.T, key, salt []byte, digest [32]byte) []byte {
	okm, err := hkdf.Key(sha256.New, key, salt, "tenantcrypt/client-stream/v1\x00"+string(digest[:]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return okm
}

// referenceHeader reads a stream's header as the format document gives it
// (both versions share it): magic, salt, handle, then the header's MAC
// under the keys derive makes from the salt and the context's digest. It
// returns the payload's AEAD and the payload.
func referenceHeader(t testing.TB, stream []byte, magic string, ctx map[string]string, derive func(salt []byte, digest [32]byte) []byte) (cipher.AEAD, []byte, error) {
	if len(stream) < 37 || string(stream[:4]) != magic {
		return nil, nil, fmt.Errorf("not a %q stream", magic)
	}
	salt, hl := stream[4:36], int(stream[36])
	if len(stream) < 37+hl+32 {
		return nil, nil, errors.New("short header")
	}
	signed, mac, payload := stream[:37+hl], stream[37+hl:37+hl+32], stream[37+hl+32:]
	digest, err := envelope.Context(ctx).Digest()
	if err != nil {
		return nil, nil, err
	}
	okm := derive(salt, digest)
	m := hmac.New(sha256.New, okm[32:])
	m.Write(signed)
	if !hmac.Equal(m.Sum(nil), mac) {
		return nil, nil, errors.New("header MAC")
	}
	return plainGCM(t, okm[:32]), payload, nil
}

// referenceOpen decrypts a stream following the format document alone,
// written apart from the implementation so that a mistake made the same
// way in sealing and opening shows.
func referenceOpen(t *testing.T, key []byte, ctx map[string]string, stream []byte) ([]byte, error) {
	gcm, payload, err := referenceHeader(t, stream, "TCS\x01", ctx, func(salt []byte, digest [32]byte) []byte {
		return referenceKeys(t, key, salt, digest)
	})
	if err != nil {
		return nil, err
	}
	var out []byte
	for i := uint64(0); ; i++ {
		n := min(len(payload), 65536+16)
		last := len(payload) <= 65536+16
		nonce := make([]byte, 12)
		binary.BigEndian.PutUint64(nonce[3:11], i)
		if last {
			nonce[11] = 1
		}
		if n < 16 || (last && i > 0 && n == 16) {
			return nil, errors.New("bad last segment")
		}
		pt, err := gcm.Open(nil, nonce, payload[:n], nil)
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

// checkedVector is a vector of a file that matches what the tests make,
// with its data key and salt decoded.
type checkedVector struct {
	vector
	key  []byte
	salt [saltSize]byte
}

// checkedVectors writes got to testdata/name under -update, reads the file
// and returns its vectors that are byte for byte (as JSON) what got holds,
// reporting each that is not.
func checkedVectors(t *testing.T, name string, got vectorFile) []checkedVector {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		b, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	var want vectorFile
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if want.SegmentSize != segmentSize || len(want.Vectors) != len(got.Vectors) {
		t.Fatalf("vector file has %d vectors of segment size %d, want %d of %d", len(want.Vectors), want.SegmentSize, len(got.Vectors), segmentSize)
	}
	var out []checkedVector
	for i, w := range want.Vectors {
		gj, _ := json.Marshal(got.Vectors[i])
		wj, _ := json.Marshal(w)
		if !bytes.Equal(gj, wj) {
			t.Errorf("vector %q differs:\n got %s\nwant %s", w.Name, gj, wj)
			continue
		}
		c := checkedVector{vector: w}
		c.key, _ = hex.DecodeString(w.DataKey)
		s, _ := hex.DecodeString(w.Salt)
		copy(c.salt[:], s)
		out = append(out, c)
	}
	return out
}

func TestVectors(t *testing.T) {
	for _, c := range checkedVectors(t, "stream-vectors.json", makeVectors(t)) {
		// Both the implementation and the reference open it.
		w, key, salt := c.vector, c.key, c.salt
		stream := sealWith(t, key, salt, w.Handle, w.Context, vectorPlaintext(w.PlaintextSize))
		if w.Stream != "" && hex.EncodeToString(stream) != w.Stream {
			t.Errorf("vector %q: stream differs", w.Name)
		}
		for name, open := range map[string]func() ([]byte, error){
			"implementation": func() ([]byte, error) { return decryptStream(nil, stream, w.Context, staticKeys(key)) },
			"reference":      func() ([]byte, error) { return referenceOpen(t, key, w.Context, stream) },
		} {
			pt, err := open()
			if name == "implementation" && fips140.Enforced() {
				// Version 1 is refused under fips140=only.
				if !errors.Is(err, ErrNotApproved) {
					t.Errorf("vector %q under fips140=only: %v, want ErrNotApproved", w.Name, err)
				}
				continue
			}
			if err != nil || !bytes.Equal(pt, vectorPlaintext(w.PlaintextSize)) {
				t.Errorf("vector %q: %s does not open it: %v", w.Name, name, err)
			}
		}
	}
}
