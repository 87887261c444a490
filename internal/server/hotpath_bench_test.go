package server

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/audit"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
)

// BenchmarkHotPath measures the server's own cost of the two hot request
// shapes, single and batched (100 × 1 KiB) encrypt and decrypt, in process
// (no TLS, no HTTP/2: those cost the echo and tenantcrypt the same), with
// the default per-minute audit counts, beside an "echo" that does what the
// benchmark command's bare HTTPS baseline does (read the body, decode it
// with encoding/json, encode an answer of the same shape and size) in the
// same run. Compare cpu-ns/item (the process's CPU time per item, which
// other load on the machine moves far less than ns/op), B/op and allocs/op
// of tenantcrypt against the echo of the same shape:
//
//	go test -run '^$' -bench HotPath -benchmem ./internal/server
//	go test -run '^$' -bench 'HotPath/batch-encrypt' -benchmem -cpuprofile cpu.out ./internal/server
//	go tool pprof -top cpu.out
func BenchmarkHotPath(b *testing.B) {
	ring, st := newRing(b)
	signer, err := audit.LoadOrCreateSigner(filepath.Join(b.TempDir(), "audit.json"))
	if err != nil {
		b.Fatal(err)
	}
	l, err := audit.New(audit.Config{Store: st, Signer: signer})
	if err != nil {
		b.Fatal(err)
	}
	l.Start()
	b.Cleanup(l.Close)
	svc := principalAuth{auth.Principal{Subject: "svc", TenantID: "acme", Roles: []auth.Role{auth.RoleService}}}
	h := New(Config{Keyring: ring, Auth: svc, Audit: l}).Handler()

	bodies := hotBodies(b, h)
	for _, bb := range bodies {
		b.Run(bb.name+"/echo", func(b *testing.B) {
			echo := echoHandler(bb.batch, bb.path == "/api/v1/encryption/decrypt", bb.answerLen)
			benchServe(b, echo, bb.path, bb.body, bb.items)
		})
		b.Run(bb.name+"/tenantcrypt", func(b *testing.B) {
			benchServe(b, h, bb.path, bb.body, bb.items)
		})
	}
}

type hotBody struct {
	name, path string
	body       []byte
	items      int
	batch      bool
	answerLen  int // the length of one answer's string (ciphertext or base64 plaintext)
}

// hotBodies makes the four bodies: 1 KiB random plaintexts with a small
// encryption context, and their ciphertexts (made through h).
func hotBodies(b *testing.B, h http.Handler) []hotBody {
	const n = 100
	ctx := map[string]string{"app": "bench"}
	var encItems []api.EncryptRequest
	var decReqs []api.DecryptRequest
	for range n {
		pt := make([]byte, 1024)
		_, _ = rand.Read(pt)
		encItems = append(encItems, api.EncryptRequest{Plaintext: base64.StdEncoding.EncodeToString(pt), Context: ctx})
	}
	single, _ := json.Marshal(encItems[0])
	batch, _ := json.Marshal(api.BatchRequest[api.EncryptRequest]{Items: encItems})
	rec := serve(h, "/api/v1/encryption/encrypt", batch)
	if rec.Code != 200 {
		b.Fatalf("encrypt: %d %s", rec.Code, rec.Body)
	}
	var out api.BatchResponse[api.EncryptResponse]
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || len(out.Items) != n {
		b.Fatalf("encrypt answer: %v", err)
	}
	for _, it := range out.Items {
		if it.Result == nil {
			b.Fatalf("encrypt item: %+v", it.Error)
		}
		decReqs = append(decReqs, api.DecryptRequest{Ciphertext: it.Result.Ciphertext, Context: ctx})
	}
	decSingle, _ := json.Marshal(decReqs[0])
	decBatch, _ := json.Marshal(api.BatchRequest[api.DecryptRequest]{Items: decReqs})
	ctLen := len(decReqs[0].Ciphertext)
	ptLen := len(encItems[0].Plaintext)
	return []hotBody{
		{"single-encrypt", "/api/v1/encryption/encrypt", single, 1, false, ctLen},
		{"single-decrypt", "/api/v1/encryption/decrypt", decSingle, 1, false, ptLen},
		{"batch-encrypt", "/api/v1/encryption/encrypt", batch, n, true, ctLen},
		{"batch-decrypt", "/api/v1/encryption/decrypt", decBatch, n, true, ptLen},
	}
}

func serve(h http.Handler, path string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer x")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// discardWriter is a ResponseWriter that keeps nothing, so that the
// benchmark measures the handler, not a recorder's buffer.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(s int)           { w.status = s }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

func benchServe(b *testing.B, h http.Handler, path string, body []byte, items int) {
	b.SetBytes(int64(len(body)))
	rd := bytes.NewReader(body)
	req := httptest.NewRequest(http.MethodPost, path, rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer x")
	w := &discardWriter{h: http.Header{}}
	cpu := processCPU()
	for b.Loop() {
		rd.Reset(body)
		req.Body = io.NopCloser(rd)
		req.ContentLength = int64(len(body))
		clear(w.h)
		w.status = 0
		h.ServeHTTP(w, req)
		if w.status != 200 {
			b.Fatalf("status %d", w.status)
		}
	}
	// CPU time of the whole process (the garbage collector and the audit
	// log's goroutine included) per item: the figure to compare on a
	// shared machine, where the wall-clock ns/op moves with the load.
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N*items), "cpu-ns/item")
}

// echoHandler is the benchmark command's baseline (bench/baseline.go) in
// process: the header's presence, the body read, encoding/json decoding of
// the request type with unknown fields refused, and an answer of the same
// shape and size.
func echoHandler(batch, decrypt bool, answerLen int) http.Handler {
	answer := string(bytes.Repeat([]byte("A"), answerLen))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.Header.Get("Authorization") == "" {
			w.WriteHeader(401)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(400)
			return
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		var v any
		switch {
		case batch && decrypt:
			var req api.BatchRequest[api.DecryptRequest]
			err = dec.Decode(&req)
			v = batchAnswer(len(req.Items), answer)
		case batch:
			var req api.BatchRequest[api.EncryptRequest]
			err = dec.Decode(&req)
			v = batchAnswer(len(req.Items), answer)
		case decrypt:
			var req api.DecryptRequest
			err = dec.Decode(&req)
			v = api.EncryptResponse{Ciphertext: answer}
		default:
			var req api.EncryptRequest
			err = dec.Decode(&req)
			v = api.EncryptResponse{Ciphertext: answer}
		}
		if err != nil {
			w.WriteHeader(400)
			return
		}
		bb, _ := json.Marshal(v)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(bb)+1))
		w.WriteHeader(200)
		_, _ = w.Write(append(bb, '\n'))
	})
}

func batchAnswer(n int, answer string) api.BatchResponse[api.EncryptResponse] {
	out := api.BatchResponse[api.EncryptResponse]{Items: make([]api.BatchItem[api.EncryptResponse], n)}
	for i := range out.Items {
		out.Items[i].Result = &api.EncryptResponse{Ciphertext: answer}
	}
	return out
}
