package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/client"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/testkms"
	"github.com/tenantcrypt/tenantcrypt/internal/tlsconfig"
)

// The Go client against the real service: TLS with the server's
// development CA, JWTs from its built-in issuer, SQLite.

// clientSegment is the client stream format's segment size (64 KiB).
const clientSegment = 64 << 10

// countingTransport counts the requests a client sends, by path.
type countingTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n[r.URL.Path]++
	c.mu.Unlock()
	return c.base.RoundTrip(r)
}

// count is the requests to path so far (all paths when empty).
func (c *countingTransport) count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if path != "" {
		return c.n[path]
	}
	total := 0
	for _, n := range c.n {
		total += n
	}
	return total
}

// client is a Go client of the server with the given token, trusting its
// development CA, whose requests are counted.
func (ts *testServer) client(t testing.TB, token string, opts ...client.Option) (*client.Client, *countingTransport) {
	t.Helper()
	tlsCfg, err := tlsconfig.ClientConfig(filepath.Join(ts.dataDir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ct := &countingTransport{base: &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64}, n: map[string]int{}}
	c, err := client.New(ts.url, append([]client.Option{
		client.WithHTTPClient(&http.Client{Transport: ct, Timeout: 30 * time.Second}),
		client.WithToken(token)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.PurgeKeys)
	return c, ct
}

const (
	dataKeysPath     = "/api/v1/encryption/datakeys"
	dataKeyResolPath = "/api/v1/encryption/datakeys/decrypt"
)

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestClientEnvelope: streams round trip through the real service's data
// keys, tenant B cannot open tenant A's streams, altered streams fail, and
// 10,000 encryptions cost one request to the service.
func TestClientEnvelope(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	admin, _ := ts.client(t, ts.token(auth.RolePlatformAdmin, ""))
	ctx := context.Background()
	for _, id := range []string{"acme", "globex"} {
		if _, err := admin.CreateTenant(ctx, api.CreateTenantRequest{ID: id, Name: id, Edition: "enterprise"}); err != nil {
			t.Fatalf("create tenant %s: %v", id, err)
		}
	}
	if _, err := admin.CreateTenant(ctx, api.CreateTenantRequest{ID: "acme", Name: "again", Edition: "enterprise"}); !client.IsCode(err, api.CodeTenantExists) {
		t.Errorf("create an existing tenant: %v, want Encryption-08", err)
	}
	a, _ := ts.client(t, ts.token(auth.RoleService, "acme"))
	b, _ := ts.client(t, ts.token(auth.RoleService, "globex"))
	ea, eb := a.Envelope(), b.Envelope()
	ectx := map[string]string{"object": "reports/q1.pdf"}

	t.Run("round trips", func(t *testing.T) {
		for _, n := range []int{0, 1, clientSegment - 1, clientSegment, clientSegment + 1, 3*clientSegment + 7} {
			pt := randomBytes(t, n)
			sealed, err := ea.Encrypt(ctx, pt, ectx)
			if err != nil {
				t.Fatal(err)
			}
			var streamed bytes.Buffer
			w, err := ea.NewEncryptWriter(ctx, &streamed, ectx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(w, bytes.NewReader(pt)); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			for name, s := range map[string][]byte{"Encrypt": sealed, "writer": streamed.Bytes()} {
				got, err := ea.Decrypt(ctx, s, ectx)
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("%d bytes, %s, Decrypt: %v", n, name, err)
				}
				r, err := ea.NewDecryptReader(ctx, bytes.NewReader(s), ectx)
				if err != nil {
					t.Fatal(err)
				}
				if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("%d bytes, %s, reader: %v", n, name, err)
				}
			}
		}
	})

	sealed, err := ea.Encrypt(ctx, randomBytes(t, 2*clientSegment+100), ectx)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("tenant B cannot decrypt tenant A's stream", func(t *testing.T) {
		_, err := eb.Decrypt(ctx, sealed, ectx)
		var e *client.Error
		if !errors.Is(err, client.ErrDecryptionFailed) || !errors.As(err, &e) || e.StatusCode != 400 || e.Code != api.CodeDecryptionFailed {
			t.Fatalf("tenant B decrypting A's stream: %v, want 400 Encryption-09", err)
		}
		if _, err := eb.NewDecryptReader(ctx, bytes.NewReader(sealed), ectx); !errors.Is(err, client.ErrDecryptionFailed) {
			t.Fatalf("tenant B's reader: %v", err)
		}
		// A fresh client of A, which must ask the service, can.
		a2, _ := ts.client(t, ts.token(auth.RoleService, "acme"))
		if _, err := a2.Envelope().Decrypt(ctx, sealed, ectx); err != nil {
			t.Fatalf("another client of A: %v", err)
		}
	})
	t.Run("altered streams fail", func(t *testing.T) {
		a2, _ := ts.client(t, ts.token(auth.RoleService, "acme"))
		hlen := 4 + 32 + 1 + int(sealed[36]) + 32
		flipped := bytes.Clone(sealed)
		flipped[hlen+clientSegment+20] ^= 1
		swapped := bytes.Clone(sealed[:hlen])
		swapped = append(swapped, sealed[hlen+clientSegment+16:hlen+2*(clientSegment+16)]...)
		swapped = append(swapped, sealed[hlen:hlen+clientSegment+16]...)
		swapped = append(swapped, sealed[hlen+2*(clientSegment+16):]...)
		for name, bad := range map[string][]byte{
			"truncated":       sealed[:len(sealed)-17],
			"cut at segment":  sealed[:hlen+clientSegment+16],
			"extended":        append(bytes.Clone(sealed), sealed[hlen:hlen+16]...),
			"reordered":       swapped,
			"bit flipped":     flipped,
			"another context": sealed,
		} {
			ectx := ectx
			if name == "another context" {
				ectx = map[string]string{"object": "reports/q2.pdf"}
			}
			for _, e := range []*client.Envelope{ea, a2.Envelope()} {
				if _, err := e.Decrypt(ctx, bad, ectx); !errors.Is(err, client.ErrDecryptionFailed) {
					t.Errorf("%s: %v, want ErrDecryptionFailed", name, err)
				}
				r, err := e.NewDecryptReader(ctx, bytes.NewReader(bad), ectx)
				if err == nil {
					_, err = io.Copy(io.Discard, r)
				}
				if !errors.Is(err, client.ErrDecryptionFailed) {
					t.Errorf("%s, reader: %v, want ErrDecryptionFailed", name, err)
				}
			}
		}
	})

	t.Run("service calls per 10,000 encryptions", func(t *testing.T) {
		// A generous MaxAge, so that a slow run cannot add a key.
		w, wc := ts.client(t, ts.token(auth.RoleService, "acme"), client.WithKeyCache(client.KeyCacheConfig{MaxAge: time.Hour}))
		const n = 10000
		pt := randomBytes(t, 1024)
		sealed := make([][]byte, n)
		for i := range n {
			var err error
			if sealed[i], err = w.Envelope().Encrypt(ctx, pt, map[string]string{"object": fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		enc := wc.count("")
		for i := range n {
			if _, err := w.Envelope().Decrypt(ctx, sealed[i], map[string]string{"object": fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		ownDec := wc.count("") - enc
		r, rc := ts.client(t, ts.token(auth.RoleService, "acme"))
		for i := range n {
			if _, err := r.Envelope().Decrypt(ctx, sealed[i], map[string]string{"object": fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("service calls: %d per %d encryptions (%d datakeys), %d for decrypting them in the same client, %d in another client (%d datakeys/decrypt)",
			enc, n, wc.count(dataKeysPath), ownDec, rc.count(""), rc.count(dataKeyResolPath))
		if enc != 1 || wc.count(dataKeysPath) != 1 || ownDec != 0 || rc.count("") != 1 || rc.count(dataKeyResolPath) != 1 {
			t.Errorf("service calls: %d per %d encryptions, %d and %d for decryptions; want 1, 0 and 1", enc, n, ownDec, rc.count(""))
		}
	})

	t.Run("service data plane", func(t *testing.T) {
		ct, err := a.Encrypt(ctx, []byte("hunter2"), ectx)
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := a.Decrypt(ctx, ct, ectx); err != nil || string(pt) != "hunter2" {
			t.Fatalf("decrypt: %q %v", pt, err)
		}
		if _, err := a.Decrypt(ctx, ct, nil); !errors.Is(err, client.ErrDecryptionFailed) {
			t.Errorf("decrypt with another context: %v", err)
		}
		if _, err := b.Decrypt(ctx, ct, ectx); !errors.Is(err, client.ErrDecryptionFailed) {
			t.Errorf("tenant B decrypting A's ciphertext: %v", err)
		}
		re, err := a.Rewrap(ctx, ct, ectx)
		if err != nil || re == ct {
			t.Fatalf("rewrap: %v", err)
		}
		dk, err := a.GenerateDataKey(ctx, ectx)
		if err != nil || len(dk.Plaintext) != 32 {
			t.Fatalf("data key: %v", err)
		}
		if key, err := a.DecryptDataKey(ctx, dk.Handle, ectx); err != nil || !bytes.Equal(key, dk.Plaintext) {
			t.Fatalf("resolve the data key: %v", err)
		}
		items, err := a.DecryptBatch(ctx, []api.DecryptRequest{{Ciphertext: ct, Context: ectx}, {Ciphertext: ct}})
		if err != nil || len(items) != 2 || items[0].Result == nil || !errors.Is(client.ItemError(items[1].Error), client.ErrDecryptionFailed) {
			t.Fatalf("batch: %v %+v", err, items)
		}
		if _, err := admin.Encrypt(ctx, []byte("x"), nil); !errors.Is(err, client.ErrForbidden) {
			t.Errorf("platform admin on the data plane: %v, want ErrForbidden", err)
		}
		iss, err := auth.LoadOrCreateIssuer(ts.dataDir, auth.DefaultIssuerName)
		if err != nil {
			t.Fatal(err)
		}
		expired, err := iss.Mint(auth.TokenRequest{Subject: "old", TenantID: "acme", Roles: []auth.Role{auth.RoleService}, TTL: -time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		old, oc := ts.client(t, expired)
		if _, err := old.Envelope().Encrypt(ctx, []byte("x"), nil); !errors.Is(err, client.ErrUnauthenticated) {
			t.Errorf("expired token: %v, want ErrUnauthenticated", err)
		}
		if oc.count("") != 1 {
			t.Errorf("an expired token was sent %d times, want once (401 is not retried)", oc.count(""))
		}
	})

	// Last: deleting tenant B destroys its keys; B's client, told so by
	// the service, purges what it had cached.
	t.Run("deleted tenant", func(t *testing.T) {
		mine, err := eb.Encrypt(ctx, []byte("globex data"), nil)
		if err != nil {
			t.Fatal(err)
		}
		b2, _ := ts.client(t, ts.token(auth.RoleService, "globex"))
		theirs, err := b2.Envelope().Encrypt(ctx, []byte("more globex data"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := admin.DeleteTenant(ctx, "globex"); err != nil {
			t.Fatal(err)
		}
		if _, err := eb.Decrypt(ctx, theirs, nil); !errors.Is(err, client.ErrTenantNotFound) {
			t.Fatalf("decrypt after the tenant's deletion: %v, want ErrTenantNotFound", err)
		}
		// The key of its own stream was cached; it is gone now.
		if _, err := eb.Decrypt(ctx, mine, nil); !errors.Is(err, client.ErrTenantNotFound) {
			t.Fatalf("decrypt of an own stream after the purge: %v, want ErrTenantNotFound", err)
		}
		if _, err := eb.Encrypt(ctx, []byte("x"), nil); !errors.Is(err, client.ErrTenantNotFound) {
			t.Fatalf("encrypt after the purge: %v", err)
		}
	})
}

// TestClientKeyProviders: the key-provider API through the Go client,
// against local-kms; a stream outlives the migrations; disabling the
// customer's key makes the client purge its cached keys on the service's
// first refusal, and enabling it brings the client back.
func TestClientKeyProviders(t *testing.T) {
	t.Parallel()
	e := startCMKEnv(t, "--revocation-bound", "2s")
	ctx := context.Background()
	ta := e.tenant(t, "acme", "enterprise")
	adm, _ := e.client(t, ta)

	all, err := adm.AllKeyProviders(ctx)
	if err != nil || len(all) != 1 || !all[0].Current || all[0].ARN != api.DefaultProviderARN {
		t.Fatalf("providers of a new tenant: %+v %v", all, err)
	}
	if ps, err := adm.KeyProviders(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("registered keys of a new tenant: %+v %v", ps, err)
	}
	if _, err := adm.MigrationDetails(ctx); !errors.Is(err, client.ErrNotFound) || !client.IsCode(err, api.CodeNoMigration) {
		t.Errorf("details without a migration: %v", err)
	}
	if _, err := adm.RegisterKeyProvider(ctx, api.RegisterKeyProviderRequest{ARN: "alias/mine", Name: "x"}); !client.IsCode(err, api.CodeMalformedARN) {
		t.Errorf("register an alias: %v, want Encryption-35", err)
	}
	mrk := e.primary.ARN(testkms.MultiRegionKeyID)
	p, err := adm.RegisterKeyProvider(ctx, api.RegisterKeyProviderRequest{ARN: mrk, Name: "Acme key"})
	fp := keyprovider.Fingerprint(mrk)
	if err != nil || p.ARNFingerPrint != fp || p.Current || !p.MultiRegion {
		t.Fatalf("register: %+v %v", p, err)
	}
	if _, err := adm.RegisterKeyProvider(ctx, api.RegisterKeyProviderRequest{ARN: mrk, Name: "again"}); !client.IsCode(err, api.CodeKeyProviderExists) {
		t.Errorf("register twice: %v", err)
	}
	desc := "rotated yearly"
	if err := adm.RenameKeyProvider(ctx, fp, "Acme production key", &desc); err != nil {
		t.Fatal(err)
	}
	if p, err := adm.KeyProvider(ctx, fp); err != nil || p.Name != "Acme production key" || p.Description != desc {
		t.Fatalf("after the rename: %+v %v", p, err)
	}
	if p, err := adm.TestKeyProvider(ctx, fp); err != nil || !p.DRCompliant {
		t.Fatalf("test: %+v %v", p, err)
	}
	if _, err := adm.KeyProvider(ctx, "0123456789abcdef0123456789abcdef"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("unknown provider: %v", err)
	}

	svc, _ := e.client(t, e.token(auth.RoleService, "acme"))
	ectx := map[string]string{"object": "before"}
	before, err := svc.Envelope().Encrypt(ctx, []byte("sealed under the internal KMS"), ectx)
	if err != nil {
		t.Fatal(err)
	}
	if h := streamHandle(before); !strings.HasPrefix(h, "#QLIKv1#:acme:") {
		t.Errorf("handle before the migration: %s", h)
	}
	m, err := adm.MigrateToKeyProvider(ctx, fp)
	if err != nil || m.MigratingToFingerprint != fp {
		t.Fatalf("migrate: %+v %v", m, err)
	}
	if err := adm.DeleteKeyProvider(ctx, fp); !client.IsCode(err, api.CodeKeyProviderInUse) {
		t.Errorf("delete the provider being migrated to: %v, want Encryption-36", err)
	}
	waitClientMigration(t, adm)

	// New streams name a data key of the customer's key; old ones still
	// open (a fresh client resolves their handle after the migration).
	s1, _ := e.client(t, e.token(auth.RoleService, "acme"))
	mine, err := s1.Envelope().Encrypt(ctx, []byte("under the CMK"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if h := streamHandle(mine); !strings.HasPrefix(h, "#BYOKv1#:"+fp+":") {
		t.Errorf("handle after the migration: %s", h)
	}
	if got, err := s1.Envelope().Decrypt(ctx, before, ectx); err != nil || string(got) != "sealed under the internal KMS" {
		t.Fatalf("a stream from before the migration: %v", err)
	}

	// The customer disables the key. The service refuses within its
	// bound; the client's first request after that purges its keys, even
	// those it could still have used.
	s2, _ := e.client(t, e.token(auth.RoleService, "acme"))
	theirs, err := s2.Envelope().Encrypt(ctx, []byte("another client's"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.customer(t).DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(testkms.MultiRegionKeyID)}); err != nil {
		t.Fatal(err)
	}
	until(t, "the service refuses the disabled key", time.Minute, func() bool {
		st, err := svc.EncryptionStatus(ctx)
		return err == nil && st.State == "key-unavailable"
	})
	if _, err := s1.Envelope().Decrypt(ctx, theirs, nil); !errors.Is(err, client.ErrKeyRevoked) {
		t.Fatalf("decrypt while the key is disabled: %v, want ErrKeyRevoked", err)
	}
	if _, err := s1.Envelope().Decrypt(ctx, mine, nil); !errors.Is(err, client.ErrKeyRevoked) {
		t.Fatalf("decrypt of the client's own stream after the purge: %v, want ErrKeyRevoked", err)
	}
	if _, err := s1.Envelope().Encrypt(ctx, []byte("x"), nil); !errors.Is(err, client.ErrKeyRevoked) {
		t.Fatalf("encrypt while the key is disabled: %v, want ErrKeyRevoked", err)
	}
	if _, err := e.customer(t).EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(testkms.MultiRegionKeyID)}); err != nil {
		t.Fatal(err)
	}
	until(t, "the client works again", time.Minute, func() bool {
		_, err := s1.Envelope().Decrypt(ctx, mine, nil)
		return err == nil
	})

	m, started, err := adm.ResetToDefaultProvider(ctx)
	if err != nil || !started || m.MigratingTo != api.DefaultProviderARN {
		t.Fatalf("reset: %+v %v %v", m, started, err)
	}
	waitClientMigration(t, adm)
	if _, started, err := adm.ResetToDefaultProvider(ctx); err != nil || started {
		t.Errorf("reset when on the default already: %v %v", started, err)
	}
	s3, _ := e.client(t, e.token(auth.RoleService, "acme"))
	for _, s := range [][]byte{mine, theirs} {
		if _, err := s3.Envelope().Decrypt(ctx, s, nil); err != nil {
			t.Errorf("a stream after the reset: %v", err)
		}
	}
	if err := adm.DeleteKeyProvider(ctx, fp); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.KeyProvider(ctx, fp); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("deleted provider: %v", err)
	}
}

// streamHandle is the data-key handle in a client stream's header.
func streamHandle(stream []byte) string {
	return string(stream[37 : 37+int(stream[36])])
}

func waitClientMigration(t *testing.T, adm *client.Client) {
	t.Helper()
	until(t, "the migration completes", 5*time.Minute, func() bool {
		m, err := adm.MigrationDetails(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return m.State == "Completed"
	})
}

// BenchmarkClientServiceCalls counts the requests the Go client sends to
// the real service per 10,000 local encryptions of 1 KiB, with its default
// key cache:
//
//	go test -run '^$' -bench ClientServiceCalls -benchtime 10000x ./cmd/tenantcrypt
func BenchmarkClientServiceCalls(b *testing.B) {
	ts := startServer(b, nil, "--log-level", "warn")
	admin, _ := ts.client(b, ts.token(auth.RolePlatformAdmin, ""))
	ctx := context.Background()
	if _, err := admin.CreateTenant(ctx, api.CreateTenantRequest{ID: "bench", Name: "bench", Edition: "enterprise"}); err != nil {
		b.Fatal(err)
	}
	c, ct := ts.client(b, ts.token(auth.RoleService, "bench"))
	pt := randomBytes(b, 1024)
	b.SetBytes(1024)
	b.ResetTimer()
	for i := range b.N {
		if _, err := c.Envelope().Encrypt(ctx, pt, map[string]string{"object": fmt.Sprint(i)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(ct.count(""))*10000/float64(b.N), "calls/10k-encryptions")
}

// BenchmarkClientDataPlane is the service's own encrypt (1 KiB, TLS, JWT,
// 16 concurrent callers) sent by the Go client and by a hand-written
// caller (net/http, encoding/json, encoding/base64) in the same run, each
// caller alternating between the two and timing every request, so that
// both see the same load: ratio-to-http is what the SDK (retry policy,
// token source, error decoding) costs on top, as a ratio of latencies.
//
//	go test -run '^$' -bench ClientDataPlane ./cmd/tenantcrypt
func BenchmarkClientDataPlane(b *testing.B) {
	ts := startServer(b, nil, "--log-level", "warn")
	admin, _ := ts.client(b, ts.token(auth.RolePlatformAdmin, ""))
	ctx := context.Background()
	if _, err := admin.CreateTenant(ctx, api.CreateTenantRequest{ID: "bench", Name: "bench", Edition: "enterprise"}); err != nil {
		b.Fatal(err)
	}
	svc := ts.token(auth.RoleService, "bench")
	// One HTTP client (one HTTP/2 connection pool) for both callers.
	tlsCfg, err := tlsconfig.ClientConfig(filepath.Join(ts.dataDir, "tls", "ca.pem"))
	if err != nil {
		b.Fatal(err)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64}}
	c, err := client.New(ts.url, client.WithHTTPClient(hc), client.WithToken(svc))
	if err != nil {
		b.Fatal(err)
	}
	pt := randomBytes(b, 1024)
	ectx := map[string]string{"app": "bench"}
	byHand := func() error {
		body, err := json.Marshal(api.EncryptRequest{Plaintext: base64.StdEncoding.EncodeToString(pt), Context: ectx})
		if err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, "POST", ts.url+"/api/v1/encryption/encrypt", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+svc)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var out api.EncryptResponse
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 || out.Ciphertext == "" {
			return fmt.Errorf("status %d: %v", resp.StatusCode, err)
		}
		return nil
	}
	viaClient := func() error { _, err := c.Encrypt(ctx, pt, ectx); return err }
	var httpNs, clientNs atomic.Int64
	b.SetParallelism(8) // 16 callers on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			fn, sum := byHand, &httpNs
			if i%2 == 1 {
				fn, sum = viaClient, &clientNs
			}
			i++
			t0 := time.Now()
			if err := fn(); err != nil {
				b.Error(err)
				return
			}
			sum.Add(int64(time.Since(t0)))
		}
	})
	b.ReportMetric(float64(httpNs.Load())/float64(clientNs.Load()), "ratio-to-http")
}
