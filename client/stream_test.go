package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// streamSizes are the plaintext sizes around segment boundaries.
var streamSizes = []int{0, 1, 2, segmentSize - 1, segmentSize, segmentSize + 1,
	2*segmentSize - 1, 2 * segmentSize, 2*segmentSize + 1, 5*segmentSize + 12345}

// writeStream encrypts pt with an encrypt writer fed in chunks of at most
// chunk bytes.
func writeStream(t *testing.T, e *Envelope, pt []byte, ectx map[string]string, chunk int) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := e.NewEncryptWriter(context.Background(), &out, ectx)
	if err != nil {
		t.Fatal(err)
	}
	for p := pt; len(p) > 0; {
		n := min(len(p), chunk)
		k, err := w.Write(p[:n])
		if err != nil || k != n {
			t.Fatalf("Write: %d, %v", k, err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestStreamRoundTrip(t *testing.T) {
	s := newFake(t)
	c, _ := newTestClient(t, s, "acme")
	forEachVersion(t, c.Envelope(), testStreamRoundTrip)
}

func testStreamRoundTrip(t *testing.T, e *Envelope, lay layout) {
	ctx := context.Background()
	ectx := map[string]string{"object": "reports/q1.pdf"}
	for _, n := range streamSizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			pt := pattern(n, 1)
			byBytes, err := e.Encrypt(ctx, pt, ectx)
			if err != nil {
				t.Fatal(err)
			}
			h, hlen, err := parseHeader(byBytes)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(byBytes), hlen+lay.sealedSize(n); got != want || hlen != h.size() {
				t.Errorf("stream is %d bytes, want %d", got, want)
			}
			streams := map[string][]byte{"Encrypt": byBytes}
			for _, chunk := range []int{1, 1000, segmentSize, segmentSize + 1, 3*segmentSize + 7} {
				if chunk == 1 && n > 2*segmentSize {
					continue
				}
				streams[fmt.Sprintf("writer/%d", chunk)] = writeStream(t, e, pt, ectx, chunk)
			}
			for name, stream := range streams {
				if len(stream) != len(byBytes) {
					t.Errorf("%s: %d bytes, Encrypt made %d", name, len(stream), len(byBytes))
				}
				got, err := decryptAll(t, e, stream, ectx)
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("%s: round trip: %v", name, err)
				}
				// Reading in small pieces, and through io.Copy (WriteTo).
				r, err := e.NewDecryptReader(ctx, iotest.HalfReader(bytes.NewReader(stream)), ectx)
				if err != nil {
					t.Fatal(err)
				}
				if err := iotest.TestReader(r, pt); err != nil {
					t.Errorf("%s: %v", name, err)
				}
				r, err = e.NewDecryptReader(ctx, bytes.NewReader(stream), ectx)
				if err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				if _, err := io.Copy(&out, r); err != nil || !bytes.Equal(out.Bytes(), pt) {
					t.Fatalf("%s: io.Copy: %v", name, err)
				}
			}
		})
	}
}

// TestStreamEmptyAndNilContext: an absent context and an empty one are the
// same, as on the service.
func TestStreamEmptyAndNilContext(t *testing.T) {
	s := newFake(t)
	c, _ := newTestClient(t, s, "acme")
	e := c.Envelope()
	stream, err := e.Encrypt(context.Background(), []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decryptAll(t, e, stream, map[string]string{}); err != nil || string(got) != "x" {
		t.Fatalf("decrypt with {}: %q, %v", got, err)
	}
	if _, err := decryptAll(t, e, stream, map[string]string{"a": ""}); !errors.Is(err, ErrDecryptionFailed) {
		t.Fatalf("decrypt with another context: %v, want ErrDecryptionFailed", err)
	}
}

// segmentsOf splits a stream into its header and segments.
func segmentsOf(t *testing.T, lay layout, stream []byte) (header []byte, segs [][]byte) {
	t.Helper()
	_, n, err := parseHeader(stream)
	if err != nil {
		t.Fatal(err)
	}
	header = stream[:n]
	for p := stream[n:]; len(p) > 0; {
		k := min(len(p), lay.encSegment)
		segs = append(segs, p[:k])
		p = p[k:]
	}
	return header, segs
}

func join(header []byte, segs ...[]byte) []byte {
	return bytes.Join(append([][]byte{header}, segs...), nil)
}

func TestStreamTamper(t *testing.T) {
	s := newFake(t)
	c, _ := newTestClient(t, s, "acme")
	forEachVersion(t, c.Envelope(), testStreamTamper)
}

func testStreamTamper(t *testing.T, e *Envelope, lay layout) {
	ctx := context.Background()
	ectx := map[string]string{"object": "a"}
	pt := pattern(3*segmentSize+100, 2)
	stream, err := e.Encrypt(ctx, pt, ectx)
	if err != nil {
		t.Fatal(err)
	}
	other, err := e.Encrypt(ctx, pt, ectx) // same key, plaintext and context; another salt
	if err != nil {
		t.Fatal(err)
	}
	full, err := e.Encrypt(ctx, pt[:2*segmentSize], ectx) // ends with a full segment
	if err != nil {
		t.Fatal(err)
	}
	h, segs := segmentsOf(t, lay, stream)
	oh, osegs := segmentsOf(t, lay, other)
	fh, fsegs := segmentsOf(t, lay, full)
	if len(segs) != 4 || len(fsegs) != 2 {
		t.Fatalf("%d and %d segments, want 4 and 2", len(segs), len(fsegs))
	}

	cases := map[string][]byte{
		"empty":                       {},
		"header only":                 h,
		"half the header":             h[:len(h)/2],
		"header without its MAC":      h[:len(h)-macSize],
		"header and a partial tag":    join(h, segs[0][:lay.overhead-1]),
		"last segment dropped":        join(h, segs[:3]...),
		"full last segment dropped":   join(fh, fsegs[0]),
		"last segment cut by one":     join(h, segs[0], segs[1], segs[2], segs[3][:len(segs[3])-1]),
		"full last segment cut":       join(fh, fsegs[0], fsegs[1][:lay.encSegment-1]),
		"cut to its tag":              join(h, segs[0], segs[1], segs[2], segs[3][len(segs[3])-lay.overhead:]),
		"middle segment dropped":      join(h, segs[0], segs[2], segs[3]),
		"first segment dropped":       join(h, segs[1:]...),
		"segments 0 and 1 swapped":    join(h, segs[1], segs[0], segs[2], segs[3]),
		"segment 1 replayed":          join(h, segs[0], segs[1], segs[1], segs[3]),
		"one byte appended":           append(bytes.Clone(stream), 0),
		"a tag appended":              append(bytes.Clone(stream), make([]byte, lay.overhead)...),
		"empty final segment added":   join(fh, fsegs[0], fsegs[1], make([]byte, lay.overhead)),
		"last segment repeated":       join(h, segs[0], segs[1], segs[2], segs[3], segs[3]),
		"full last segment repeated":  join(fh, fsegs[0], fsegs[1], fsegs[1]),
		"another stream's segment":    join(h, segs[0], osegs[1], segs[2], segs[3]),
		"another stream's header":     join(oh, segs...),
		"another stream's last":       join(h, segs[0], segs[1], segs[2], osegs[3]),
		"a full stream's first and …": join(fh, fsegs[0], segs[1], segs[2], segs[3]),
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := decryptAll(t, e, bad, ectx); !isStreamFailure(err) {
				t.Fatalf("got %v, want ErrDecryptionFailed or ErrMalformedStream", err)
			}
		})
	}
	// Every cut of a stream that spans two segments fails (a stream is
	// never a prefix of another).
	small, err := e.Encrypt(ctx, pattern(segmentSize+10, 3), ectx)
	if err != nil {
		t.Fatal(err)
	}
	for cut := 0; cut < len(small); cut += 1 + cut/64 {
		if _, err := e.Decrypt(ctx, small[:cut], ectx); !isStreamFailure(err) {
			t.Fatalf("cut at %d of %d: %v", cut, len(small), err)
		}
	}
	if got, err := decryptAll(t, e, stream, ectx); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("the untouched stream: %v", err)
	}
}

// TestStreamFlipBits flips every bit of the header and of both ends of
// every segment (tags included), and bits at random places elsewhere.
func TestStreamFlipBits(t *testing.T) {
	s := newFake(t)
	c, _ := newTestClient(t, s, "acme")
	forEachVersion(t, c.Envelope(), testStreamFlipBits)
}

func testStreamFlipBits(t *testing.T, e *Envelope, lay layout) {
	ctx := context.Background()
	stream, err := e.Encrypt(ctx, pattern(2*segmentSize+500, 4), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, hlen, _ := parseHeader(stream)
	var positions []int
	for i := range hlen {
		positions = append(positions, i)
	}
	for start := hlen; start < len(stream); start += lay.encSegment {
		end := min(start+lay.encSegment, len(stream))
		for i := start; i < min(start+24, end); i++ {
			positions = append(positions, i)
		}
		for i := max(start, end-24); i < end; i++ {
			positions = append(positions, i)
		}
	}
	r := rand.New(rand.NewPCG(5, 5))
	for range 64 {
		positions = append(positions, hlen+r.IntN(len(stream)-hlen))
	}
	bad := bytes.Clone(stream)
	for _, i := range positions {
		for bit := range 8 {
			bad[i] ^= 1 << bit
			if _, err := e.Decrypt(ctx, bad, nil); !isStreamFailure(err) {
				t.Fatalf("byte %d bit %d flipped: %v", i, bit, err)
			}
			bad[i] ^= 1 << bit
		}
	}
	// The reader path, on a sample.
	for _, i := range positions[:min(len(positions), 40)] {
		bad[i] ^= 0x80
		rd, err := e.NewDecryptReader(ctx, bytes.NewReader(bad), nil)
		if err == nil {
			_, err = io.Copy(io.Discard, rd)
		}
		if !isStreamFailure(err) {
			t.Fatalf("reader, byte %d flipped: %v", i, err)
		}
		bad[i] ^= 0x80
	}
}

// TestStreamHeaderErrors: input that is not a stream of this format says
// so, without a request to the service.
func TestStreamHeaderErrors(t *testing.T) {
	s := newFake(t)
	c, _ := newTestClient(t, s, "acme")
	e := c.Envelope()
	ctx := context.Background()
	good, err := e.Encrypt(ctx, []byte("hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	before := s.Requests("")
	h, _, _ := parseHeader(good)
	withHandle := func(handle string) []byte {
		b := bytes.Clone(good[:4+saltSize])
		b = append(b, byte(len(handle)))
		b = append(b, handle...)
		return append(b, make([]byte, macSize+tagSize)...)
	}
	cases := map[string][]byte{
		"envelope ciphertext":   append([]byte{1, 1}, make([]byte, 60)...),
		"text form":             []byte("#QLIKv1#:acme:AQE"),
		"version 3":             append([]byte("TCS\x03"), good[4:]...),
		"version 0":             append([]byte("TCS\x00"), good[4:]...),
		"one byte":              {'T'},
		"wrong magic":           append([]byte("TCX\x01"), good[4:]...),
		"handle length 0":       withHandle(""),
		"handle not a handle":   withHandle("#QLIKv1#:acme:AQEAAAAAAAAAAAAAAAAAAAAA"),
		"handle with padding":   withHandle(h.handle + "=="),
		"handle without prefix": withHandle(h.handle[len("#QLIKv1#:acme:"):]),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := e.Decrypt(ctx, b, nil); !errors.Is(err, ErrMalformedStream) {
				t.Errorf("Decrypt: %v, want ErrMalformedStream", err)
			}
			if _, err := e.NewDecryptReader(ctx, bytes.NewReader(b), nil); !errors.Is(err, ErrMalformedStream) {
				t.Errorf("NewDecryptReader: %v, want ErrMalformedStream", err)
			}
		})
	}
	if got := s.Requests(""); got != before {
		t.Errorf("malformed headers made %d requests to the service, want 0", got-before)
	}
}

// TestStreamWriterErrors: a failing destination stops the writer for good,
// and a closed writer refuses more.
func TestStreamWriterErrors(t *testing.T) {
	s := newFake(t)
	c, _ := newTestClient(t, s, "acme")
	e := c.Envelope()
	ctx := context.Background()
	w, err := e.NewEncryptWriter(ctx, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, errWriterClosed) {
		t.Errorf("Write after Close: %v", err)
	}
	if err := w.Close(); !errors.Is(err, errWriterClosed) {
		t.Errorf("second Close: %v", err)
	}
	boom := errors.New("disk full")
	if _, err := e.NewEncryptWriter(ctx, failingWriter{boom}, nil); !errors.Is(err, boom) {
		t.Errorf("header write failure: %v", err)
	}
	lw := &limitedWriter{n: 1000}
	w, err = e.NewEncryptWriter(ctx, lw, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 3*segmentSize)); err == nil {
		t.Errorf("Write to a failing writer: %v", err)
	}
	if err := w.Close(); err == nil {
		t.Error("Close after a failed write succeeded")
	}
	// A failing source of a reader is reported as such, not as tampering.
	stream, _ := e.Encrypt(ctx, pattern(2*segmentSize, 6), nil)
	r, err := e.NewDecryptReader(ctx, io.MultiReader(bytes.NewReader(stream[:len(stream)/2]), iotest.ErrReader(boom)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, r); !errors.Is(err, boom) {
		t.Errorf("reader over a failing source: %v, want the source's error", err)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

type limitedWriter struct{ n int }

func (w *limitedWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return 0, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

// TestStreamAppend: the append forms reuse the caller's buffer, and a
// failed decryption returns nil with the spare capacity zeroed.
func TestStreamAppend(t *testing.T) {
	s := newFake(t)
	c, _ := newTestClient(t, s, "acme")
	forEachVersion(t, c.Envelope(), testStreamAppend)
}

func testStreamAppend(t *testing.T, e *Envelope, lay layout) {
	ctx := context.Background()
	pt := pattern(segmentSize+5, 7)
	buf := make([]byte, 3, 3*segmentSize)
	copy(buf, "abc")
	stream, err := e.AppendEncrypt(ctx, buf, pt, nil)
	if err != nil {
		t.Fatal(err)
	}
	if &stream[0] != &buf[0] || string(stream[:3]) != "abc" {
		t.Fatal("AppendEncrypt did not append to the buffer")
	}
	stream = stream[3:]
	out := make([]byte, 2, 2*segmentSize)
	got, err := e.AppendDecrypt(ctx, out, stream, nil)
	if err != nil || &got[0] != &out[0] || !bytes.Equal(got[2:], pt) {
		t.Fatalf("AppendDecrypt: %v", err)
	}
	bad := bytes.Clone(stream)
	bad[len(bad)-1] ^= 1 // the second segment fails after the first opened
	spare := make([]byte, 0, 2*segmentSize)
	got, err = e.AppendDecrypt(ctx, spare, bad, nil)
	if got != nil || !errors.Is(err, ErrDecryptionFailed) {
		t.Fatalf("AppendDecrypt of a bad stream: %d bytes, %v", len(got), err)
	}
	if !bytes.Equal(spare[:cap(spare)], make([]byte, cap(spare))) {
		t.Error("the plaintext of the first segment was left in the buffer")
	}
}
