package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
)

// fakeRing is a deterministic keyring for the differential tests: a
// "ciphertext" is the context's digest and the plaintext in base64url, so
// that the fast and the general path give byte-identical answers. Some
// inputs fail on purpose, to cover the error paths: a context key "fail"
// is an internal error (500), a plaintext "quota" is refused by the quota,
// a context key "html" makes a ciphertext that JSON must escape.
type fakeRing struct {
	Keyring // nil: only the data-plane methods below are called
}

func (fakeRing) Encrypt(_ context.Context, tenantID string, ectx envelope.Context, pt []byte) (string, error) {
	if err := ectx.Validate(); err != nil {
		return "", &fault.InputError{Field: "context", Reason: err.Error()}
	}
	if _, ok := ectx["fail"]; ok {
		return "", errors.New("the fake keyring fails")
	}
	d, _ := ectx.Digest()
	ct := "#F#:" + tenantID + ":" + hex.EncodeToString(d[:4]) + "." + base64.RawURLEncoding.EncodeToString(pt)
	if _, ok := ectx["html"]; ok {
		ct += "<&>\u2028"
	}
	return ct, nil
}

func (fakeRing) Decrypt(_ context.Context, tenantID string, ectx envelope.Context, text string) ([]byte, error) {
	if err := ectx.Validate(); err != nil {
		return nil, &fault.InputError{Field: "context", Reason: err.Error()}
	}
	d, _ := ectx.Digest()
	rest, ok := strings.CutPrefix(text, "#F#:"+tenantID+":"+hex.EncodeToString(d[:4])+".")
	if !ok {
		return nil, keyring.ErrDecrypt
	}
	return base64.RawURLEncoding.DecodeString(rest)
}

func (fakeRing) Admit(_ context.Context, _ string, n int) error {
	if n == 7 {
		// A batch of 7 is over the fake's quota: every item refused.
		return &keyring.RateLimitError{TenantID: "acme", Quota: keyring.Quota{Rate: 1, Burst: 1000}, RetryAfter: 1}
	}
	return nil
}

// fakeBatchRing is fakeRing with the batch forms, as their contract
// says: item by item, each as alone, and text forms that need no JSON
// escaping (so its Encrypt never adds fakeRing's "html" suffix; fakeRing's
// servers cover escaping).
type fakeBatchRing struct{ fakeRing }

func (f fakeBatchRing) Encrypt(ctx context.Context, tenantID string, ectx envelope.Context, pt []byte) (string, error) {
	ct, err := f.fakeRing.Encrypt(ctx, tenantID, ectx, pt)
	return strings.TrimSuffix(ct, "<&>\u2028"), err
}

func (f fakeBatchRing) EncryptBatch(ctx context.Context, tenantID string, n int,
	item func(i int) (envelope.Context, []byte, error), done func(i int, text []byte, err error)) {
	for i := range n {
		ectx, pt, err := item(i)
		var text string
		if err == nil {
			text, err = f.Encrypt(ctx, tenantID, ectx, pt)
		}
		done(i, []byte(text), err)
	}
}

func (f fakeBatchRing) DecryptBatch(ctx context.Context, tenantID string, n int,
	item func(i int) (envelope.Context, []byte, error), done func(i int, pt []byte, err error)) {
	for i := range n {
		ectx, text, err := item(i)
		var pt []byte
		if err == nil {
			pt, err = f.Decrypt(ctx, tenantID, ectx, string(text))
		}
		done(i, pt, err)
		clear(pt) // as the contract allows: valid until done returns
	}
}

var _ batchKeyring = fakeBatchRing{}

// answer is what a handler produced: its status, headers of note, body
// and the audit counts of its items.
type answer struct {
	status int
	ctype  string
	length string
	body   string
	items  string
}

func runHandler(s *Server, path string, body []byte, h func(w http.ResponseWriter, r *http.Request) error) answer {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req = req.WithContext(context.WithValue(req.Context(), principalKey, auth.Principal{Subject: "svc", TenantID: "acme", Roles: []auth.Role{auth.RoleService}}))
	rec := httptest.NewRecorder()
	sw := &statusWriter{ResponseWriter: rec}
	if err := h(sw, req); err != nil {
		s.writeError(sw, req, err)
	}
	return answer{status: rec.Code, ctype: rec.Header().Get("Content-Type"), length: rec.Header().Get("Content-Length"),
		body: rec.Body.String(), items: fmt.Sprint(sw.items)}
}

// differential serves body through the fast path (the handler) and
// through the general path alone, and fails unless both answer the same
// bytes with the same audit counts. It reports whether the fast path
// read the body itself.
func differential(t testing.TB, s *Server, decrypt bool, body []byte) bool {
	t.Helper()
	orig := bytes.Clone(body)
	path, op, handler := "/api/v1/encryption/encrypt", hotEncrypt, s.encrypt
	general := func(w http.ResponseWriter, r *http.Request) error { return dataPlane(s, w, r, s.encryptOne) }
	if decrypt {
		path, op, handler = "/api/v1/encryption/decrypt", hotDecrypt, s.decrypt
		general = func(w http.ResponseWriter, r *http.Request) error { return dataPlane(s, w, r, s.decryptOne) }
	}
	fast := runHandler(s, path, body, handler)
	slow := runHandler(s, path, body, general)
	if fast != slow {
		t.Fatalf("body %q (decrypt %v):\nfast path    %+v\ngeneral path %+v", body, decrypt, fast, slow)
	}
	var req hotRequest
	took := parseHot(body, op.field, &req)
	if !bytes.Equal(body, orig) {
		t.Fatal("parseHot modified its input")
	}
	if took {
		sameValues(t, body, decrypt, &req)
	}
	return took
}

// sameValues checks that the general path decodes what the fast path
// read to the same values.
func sameValues(t testing.TB, body []byte, decrypt bool, req *hotRequest) {
	t.Helper()
	type item struct {
		value string
		ectx  map[string]string
	}
	var want []item
	var err error
	add := func(v string, c map[string]string) { want = append(want, item{v, c}) }
	switch {
	case decrypt && req.batch:
		var b api.BatchRequest[api.DecryptRequest]
		if err = decodeStrict(body, &b); err == nil {
			for _, it := range b.Items {
				add(it.Ciphertext, it.Context)
			}
		}
	case decrypt:
		var r api.DecryptRequest
		if err = decodeStrict(body, &r); err == nil {
			add(r.Ciphertext, r.Context)
		}
	case req.batch:
		var b api.BatchRequest[api.EncryptRequest]
		if err = decodeStrict(body, &b); err == nil {
			for _, it := range b.Items {
				add(it.Plaintext, it.Context)
			}
		}
	default:
		var r api.EncryptRequest
		if err = decodeStrict(body, &r); err == nil {
			add(r.Plaintext, r.Context)
		}
	}
	if err != nil {
		t.Fatalf("the fast path read %q, which the general path refuses: %v", body, err)
	}
	if len(want) != len(req.items) {
		t.Fatalf("%q: fast path read %d items, general path %d", body, len(req.items), len(want))
	}
	for i, w := range want {
		got := req.items[i]
		if string(got.value) != w.value || !maps.Equal(got.ectx, w.ectx) {
			t.Fatalf("%q item %d: fast path read %q %v, general path %q %v", body, i, got.value, got.ectx, w.value, w.ectx)
		}
	}
}

// newFakeServers are a server on fakeRing and one on fakeBatchRing.
func newFakeServers() []*Server {
	var servers []*Server
	for _, ring := range []Keyring{fakeRing{}, fakeBatchRing{}} {
		servers = append(servers, New(Config{Keyring: ring, Auth: principalAuth{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	}
	return servers
}

// TestHotPathDifferential: for bodies the fast path reads and bodies it
// leaves to the general path, the answers are the same bytes.
func TestHotPathDifferential(t *testing.T) {
	t.Parallel()
	servers := newFakeServers()
	ct := func(pt, ctx string) string { // a fake ciphertext of pt under {"app": ctx}
		c, _ := fakeRing{}.Encrypt(context.Background(), "acme", envelope.Context{"app": ctx}, []byte(pt))
		return c
	}
	many := func(n int, item string) string {
		return `{"items":[` + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + `]}`
	}
	tests := []struct {
		name    string
		decrypt bool
		body    string
		fast    bool // the fast path reads it itself
	}{
		{"encrypt", false, `{"plaintext":"aGVsbG8=","context":{"app":"x"}}`, true},
		{"encrypt, no context", false, `{"plaintext":"aGVsbG8="}`, true},
		{"encrypt, context first", false, `{"context":{"app":"x"},"plaintext":"aGVsbG8="}`, true},
		{"encrypt, empty object", false, `{}`, true},
		{"encrypt, empty context", false, `{"plaintext":"","context":{}}`, true},
		{"encrypt, spaces", false, " \n{ \"plaintext\" :\t\"aGVsbG8=\" , \"context\" : { \"a\" : \"b\" , \"c\" : \"d\" } }\r\n", true},
		{"encrypt, non-ASCII context", false, `{"plaintext":"aGk=","context":{"é😀":"ü"}}`, true},
		{"encrypt, bad base64", false, `{"plaintext":"aGk"}`, true},
		{"encrypt, base64 bad padding bits", false, `{"plaintext":"aGl="}`, true},
		{"encrypt, empty context key", false, `{"plaintext":"aGk=","context":{"":"v"}}`, true},
		{"encrypt, failing keyring", false, `{"plaintext":"aGk=","context":{"fail":"1"}}`, true},
		{"encrypt, ciphertext to escape", false, `{"plaintext":"aGk=","context":{"html":"1"}}`, true},
		{"batch encrypt", false, `{"items":[{"plaintext":"YQ=="},{"plaintext":"Yg==","context":{"k":"v"}}]}`, true},
		{"batch, shared context", false, many(50, `{"plaintext":"YQ==","context":{"app":"x"}}`), true},
		{"batch, item errors", false, `{"items":[{"plaintext":"YQ=="},{"plaintext":"!"},{"plaintext":"YQ==","context":{"fail":""}},{"plaintext":"Yg=="},{"plaintext":"?"}]}`, true},
		{"batch, over quota", false, many(7, `{"plaintext":"YQ=="}`), true},
		{"batch, 1000 items", false, many(1000, `{"plaintext":"YQ=="}`), true},
		{"batch, empty item", false, `{"items":[{}]}`, true},
		{"decrypt", true, `{"ciphertext":"` + ct("hello", "x") + `","context":{"app":"x"}}`, true},
		{"decrypt, wrong context", true, `{"ciphertext":"` + ct("hello", "x") + `","context":{"app":"y"}}`, true},
		{"decrypt, missing", true, `{"context":{"app":"y"}}`, true},
		{"batch decrypt", true, `{"items":[{"ciphertext":"` + ct("a", "x") + `","context":{"app":"x"}},{"ciphertext":"nope"},{}]}`, true},

		// Left to the general path.
		{"escape in a value", false, `{"plaintext":"aGVsbG8\u003d"}`, false},
		{"escape in a name", false, `{"pl\u0061intext":"aGVsbG8="}`, false},
		{"escape in the context", false, `{"plaintext":"aGk=","context":{"k":"\n"}}`, false},
		{"lone surrogate", false, `{"plaintext":"aGk=","context":{"k":"\ud800"}}`, false},
		{"invalid UTF-8", false, "{\"plaintext\":\"aGk=\",\"context\":{\"k\":\"\xff\"}}", false},
		{"invalid UTF-8 in the value", false, "{\"plaintext\":\"aGk=\xc3\"}", false},
		{"duplicate field", false, `{"plaintext":"aGk=","plaintext":"aGk="}`, false},
		{"duplicate context key", false, `{"plaintext":"aGk=","context":{"k":"a","k":"b"}}`, false},
		{"duplicate context", false, `{"context":{},"context":{}}`, false},
		{"unknown field", false, `{"plaintext":"aGk=","extra":1}`, false},
		{"case-mismatched field", false, `{"Plaintext":"aGk="}`, false},
		{"the other op's field", false, `{"ciphertext":"x"}`, false},
		{"null context", false, `{"plaintext":"aGk=","context":null}`, false},
		{"number in context", false, `{"plaintext":"aGk=","context":{"k":1}}`, false},
		{"null value", false, `{"plaintext":null}`, false},
		{"trailing data", false, `{"plaintext":"aGk="} {}`, false},
		{"trailing comma", false, `{"plaintext":"aGk=",}`, false},
		{"truncated", false, `{"plaintext":"aGk=`, false},
		{"empty body", false, ``, false},
		{"array body", false, `[{"plaintext":"aGk="}]`, false},
		{"items not first", false, `{"plaintext":"aGk=","items":[]}`, false},
		{"items after context", false, `{"context":{},"items":[{"plaintext":"aGk="}]}`, false},
		{"batch with another name", false, `{"items":[{"plaintext":"aGk="}],"extra":1}`, false},
		{"empty batch", false, `{"items":[]}`, false},
		{"batch of 1001", false, many(1001, `{"plaintext":"YQ=="}`), false},
		{"null items", false, `{"items":null}`, false},
		{"big context", false, `{"plaintext":"aGk=","context":{` + manyKeys(20) + `}}`, false},
		{"control character", false, "{\"plaintext\":\"a\tGk=\"}", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, s := range servers {
				if took := differential(t, s, tt.decrypt, []byte(tt.body)); took != tt.fast {
					t.Errorf("the fast path read it: %v, want %v", took, tt.fast)
				}
			}
		})
	}
}

// FuzzHotPath is the differential fuzzer of the fast path: whatever the
// body, the answer (status, bytes, audit counts) is the general path's,
// and what the fast path reads the general path decodes to the same
// values. The seeds in testdata/fuzz/FuzzHotPath are bodies of both
// shapes and near misses.
//
//	go test -run '^$' -fuzz FuzzHotPath -fuzztime 1m ./internal/server
func FuzzHotPath(f *testing.F) {
	servers := newFakeServers()
	f.Fuzz(func(t *testing.T, body []byte, decrypt bool) {
		for _, s := range servers {
			differential(t, s, decrypt, body)
		}
	})
}

func TestFuzzHotPathSeeds(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzHotPath", "*"))
	if err != nil || len(files) < 10 {
		t.Fatalf("testdata/fuzz/FuzzHotPath has %d seeds (%v), want at least 10", len(files), err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || !bytes.HasPrefix(b, []byte("go test fuzz v1\n[]byte(")) {
			t.Errorf("%s is not a []byte seed: %v", f, err)
		}
	}
}

// TestJSONText checks the word test against the byte loop it stands for,
// byte value by byte value at every position of a word and of the tail.
func TestJSONText(t *testing.T) {
	t.Parallel()
	for _, n := range []int{8, 11, 16} {
		for pos := range n {
			for c := range 256 {
				if c == '"' || c == '\\' {
					continue // str has refused these already
				}
				b := bytes.Repeat([]byte("A"), n)
				b[pos] = byte(c)
				want := c >= 0x20 && utf8.Valid(b)
				if got := jsonText(b); got != want {
					t.Errorf("jsonText(%q) = %v, want %v", b, got, want)
				}
			}
		}
	}
	// Neighbouring bytes must not hide one another (borrows), and
	// multi-byte characters across words stay valid.
	for s, want := range map[string]bool{
		"\x00\x01AAAAAA": false, "\x1f\x20AAAAAA": false, "\x7f\x80AAAAAA": false,
		"\xff\x00AAAAAA": false, "AAAAAAA\xc3\xa9BBBBBBB": true, "AAAAAAA\xc3": false,
		"AAAAAAAA\x1fAAAAAAA": false, "😀😀😀😀": true, "": true,
	} {
		if got := jsonText([]byte(s)); got != want {
			t.Errorf("jsonText(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestJSONSafe8 checks the word test against the byte loop it stands
// for, and appendJSONString against encoding/json.
func TestJSONSafe8(t *testing.T) {
	t.Parallel()
	for pos := range 8 {
		for c := range 256 {
			b := []byte("AAAAAAAA")
			b[pos] = byte(c)
			want := c >= 0x20 && c < 0x7f && !strings.ContainsRune(`"\<>&`, rune(c))
			if got := jsonSafe8(string(b)); got != want {
				t.Errorf("jsonSafe8(%q) = %v, want %v", b, got, want)
			}
			s := "#QLIKv1#:acme:" + string(b) + "x"
			want2, _ := json.Marshal(s)
			if got := appendJSONString(nil, s); !bytes.Equal(got, want2) {
				t.Errorf("appendJSONString(%q) = %s, want %s", s, got, want2)
			}
		}
	}
	for _, s := range []string{"\x7e\x7f~~~~~~", "\xff\x00AAAAAA", "~\x1f!AAAAA", "%&'AAAAA"} {
		if jsonSafe8(s) {
			t.Errorf("jsonSafe8(%q) = true", s)
		}
	}
}

// TestHotPathZeroesBuffers: the pooled buffers hold no plaintext once a
// request is answered.
func TestHotPathZeroesBuffers(t *testing.T) {
	b := getBuffer()
	*b = append((*b)[:0], "secret plaintext"...)
	full := (*b)[:cap(*b)]
	putBuffer(b)
	if !reflect.DeepEqual(full, make([]byte, len(full))) {
		t.Errorf("a pooled buffer kept %q", full)
	}
	old := make([]byte, 4, 8)
	copy(old, "abcd")
	_ = growBuffer(old, 100)
	if !bytes.Equal(old[:cap(old)], make([]byte, 8)) {
		t.Errorf("growBuffer left %q behind", old[:cap(old)])
	}
}

// TestHotPathConcurrent drives the fast path from several goroutines at
// once on the real keyring, single and batched, and checks every answer
// against its own request: a pooled buffer reused while still in use
// would mix one request's bytes into another's answer (run it with -race
// too).
func TestHotPathConcurrent(t *testing.T) {
	ring, _ := newRing(t)
	svc := principalAuth{auth.Principal{Subject: "svc", TenantID: "acme", Roles: []auth.Role{auth.RoleService}}}
	h := New(Config{Keyring: ring, Auth: svc}).Handler()
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			errs <- func() error {
				for n := range 10 {
					items := 1 + (g+n)%5
					var reqs []api.EncryptRequest
					for i := range items {
						pt := bytes.Repeat([]byte{byte('a' + g)}, 100+g*300+i)
						reqs = append(reqs, api.EncryptRequest{Plaintext: base64.StdEncoding.EncodeToString(pt), Context: map[string]string{"g": fmt.Sprint(g)}})
					}
					var body []byte
					if items == 1 {
						body, _ = json.Marshal(reqs[0])
					} else {
						body, _ = json.Marshal(api.BatchRequest[api.EncryptRequest]{Items: reqs})
					}
					rec := serve(h, "/api/v1/encryption/encrypt", body)
					var cts []string
					if items == 1 {
						var out api.EncryptResponse
						if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || rec.Code != 200 {
							return fmt.Errorf("encrypt: %d %s", rec.Code, rec.Body)
						}
						cts = append(cts, out.Ciphertext)
					} else {
						var out api.BatchResponse[api.EncryptResponse]
						if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || rec.Code != 200 || len(out.Items) != items {
							return fmt.Errorf("batch encrypt: %d %s", rec.Code, rec.Body)
						}
						for _, it := range out.Items {
							if it.Result == nil {
								return fmt.Errorf("batch encrypt item: %+v", it.Error)
							}
							cts = append(cts, it.Result.Ciphertext)
						}
					}
					var dec []api.DecryptRequest
					for _, ct := range cts {
						dec = append(dec, api.DecryptRequest{Ciphertext: ct, Context: map[string]string{"g": fmt.Sprint(g)}})
					}
					body, _ = json.Marshal(api.BatchRequest[api.DecryptRequest]{Items: dec})
					rec = serve(h, "/api/v1/encryption/decrypt", body)
					var out api.BatchResponse[api.DecryptResponse]
					if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || rec.Code != 200 || len(out.Items) != items {
						return fmt.Errorf("batch decrypt: %d %s", rec.Code, rec.Body)
					}
					for i, it := range out.Items {
						if it.Result == nil || it.Result.Plaintext != reqs[i].Plaintext {
							return fmt.Errorf("goroutine %d item %d decrypts to %+v, want its plaintext", g, i, it)
						}
					}
				}
				return nil
			}()
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
