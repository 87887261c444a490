package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

const internalKMSPath = "/api/v1/internal-kms"

// TestInternalKMSRotationE2E rotates the root key and a tenant's KEK
// through the platform-admin API of a real server, while a service keeps
// using the data plane, and checks that every KEK and cipherkey moved, that
// old ciphertexts and handles keep opening, also after a restart, and that
// only a platform admin may do it.
func TestInternalKMSRotationE2E(t *testing.T) {
	t.Parallel()
	for name, extra := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			args := extra(t)
			ts := startServer(t, nil, args...)
			admin := ts.token(auth.RolePlatformAdmin, "")
			acme := newTenantData(t, ts, admin, "acme", 12)
			globex := newTenantData(t, ts, admin, "globex", 3)

			t.Run("platform-admin only", func(t *testing.T) {
				tenantAdmin, svc := ts.token(auth.RoleTenantAdmin, "acme"), ts.token(auth.RoleService, "acme")
				for _, c := range []struct{ method, path string }{
					{"GET", internalKMSPath},
					{"POST", internalKMSPath + "/actions/rotate-root-key"},
					{"POST", internalKMSPath + "/actions/reload-root-keys"},
					{"POST", "/api/v1/tenants/acme/actions/rotate-key"},
				} {
					for role, tok := range map[string]string{"tenant-admin": tenantAdmin, "service": svc} {
						if r := ts.do(c.method, c.path, tok, nil); r.status != 403 || r.errorCode(t) != "Encryption-03" {
							t.Errorf("%s %s as %s: %d %s, want 403 Encryption-03", c.method, c.path, role, r.status, r.body)
						}
					}
					if r := ts.do(c.method, c.path, "", nil); r.status != 401 || r.errorCode(t) != "Encryption-02" {
						t.Errorf("%s %s without a token: %d %s, want 401", c.method, c.path, r.status, r.body)
					}
				}
				if r := ts.do("POST", "/api/v1/tenants/nope/actions/rotate-key", admin, nil); r.status != 404 || r.errorCode(t) != "Encryption-07" {
					t.Errorf("rotate-key of an unknown tenant: %d %s, want 404 Encryption-07", r.status, r.body)
				}
				if r := ts.do("GET", internalKMSPath+"/actions/rotate-root-key", admin, nil); r.status != 405 {
					t.Errorf("GET rotate-root-key: %d, want 405", r.status)
				}
			})

			// The start-up rewrap had nothing to do.
			doc := waitInternalKMS(t, ts, admin, "")
			if doc.RootKeySource != "file" || doc.CurrentRootKeyVersion != 1 || doc.Job.Trigger != "start" || doc.Job.State != "completed" {
				t.Errorf("internal KMS at start: %+v, want file source, version 1, a completed start-up run", doc)
			}
			checkSealed(t, doc, map[uint32]int{1: 2})

			load := startDataPlaneLoad(t, ts, acme)

			// Rotate the root key through the API.
			r := ts.do("POST", internalKMSPath+"/actions/rotate-root-key", admin, nil)
			if r.status != 202 {
				t.Fatalf("rotate-root-key: %d %s", r.status, r.body)
			}
			var started api.InternalKMS
			if err := jsonUnmarshal(r.body, &started); err != nil {
				t.Fatal(err)
			}
			if started.CurrentRootKeyVersion != 2 || started.Job.Kind != "rewrap-keks" || started.Job.Trigger != "rotate-root-key" || started.Job.TargetVersion != 2 {
				t.Errorf("rotate-root-key answered %s, want version 2 current and a rewrap-keks run toward it", r.body)
			}
			doc = waitInternalKMS(t, ts, admin, started.Job.ID)
			if doc.Job.State != "completed" || doc.Job.Rewrapped != 2 {
				t.Errorf("root rewrap: %+v, want completed with both KEKs rewrapped", doc.Job)
			}
			checkSealed(t, doc, map[uint32]int{2: 2})
			if !doc.RootKeyVersions[0].Loaded || doc.RootKeyVersions[0].Version != 1 || doc.RootKeyVersions[0].Current {
				t.Errorf("version 1 after the rotation: %+v, want loaded, not current", doc.RootKeyVersions[0])
			}
			acme.check(t, ts)
			globex.check(t, ts)

			// Rotate acme's KEK through the API.
			r = ts.do("POST", "/api/v1/tenants/acme/actions/rotate-key", admin, nil)
			if r.status != 202 {
				t.Fatalf("rotate-key: %d %s", r.status, r.body)
			}
			var rot api.TenantKeyRotation
			if err := jsonUnmarshal(r.body, &rot); err != nil {
				t.Fatal(err)
			}
			if rot.TenantID != "acme" || rot.KEKVersion != 2 || rot.Job.Kind != "rewrap-cipherkeys" || rot.Job.TenantID != "acme" || rot.Job.TargetVersion != 2 {
				t.Errorf("rotate-key answered %s, want KEK version 2 and a rewrap-cipherkeys run of acme", r.body)
			}
			doc = waitInternalKMS(t, ts, admin, rot.Job.ID)
			if doc.Job.State != "completed" || doc.Job.Rewrapped < int64(acme.cipherKeys) || doc.Job.Failed != 0 {
				t.Errorf("acme's rewrap: %+v, want completed with at least its %d cipherkeys rewrapped", doc.Job, acme.cipherKeys)
			}
			if n := load.stop(t); n == 0 {
				t.Error("the data plane made no request during the rotations")
			}
			versions := internalKEKVersions(t, ts, args)
			if got := versions["acme"]; len(got) != 1 || got["2"] < acme.cipherKeys {
				t.Errorf("acme's cipherkeys by KEK version: %v, want all (at least %d) under 2", got, acme.cipherKeys)
			}
			if got, want := versions["globex"], map[string]int{"1": globex.cipherKeys}; !maps.Equal(got, want) {
				t.Errorf("globex's cipherkeys by KEK version: %v, want %v", got, want)
			}
			acme.check(t, ts)
			globex.check(t, ts)

			// A restarted server loads the rotated file and opens it all.
			ts = restartServer(t, ts, nil, args...)
			admin = ts.token(auth.RolePlatformAdmin, "")
			acme.check(t, ts)
			globex.check(t, ts)
			doc = waitInternalKMS(t, ts, admin, "")
			if doc.CurrentRootKeyVersion != 2 || doc.Job.Trigger != "start" || doc.Job.State != "completed" || doc.Job.Rewrapped != 0 {
				t.Errorf("after a restart: %+v, want version 2 and nothing to rewrap", doc)
			}
			checkSealed(t, doc, map[uint32]int{2: 3}) // acme's KEK v1 and v2, globex's v1
		})
	}
}

// TestInternalKMSFromEnvironmentE2E: root keys from TENANTCRYPT_ROOT_KEYS
// cannot be rotated or reloaded by a running server; it says what to do.
func TestInternalKMSFromEnvironmentE2E(t *testing.T) {
	t.Parallel()
	var k1, k2 [32]byte
	_, _ = rand.Read(k1[:])
	_, _ = rand.Read(k2[:])
	keys := "1:" + base64.StdEncoding.EncodeToString(k1[:]) + ",2:" + base64.StdEncoding.EncodeToString(k2[:])
	ts := startServer(t, map[string]string{"TENANTCRYPT_ROOT_KEYS": keys})
	admin := ts.token(auth.RolePlatformAdmin, "")
	acme := newTenantData(t, ts, admin, "acme", 2)
	for _, action := range []string{"rotate-root-key", "reload-root-keys"} {
		r := ts.do("POST", internalKMSPath+"/actions/"+action, admin, nil)
		if r.status != 409 || r.errorCode(t) != "Encryption-14" || !strings.Contains(string(r.body), "TENANTCRYPT_ROOT_KEYS") || !strings.Contains(string(r.body), "restart") {
			t.Errorf("%s with root keys from the environment: %d %s, want 409 saying to change TENANTCRYPT_ROOT_KEYS and restart", action, r.status, r.body)
		}
		if bytes.Contains(r.body, []byte(base64.StdEncoding.EncodeToString(k1[:]))) || bytes.Contains(r.body, []byte(base64.StdEncoding.EncodeToString(k2[:]))) {
			t.Errorf("%s answer contains a root key", action)
		}
	}
	doc := waitInternalKMS(t, ts, admin, "")
	if doc.RootKeySource != "environment" || doc.CurrentRootKeyVersion != 2 || len(doc.RootKeyVersions) != 2 {
		t.Errorf("internal KMS: %+v, want the environment's versions 1 and 2, 2 current", doc)
	}
	if !strings.Contains(ts.logs.String(), "internal KMS root keys from the environment") {
		t.Error("the server did not log where its root keys come from")
	}
	// The tenant's KEK still rotates: it lives in the database.
	r := ts.do("POST", "/api/v1/tenants/acme/actions/rotate-key", admin, nil)
	if r.status != 202 {
		t.Fatalf("rotate-key: %d %s", r.status, r.body)
	}
	var rot api.TenantKeyRotation
	if err := jsonUnmarshal(r.body, &rot); err != nil {
		t.Fatal(err)
	}
	if doc := waitInternalKMS(t, ts, admin, rot.Job.ID); doc.Job.State != "completed" {
		t.Errorf("rewrap: %+v", doc.Job)
	}
	acme.check(t, ts)
	for _, k := range [][]byte{k1[:], k2[:]} {
		if strings.Contains(ts.logs.String(), base64.StdEncoding.EncodeToString(k)) {
			t.Error("the server log contains a root key")
		}
	}
}

// tenantData is what a service of a tenant encrypted through the API.
type tenantData struct {
	tenant     string
	svc        string
	cts        []string // of the plaintexts "secret i", context {"i": i}
	handles    []string // data keys of context {"i": i}
	keys       []string // their plaintexts (base64)
	cipherKeys int      // how many cipherkeys that made: the handles' and one encryption key
}

func newTenantData(t *testing.T, ts *testServer, admin, tenant string, n int) *tenantData {
	t.Helper()
	if r := ts.do("POST", "/api/v1/tenants", admin, api.CreateTenantRequest{ID: tenant, Name: tenant, Edition: "enterprise"}); r.status != 201 {
		t.Fatalf("create tenant %s: %d %s", tenant, r.status, r.body)
	}
	d := &tenantData{tenant: tenant, svc: ts.token(auth.RoleService, tenant), cipherKeys: n + 1}
	var enc, dks []map[string]any
	for i := range n {
		enc = append(enc, map[string]any{"plaintext": base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "secret %d", i)), "context": map[string]string{"i": fmt.Sprint(i)}})
		dks = append(dks, map[string]any{"context": map[string]string{"i": fmt.Sprint(i)}})
	}
	var er api.BatchResponse[api.EncryptResponse]
	postJSON(t, ts, d.svc, "/api/v1/encryption/encrypt", map[string]any{"items": enc}, &er)
	var dr api.BatchResponse[api.DataKeyResponse]
	postJSON(t, ts, d.svc, "/api/v1/encryption/datakeys", map[string]any{"items": dks}, &dr)
	for i := range n {
		if er.Items[i].Result == nil || dr.Items[i].Result == nil {
			t.Fatalf("item %d of %s failed: %+v %+v", i, tenant, er.Items[i].Error, dr.Items[i].Error)
		}
		d.cts = append(d.cts, er.Items[i].Result.Ciphertext)
		d.handles = append(d.handles, dr.Items[i].Result.Handle)
		d.keys = append(d.keys, dr.Items[i].Result.Plaintext)
	}
	return d
}

// check decrypts every ciphertext and resolves every handle of d.
func (d *tenantData) check(t *testing.T, ts *testServer) {
	t.Helper()
	var dec, dks []map[string]any
	for i := range d.cts {
		ctx := map[string]string{"i": fmt.Sprint(i)}
		dec = append(dec, map[string]any{"ciphertext": d.cts[i], "context": ctx})
		dks = append(dks, map[string]any{"handle": d.handles[i], "context": ctx})
	}
	var dr api.BatchResponse[api.DecryptResponse]
	postJSON(t, ts, d.svc, "/api/v1/encryption/decrypt", map[string]any{"items": dec}, &dr)
	var kr api.BatchResponse[api.DataKeyDecryptResponse]
	postJSON(t, ts, d.svc, "/api/v1/encryption/datakeys/decrypt", map[string]any{"items": dks}, &kr)
	for i := range d.cts {
		if it := dr.Items[i]; it.Result == nil || it.Result.Plaintext != base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "secret %d", i)) {
			t.Errorf("%s: ciphertext %d does not decrypt: %+v", d.tenant, i, it.Error)
		}
		if it := kr.Items[i]; it.Result == nil || it.Result.Plaintext != d.keys[i] {
			t.Errorf("%s: handle %d does not resolve to its data key: %+v", d.tenant, i, it.Error)
		}
	}
}

// waitInternalKMS polls GET /api/v1/internal-kms until the job is not
// running (and, given a run id, is that run), and returns the document.
func waitInternalKMS(t *testing.T, ts *testServer, admin, run string) api.InternalKMS {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r := ts.do("GET", internalKMSPath, admin, nil)
		if r.status != 200 {
			t.Fatalf("GET %s: %d %s", internalKMSPath, r.status, r.body)
		}
		var doc api.InternalKMS
		if err := jsonUnmarshal(r.body, &doc); err != nil {
			t.Fatal(err)
		}
		if run != "" && doc.Job.ID != run {
			t.Fatalf("the job is run %s, want %s: %s", doc.Job.ID, run, r.body)
		}
		if doc.Job.State != "running" {
			return doc
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job still runs after 2 minutes: %s", r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkSealed checks how many KEKs each root key version seals.
func checkSealed(t *testing.T, doc api.InternalKMS, want map[uint32]int) {
	t.Helper()
	got := map[uint32]int{}
	for _, v := range doc.RootKeyVersions {
		if v.SealedKEKs > 0 {
			got[v.Version] = v.SealedKEKs
		}
		if !v.Loaded {
			t.Errorf("root key version %d is not loaded", v.Version)
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("KEKs by root key version: %v, want %v", got, want)
	}
}

// internalKEKVersions reads, straight from the server's database, every
// tenant's cipherkeys that the internal KMS wraps, by KEK version.
func internalKEKVersions(t *testing.T, ts *testServer, args []string) map[string]map[string]int {
	t.Helper()
	database := ""
	for i, a := range args {
		if a == "--database" {
			database = args[i+1]
		}
	}
	st, closeStore, _, err := openStore(t.Context(), database, ts.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	out := map[string]map[string]int{}
	for _, tenant := range []string{"acme", "globex"} {
		ks, err := st.CipherKeysWrappedByOtherVersion(t.Context(), tenant, kms.InternalRef(), "none", envelope.KeyID{}, 100_000)
		if err != nil {
			t.Fatal(err)
		}
		out[tenant] = map[string]int{}
		for _, k := range ks {
			out[tenant][k.KeyVersion]++
		}
	}
	return out
}

// dataPlaneLoad encrypts and decrypts for a tenant from several goroutines
// until stopped, and fails the test on any error.
type dataPlaneLoad struct {
	stopped  atomic.Bool
	wg       sync.WaitGroup
	requests atomic.Int64
	mu       sync.Mutex
	errs     []string
}

func startDataPlaneLoad(t *testing.T, ts *testServer, d *tenantData) *dataPlaneLoad {
	l := &dataPlaneLoad{}
	fail := func(format string, args ...any) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.errs = append(l.errs, fmt.Sprintf(format, args...))
	}
	post := func(path string, body string) (int, []byte, error) {
		req, err := http.NewRequestWithContext(context.Background(), "POST", ts.url+path, strings.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+d.svc)
		resp, err := ts.http.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	for g := range 3 {
		l.wg.Go(func() {
			for i := 0; !l.stopped.Load(); i++ {
				j := (g + i) % len(d.cts)
				code, body, err := post("/api/v1/encryption/decrypt", fmt.Sprintf(`{"ciphertext":%q,"context":{"i":"%d"}}`, d.cts[j], j))
				if err != nil || code != 200 {
					fail("decrypt during the rotations: %d %s %v", code, body, err)
					return
				}
				code, body, err = post("/api/v1/encryption/datakeys", `{"context":{"load":"yes"}}`)
				if err != nil || code != 200 {
					fail("datakeys during the rotations: %d %s %v", code, body, err)
					return
				}
				l.requests.Add(2)
			}
		})
	}
	t.Cleanup(func() { l.stopped.Store(true); l.wg.Wait() })
	return l
}

// stop ends the load and returns how many requests it made.
func (l *dataPlaneLoad) stop(t *testing.T) int64 {
	t.Helper()
	l.stopped.Store(true)
	l.wg.Wait()
	for _, e := range l.errs {
		t.Error(e)
	}
	return l.requests.Load()
}
