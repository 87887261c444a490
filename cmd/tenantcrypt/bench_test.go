package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
)

// BenchmarkHTTPDataPlane drives the real server in this process (TLS, JWT,
// SQLite) with parallel clients, so that one CPU profile shows the whole
// hot path:
//
//	go test -run '^$' -bench HTTPDataPlane -cpuprofile cpu.out ./cmd/tenantcrypt
//	go tool pprof -top -cum cpu.out
//
// The throughput figures that docs/PERFORMANCE.md compares come from
// `go run ./bench`, where client and servers are separate processes.
func BenchmarkHTTPDataPlane(b *testing.B) {
	benchDataPlane(b, startServer(b, nil, "--log-level", "warn"))
}

// benchDataPlane runs parallel encrypts and decrypts of 1 KiB against ts.
func benchDataPlane(b *testing.B, ts *testServer) {
	admin := ts.token(auth.RolePlatformAdmin, "")
	if r := ts.do("POST", "/api/v1/tenants", admin, map[string]any{"id": "bench", "name": "bench", "edition": "enterprise"}); r.status != 201 {
		b.Fatalf("create tenant: %d %s", r.status, r.body)
	}
	svc := ts.token(auth.RoleService, "bench")
	pt := make([]byte, 1024)
	rand.Read(pt)
	encBody, _ := json.Marshal(api.EncryptRequest{Plaintext: b64(string(pt)), Context: map[string]string{"app": "bench"}})
	var enc api.EncryptResponse
	if err := json.Unmarshal(ts.do("POST", "/api/v1/encryption/encrypt", svc, encBody).body, &enc); err != nil {
		b.Fatal(err)
	}
	decBody, _ := json.Marshal(api.DecryptRequest{Ciphertext: enc.Ciphertext, Context: map[string]string{"app": "bench"}})

	for _, op := range []struct {
		name, path string
		body       []byte
	}{{"encrypt", "/api/v1/encryption/encrypt", encBody}, {"decrypt", "/api/v1/encryption/decrypt", decBody}} {
		b.Run(op.name, func(b *testing.B) {
			b.SetParallelism(8) // 16 clients on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("POST", ts.url+op.path, bytes.NewReader(op.body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer "+svc)
					resp, err := ts.http.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}

// BenchmarkCMKDataPlane measures KMS calls per 10,000 data-plane operations
// of a tenant on a customer managed key (local-kms behind the counting
// proxy), with a warm cache: the design allows at most one.
//
//	go test -run '^$' -bench CMKDataPlane ./cmd/tenantcrypt
func BenchmarkCMKDataPlane(b *testing.B) {
	e := startCMKEnv(b)
	_, svc := e.onCMK(b, "acme")
	encBody, _ := json.Marshal(api.EncryptRequest{Plaintext: b64("a small secret"), Context: map[string]string{"app": "bench"}})
	warm := e.do("POST", "/api/v1/encryption/encrypt", svc, encBody)
	if warm.status != 200 {
		b.Fatalf("warm-up: %d %s", warm.status, warm.body)
	}
	e.pProxy.ResetCalls()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", e.url+"/api/v1/encryption/encrypt", bytes.NewReader(encBody))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+svc)
			resp, err := e.http.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.ReportMetric(float64(e.pProxy.Calls(""))*10000/float64(b.N), "kms-calls/10k-ops")
}
