package client

import (
	"bytes"
	"context"
	"crypto/fips140"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/client/internal/fakeservice"
	"github.com/tenantcrypt/tenantcrypt/envelope"
)

func newFake(t testing.TB) *fakeservice.Server {
	t.Helper()
	s := fakeservice.New()
	t.Cleanup(s.Close)
	return s
}

// waits records the waits between attempts instead of spending them.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.d = append(w.d, d)
	return ctx.Err()
}

func (w *waits) list() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.d...)
}

// newTestClient is a client of the fake for a tenant's service; it does not
// sleep between attempts (see waits).
func newTestClient(t testing.TB, s *fakeservice.Server, tenant string, opts ...Option) (*Client, *waits) {
	t.Helper()
	c, err := New(s.URL(), append([]Option{WithToken(fakeservice.Token(tenant)), WithTLSConfig(s.TLSConfig())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	w := &waits{}
	c.sleep = w.sleep
	t.Cleanup(c.PurgeKeys)
	return c, w
}

// pattern is n deterministic bytes that differ from segment to segment, so
// that a reordering of plaintext would show.
func pattern(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// isStreamFailure reports whether err is how a damaged stream fails.
// Under GODEBUG=fips140=only a version 1 stream fails with ErrNotApproved
// before anything else is checked.
func isStreamFailure(err error) bool {
	return errors.Is(err, ErrDecryptionFailed) || errors.Is(err, ErrMalformedStream) ||
		(fips140.Enforced() && errors.Is(err, ErrNotApproved))
}

// testVersions are the stream versions the tests write: both, except
// version 1 under GODEBUG=fips140=only.
func testVersions() []byte {
	if fips140.Enforced() {
		return []byte{streamV2}
	}
	return []byte{streamV1, streamV2}
}

// forEachVersion runs f in a subtest per version of testVersions, with an
// Envelope that writes that version.
func forEachVersion(t *testing.T, e *Envelope, f func(t *testing.T, e *Envelope, lay layout)) {
	for _, v := range testVersions() {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			ev := *e
			ev.version = v
			f(t, &ev, layoutOf(v))
		})
	}
}

// decryptAll decrypts a stream both ways, as bytes and through a reader,
// and fails the test if the two disagree.
func decryptAll(t *testing.T, e *Envelope, stream []byte, ectx map[string]string) ([]byte, error) {
	t.Helper()
	ctx := context.Background()
	got1, err1 := e.Decrypt(ctx, stream, ectx)
	var got2 []byte
	r, err2 := e.NewDecryptReader(ctx, bytes.NewReader(stream), ectx)
	if err2 == nil {
		got2, err2 = io.ReadAll(r)
	}
	if (err1 == nil) != (err2 == nil) {
		t.Fatalf("Decrypt and the reader disagree: %v / %v", err1, err2)
	}
	if err1 == nil && !bytes.Equal(got1, got2) {
		t.Fatal("Decrypt and the reader return different plaintexts")
	}
	if err1 != nil {
		return nil, err1
	}
	return got1, nil
}

var update = flag.Bool("update", false, "rewrite testdata/stream-vectors.json and the fuzz seed corpora")

// testDataKey, testSalt and testHandle make streams reproducible, for the
// vectors and the fuzzers; none of them needs to be secret there.
var (
	testDataKey = func() []byte {
		b := make([]byte, 32)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}()
	testSalt = func() (s [saltSize]byte) {
		for i := range s {
			s[i] = byte(0xa0 + i)
		}
		return s
	}()
	testHandle = func() string {
		bin, _ := envelope.Handle{KeyID: envelope.KeyID{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}}.MarshalBinary()
		s, err := envelope.FormatText(envelope.InternalPrefix("acme"), bin)
		if err != nil {
			panic(err)
		}
		return s
	}()
)

// staticKeys is a keySource with a fixed data key, as the Envelope's
// would be once it has resolved the handle.
func staticKeys(dataKey []byte) keySource {
	return func(h *streamHeader, signed []byte, ectx map[string]string) (streamKeys, error) {
		digest, err := contextDigest(ectx)
		if err != nil {
			return streamKeys{}, err
		}
		keys, err := deriveStreamKeys(h.version, dataKey, h.salt[:], &digest)
		if err != nil {
			return streamKeys{}, err
		}
		return keys, verifyHeader(&keys, h, signed)
	}
}

// sealWith makes a version 1 stream with a chosen data key, salt and
// handle. Under GODEBUG=fips140=only it is made without enforcement: the
// tests need version 1 streams to check that they are refused there.
func sealWith(t testing.TB, dataKey []byte, salt [saltSize]byte, handle string, ectx map[string]string, pt []byte) []byte {
	t.Helper()
	digest, err := contextDigest(ectx)
	if err != nil {
		t.Fatal(err)
	}
	var keys streamKeys
	fips140.WithoutEnforcement(func() { keys, err = deriveStreamKeys(streamV1, dataKey, salt[:], &digest) })
	if err != nil {
		t.Fatal(err)
	}
	h := streamHeader{salt: salt, handle: handle}
	return appendStream(nil, &keys, &h, pt)
}
