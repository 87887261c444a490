package main

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/testkms"
	"github.com/tenantcrypt/tenantcrypt/internal/testkms/pykmip"
)

// The KMIP tests drive a tenant onto a key in a real KMIP server
// (pykmip-server, started on loopback) over HTTPS, and change the key the
// way its owner would, with PyKMIP's own client.

type kmipEnv struct {
	*cmkEnv
	kmip  *pykmip.Server
	creds pykmip.Credentials
}

func startKMIPEnv(t *testing.T, extra ...string) *kmipEnv {
	t.Helper()
	srv := pykmip.Start(t)
	// pykmip-server is a Python process: on a loaded machine (the race
	// detector, tests in parallel) a TLS handshake and an answer can take
	// more than a second, so its calls get the default timeout. The
	// outages these tests make are closed ports, refused at once.
	ts := startServer(t, nil, append([]string{"--kms-timeout", "5s", "--migration-rate", "0"}, extra...)...)
	e := &kmipEnv{cmkEnv: &cmkEnv{testServer: ts}, kmip: srv, creds: srv.Client(t, "tenantcrypt-acme")}
	e.admin = ts.token(auth.RolePlatformAdmin, "")
	return e
}

func (e *kmipEnv) uri(uid string) string { return "kmip://" + e.kmip.Addr + "/" + uid }

// registration is a KMIP registration body of uid with e's certificate;
// edit changes its kmip member.
func (e *kmipEnv) registration(uid string, edit func(m map[string]any)) map[string]any {
	m := map[string]any{"serverCA": string(e.kmip.CAPEM), "clientCertificate": string(e.creds.CertPEM), "clientKey": string(e.creds.KeyPEM)}
	if edit != nil {
		edit(m)
	}
	return map[string]any{"keyprovider": "KMIP", "arn": e.uri(uid), "name": "acme KMIP key", "kmip": m}
}

// onKMIP registers a fresh key for the tenant admin's tenant and migrates
// the tenant onto it; it returns the key's unique identifier.
func (e *kmipEnv) onKMIP(t *testing.T, admin string) string {
	t.Helper()
	uid := e.kmip.CreateKey(t, e.creds, pykmip.KeyOptions{})
	if r := e.do("POST", kp, admin, e.registration(uid, nil)); r.status != 201 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	if r := e.do("POST", kp+"/"+keyprovider.Fingerprint(e.uri(uid))+"/actions/migrate", admin, nil); r.status != 200 {
		t.Fatalf("migrate: %d %s", r.status, r.body)
	}
	e.waitMigration(t, admin)
	return uid
}

func (e *kmipEnv) encrypt(t *testing.T, svc, plaintext string) string {
	t.Helper()
	r := e.do("POST", "/api/v1/encryption/encrypt", svc, map[string]any{"plaintext": b64(plaintext)})
	if r.status != 200 {
		t.Fatalf("encrypt: %d %s", r.status, r.body)
	}
	ct, _ := r.json(t)["ciphertext"].(string)
	return ct
}

func (e *kmipEnv) readable(t *testing.T, svc, ct, plaintext string) {
	t.Helper()
	r := e.decrypt(svc, ct)
	if r.status != 200 || r.json(t)["plaintext"] != b64(plaintext) {
		t.Fatalf("decrypt: %d %s", r.status, r.body)
	}
}

// refusedWithin decrypts until the tenant is refused (403 key
// unavailable) and fails the test if that takes more than limit.
func (e *kmipEnv) refusedWithin(t *testing.T, what, svc, ct string, limit time.Duration) time.Duration {
	t.Helper()
	took := until(t, what, limit, func() bool {
		r := e.decrypt(svc, ct)
		switch {
		case r.status == 200:
			return false
		case r.status == 403 && r.errorCode(t) == string(api.CodeKeyUnavailable):
			return true
		}
		t.Fatalf("%s: decrypt answered %d %s, want 200 or 403 %s", what, r.status, r.body, api.CodeKeyUnavailable)
		return false
	})
	t.Logf("%s: refused after %s", what, took.Round(time.Millisecond))
	return took
}

// TestKMIPRegistration: every check of a KMIP registration answers its
// own status with a detail that names the cause; the client key is never
// returned, logged or stored in clear; certificates are renewed by PATCH,
// checked before they are saved.
func TestKMIPRegistration(t *testing.T) {
	t.Parallel()
	e := startKMIPEnv(t)
	admin := e.tenant(t, "acme", "enterprise")
	good := e.kmip.CreateKey(t, e.creds, pykmip.KeyOptions{})
	other := e.kmip.Client(t, "another-tenant")
	stranger := pykmip.Start(t) // its CA did not issue e.kmip's certificate
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}()

	tests := []struct {
		name   string
		body   map[string]any
		status int
		code   api.Code
		detail string
	}{
		{"malformed URI", func() map[string]any {
			b := e.registration(good, nil)
			b["arn"] = "kmip://" + e.kmip.Addr
			return b
		}(), 417, api.CodeMalformedARN, "unique identifier"},
		{"malformed client key", e.registration(good, func(m map[string]any) { m["clientKey"] = "not a key" }), 417, api.CodeMalformedARN, "clientKey"},
		{"key of another certificate", e.registration(good, func(m map[string]any) { m["clientKey"] = string(other.KeyPEM) }), 417, api.CodeMalformedARN, "clientKey"},
		{"malformed endpoint", e.registration(good, func(m map[string]any) { m["endpoints"] = []string{"kmip2"} }), 417, api.CodeMalformedARN, "endpoints"},
		{"AES-128", e.registration(e.kmip.CreateKey(t, e.creds, pykmip.KeyOptions{Length: 128}), nil), 406, api.CodeKeyRefused, "AES-256"},
		{"encrypt only", e.registration(e.kmip.CreateKey(t, e.creds, pykmip.KeyOptions{Usage: []string{"ENCRYPT"}}), nil), 406, api.CodeKeyRefused, "Decrypt"},
		{"pre-active", e.registration(e.kmip.CreateKey(t, e.creds, pykmip.KeyOptions{PreActive: true}), nil), 406, api.CodeKeyRefused, "Pre-Active"},
		{"unknown key", e.registration("4711", nil), 406, api.CodeKeyRefused, "no key"},
		{"another owner", e.registration(good, func(m map[string]any) {
			m["clientCertificate"], m["clientKey"] = string(other.CertPEM), string(other.KeyPEM)
		}), 403, api.CodeKeyNotAccessible, "Permission Denied"},
		{"untrusted server", e.registration(good, func(m map[string]any) { m["serverCA"] = string(stranger.CAPEM) }), 403, api.CodeKeyNotAccessible, "TLS refused"},
		{"unreachable", func() map[string]any {
			b := e.registration(good, nil)
			b["arn"] = "kmip://" + closed + "/" + good
			return b
		}(), 408, api.CodeKMSTimeout, closed},
	}
	for _, tt := range tests {
		r := e.do("POST", kp, admin, tt.body)
		if r.status != tt.status || r.errorCode(t) != string(tt.code) || !strings.Contains(string(r.body), tt.detail) {
			t.Errorf("%s: %d %s; want %d %s with %q in the detail", tt.name, r.status, r.body, tt.status, tt.code, tt.detail)
		}
		if bytes.Contains(r.body, []byte("PRIVATE KEY")) {
			t.Errorf("%s: the answer quotes the client key: %s", tt.name, r.body)
		}
	}
	if r := e.do("POST", kp, admin, map[string]any{"keyprovider": "KMIP", "arn": e.uri(good), "name": "x"}); r.status != 400 {
		t.Errorf("no kmip member: %d %s, want 400", r.status, r.body)
	}

	r := e.do("POST", kp, admin, e.registration(good, nil))
	if r.status != 201 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	var p api.KeyProvider
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	fp := keyprovider.Fingerprint(e.uri(good))
	if p.KeyProvider != "KMIP" || p.ARN != e.uri(good) || p.ARNFingerPrint != fp || p.MultiRegion || p.DRCompliant ||
		p.ComplianceError.Code == "" || p.KMIP == nil || p.KMIP.ServerCA != string(e.kmip.CAPEM) ||
		p.KMIP.ClientCertificate != string(e.creds.CertPEM) || p.KMIP.ClientKey != "" {
		t.Errorf("registered provider: %s", r.body)
	}
	if r := e.do("POST", kp, admin, e.registration(good, nil)); r.status != 409 || r.errorCode(t) != string(api.CodeKeyProviderExists) {
		t.Errorf("second registration: %d %s, want 409", r.status, r.body)
	}
	r = e.do("GET", kp+"/actions/list", admin, nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"keyprovider":"KMIP"`) || !strings.Contains(string(r.body), `"kmip":{`) {
		t.Errorf("list: %d %s", r.status, r.body)
	}

	// Renewal: another server of the cluster, then a new certificate and
	// key of the same identity, each checked before it is saved.
	peer := e.kmip.StartPeer(t)
	if r := e.do("PATCH", kp+"/"+fp, admin, []map[string]any{{"op": "replace", "path": "/kmip/endpoints", "value": []string{peer.Addr}}}); r.status != 204 {
		t.Fatalf("PATCH /kmip/endpoints: %d %s", r.status, r.body)
	}
	r = e.do("POST", kp+"/"+fp+"/actions/test", admin, nil)
	if r.status != 201 || !strings.Contains(string(r.body), `"drCompliant":true`) || !strings.Contains(string(r.body), peer.Addr) {
		t.Errorf("test with two endpoints: %d %s, want drCompliant", r.status, r.body)
	}
	renewed := e.kmip.Client(t, e.creds.CN)
	renew := func(c pykmip.Credentials) response {
		return e.do("PATCH", kp+"/"+fp, admin, []map[string]any{
			{"op": "replace", "path": "/kmip/clientCertificate", "value": string(c.CertPEM)},
			{"op": "replace", "path": "/kmip/clientKey", "value": string(c.KeyPEM)}})
	}
	if r := renew(other); r.status != 403 || !strings.Contains(string(r.body), "Permission Denied") {
		t.Errorf("PATCH to a certificate that may not use the key: %d %s, want 403", r.status, r.body)
	}
	if r := e.do("GET", kp+"/"+fp, admin, nil); !strings.Contains(string(r.body), jsonString(e.creds.CertPEM)) {
		t.Errorf("a refused PATCH changed the provider: %s", r.body)
	}
	if r := renew(renewed); r.status != 204 {
		t.Fatalf("PATCH with a renewed certificate: %d %s", r.status, r.body)
	}
	if r := e.do("GET", kp+"/"+fp, admin, nil); !strings.Contains(string(r.body), jsonString(renewed.CertPEM)) {
		t.Errorf("the renewed certificate is not the provider's: %s", r.body)
	}
	if r := e.do("PATCH", kp+"/"+fp, admin, []map[string]any{{"op": "replace", "path": "/kmip/clientKey", "value": "x"}}); r.status != 417 {
		t.Errorf("PATCH to a malformed key: %d %s, want 417", r.status, r.body)
	}
	if r := e.do("PATCH", kp+"/"+fp, admin, []map[string]any{{"op": "replace", "path": "/kmip/password", "value": "x"}}); r.status != 400 {
		t.Errorf("PATCH of an unknown path: %d %s, want 400", r.status, r.body)
	}

	// The client keys are nowhere in clear: not in the log, not in the
	// data directory (database, WAL), neither as PEM nor as DER.
	var secrets [][]byte
	for _, c := range []pykmip.Credentials{e.creds, renewed} {
		block, _ := pem.Decode(c.KeyPEM)
		lines := strings.Split(strings.TrimSpace(string(c.KeyPEM)), "\n")
		// The first base64 line is the same for every P-256 PKCS#8 key;
		// the private scalar comes after it.
		secrets = append(secrets, block.Bytes[len(block.Bytes)-80:], []byte(lines[2]))
	}
	holds := func(b []byte) bool {
		for _, s := range secrets {
			if bytes.Contains(b, s) {
				return true
			}
		}
		return false
	}
	if holds([]byte(e.logs.String())) {
		t.Error("the server log holds a client key")
	}
	err := filepath.WalkDir(e.dataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil && holds(b) {
			t.Errorf("%s holds a client key in clear", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func jsonString(b []byte) string {
	j, _ := json.Marshal(string(b))
	return string(j)
}

// TestKMIPLifecycle: a tenant moves from the internal KMS onto a KMIP key
// with its data readable; the customer withdrawing the client's permission
// cuts access within the bound, restoring it brings the tenant back;
// revoking the key cuts it for good, destroying it destroys the tenant.
func TestKMIPLifecycle(t *testing.T) {
	t.Parallel()
	const bound = 2 * time.Second
	e := startKMIPEnv(t, "--revocation-bound", bound.String(), "--cache-ttl", "1s", "--cache-idle", "1s")
	admin := e.tenant(t, "acme", "enterprise")
	svc := e.token(auth.RoleService, "acme")
	before := e.encrypt(t, svc, "written under the internal KMS")
	uid := e.onKMIP(t, admin)
	e.readable(t, svc, before, "written under the internal KMS")
	ct := e.encrypt(t, svc, "written under the KMIP key")
	if !strings.HasPrefix(ct, "#BYOKv1#:") {
		t.Fatalf("ciphertext %q is not under the customer's key", ct)
	}
	e.readable(t, svc, ct, "written under the KMIP key")
	st := e.status(t, admin)
	if st.State != "active" || st.KeyState != "Active" || st.LastCheck == nil || st.LastCheck.Result != "ok" {
		t.Errorf("status on the KMIP key: %+v %+v", st, st.LastCheck)
	}

	e.kmip.Withdraw(t)
	if took := e.refusedWithin(t, "permission withdrawn", svc, ct, 3*bound); took > bound+time.Second {
		t.Errorf("the withdrawn permission took %s to cut access (bound %s)", took, bound)
	}
	st = e.status(t, admin)
	if st.State != "key-unavailable" || !strings.Contains(st.StateReason, "refused") {
		t.Errorf("status with the permission withdrawn: %+v", st)
	}
	e.kmip.Grant(t)
	until(t, "active again once the permission is back", 5*bound, func() bool { return e.decrypt(svc, ct).status == 200 })
	e.readable(t, svc, before, "written under the internal KMS")

	e.kmip.Revoke(t, e.creds, uid, false)
	if took := e.refusedWithin(t, "key revoked", svc, ct, 3*bound); took > bound+time.Second {
		t.Errorf("the revocation took %s to cut access (bound %s)", took, bound)
	}
	until(t, "status shows the revocation", 3*bound, func() bool {
		st = e.status(t, admin)
		return st.State == "key-unavailable" && st.LastCheck != nil && st.LastCheck.KeyState == "Deactivated"
	})
	// The reason is the first refusal's (on use, or the monitor's check);
	// the check says what happened to the key.
	if !strings.Contains(st.LastCheck.Detail, "revoked") || !strings.Contains(st.LastCheck.Detail, "cannot make it Active again") {
		t.Errorf("last check after Revoke: %+v", st.LastCheck)
	}
	for _, body := range []map[string]any{{"plaintext": b64("x")}} {
		if r := e.do("POST", "/api/v1/encryption/encrypt", svc, body); r.status != 403 || r.errorCode(t) != string(api.CodeKeyUnavailable) {
			t.Errorf("encrypt after Revoke: %d %s", r.status, r.body)
		}
	}

	// Every KMIP call is in the tenant's audit chain: the key, the server,
	// the outcome.
	until(t, "the KMIP calls in the audit log", 10*time.Second, func() bool {
		var ok, refused bool
		for _, ev := range e.audits(t, admin, "&action=kmip.") {
			if ev.Target != e.uri(uid) || ev.TenantID != "acme" {
				t.Fatalf("audit event %+v: want the KMIP key as target, in acme's chain", ev)
			}
			ok = ok || ev.Action == "kmip.Decrypt" && ev.Result == "success"
			refused = refused || ev.Result == "failure" && (ev.ErrorCode == "disabled" || ev.ErrorCode == "access_denied")
		}
		return ok && refused
	})

	e.kmip.Destroy(t, e.creds, uid)
	until(t, "destroyed after Destroy", 5*bound, func() bool { return e.status(t, admin).State == "destroyed" })
	if r := e.decrypt(svc, before); r.status == 200 {
		t.Errorf("decrypt after the key was destroyed: %d %s", r.status, r.body)
	}
}

// TestKMIPOutage: with the KMIP server down the tenant stays active;
// cached data keys serve, then requests that need the server get 503 with
// Retry-After; once it is back everything works; the tenant then moves to
// another KMIP key and back to the internal KMS with its data readable.
func TestKMIPOutage(t *testing.T) {
	t.Parallel()
	e := startKMIPEnv(t, "--revocation-bound", "2s", "--cache-ttl", "4s", "--cache-idle", "4s")
	admin := e.tenant(t, "acme", "enterprise")
	svc := e.token(auth.RoleService, "acme")
	e.onKMIP(t, admin)
	ct := e.encrypt(t, svc, "data")
	e.readable(t, svc, ct, "data")

	e.kmip.Stop(t)
	e.readable(t, svc, ct, "data") // the cached data key
	e.until503(t, svc, ct, "with the KMIP server down")
	st := e.status(t, admin)
	if st.State != "active" || !st.Degraded {
		t.Errorf("status with the KMIP server down: %+v", st)
	}

	e.kmip.Restart(t)
	until(t, "decrypt once the KMIP server is back", 20*time.Second, func() bool { return e.decrypt(svc, ct).status == 200 })
	until(t, "not degraded once the KMIP server is back", 10*time.Second, func() bool { return !e.status(t, admin).Degraded })

	// KMIP → KMIP: another key of the same key manager, then back to the
	// internal KMS; what was written under each stays readable.
	second := e.onKMIP(t, admin)
	e.readable(t, svc, ct, "data")
	ct2 := e.encrypt(t, svc, "data under the second key")
	if st := e.status(t, admin); st.Provider.ARN != e.uri(second) {
		t.Errorf("after the KMIP → KMIP migration the current provider is %+v", st.Provider)
	}

	if r := e.do("POST", kp+"/actions/reset-to-default-provider", admin, nil); r.status != 205 {
		t.Fatalf("reset to the default provider: %d %s", r.status, r.body)
	}
	e.waitMigration(t, admin)
	e.kmip.Stop(t)
	e.readable(t, svc, ct, "data")
	e.readable(t, svc, ct2, "data under the second key")
}

// TestKMIPConsole registers a KMIP key through the console's form (the
// KMIP choice, PEM text areas), sees a malformed key refused next to its
// field, and the status page of a tenant on the KMIP key.
func TestKMIPConsole(t *testing.T) {
	if _, err := os.Stat(chromiumPath()); err != nil {
		t.Skipf("%s is not installed: the console's browser test needs Debian's chromium", chromiumPath())
	}
	t.Parallel()
	e := startKMIPEnv(t, "--console-dev-tokens")
	admin := e.tenant(t, "acme", "enterprise")
	uid := e.kmip.CreateKey(t, e.creds, pykmip.KeyOptions{})
	fp := keyprovider.Fingerprint(e.uri(uid))

	b := newConsoleBrowser(t, e.testServer, t.TempDir())
	b.open("/console")
	b.waitText("h1", "Sign in")
	b.setValue("#token-input", admin)
	b.click(`form[aria-labelledby=token-title] button[type=submit]`)
	b.waitAttr(`[data-testid=tenant-state]`, "data-state", "active")
	b.click(`nav a[data-route=keys]`)
	b.waitVisible(`#register-form`)
	b.click(`#kp-kind-kmip`)
	b.waitVisible(`#kp-clientKey`)
	b.checkLabels("KMIP register form")
	b.setValue("#kp-arn", e.uri(uid))
	b.setValue("#kp-name", "Acme KMIP key")
	b.setValue("#kp-serverCA", string(e.kmip.CAPEM))
	b.setValue("#kp-clientCertificate", string(e.creds.CertPEM))
	b.setValue("#kp-clientKey", "not a key")
	b.click(`#register-form button[type=submit]`)
	b.waitText("#kp-clientKey-error", "Encryption-35")
	b.setValue("#kp-clientKey", string(e.creds.KeyPEM))
	b.click(`#register-form button[type=submit]`)
	card := fmt.Sprintf(`article[data-fp="%s"]`, fp)
	b.waitText(card, "KMIP key manager")
	b.waitText(card+` [data-testid=arn]`, e.uri(uid))
	if got := b.eval(`document.getElementById('kp-clientKey').value === '' && document.getElementById('kp-clientKey').closest('.field').hidden`); got != true {
		t.Errorf("after registering, the client key is still in the form, or the KMIP fields still show")
	}

	if r := e.do("POST", kp+"/"+fp+"/actions/migrate", admin, nil); r.status != 200 {
		t.Fatalf("migrate: %d %s", r.status, r.body)
	}
	e.waitMigration(t, admin)
	b.click(`nav a[data-route=status]`)
	b.waitText(`[data-testid=current-provider]`, "KMIP key manager")
	b.waitText(`[data-testid=key-state]`, "Active")
	b.checkNoProblems()
}

// TestKMIPAndAWSMigrations: a tenant moves from an AWS KMS key to a KMIP
// key and back, its data readable throughout.
func TestKMIPAndAWSMigrations(t *testing.T) {
	cmk := startCMKEnv(t)
	srv := pykmip.Start(t)
	e := &kmipEnv{cmkEnv: cmk, kmip: srv, creds: srv.Client(t, "tenantcrypt-acme")}
	admin, svc, onAWS := cmk.cmkTenant(t, "acme")

	e.onKMIP(t, admin)
	e.readable(t, svc, onAWS, "tenant data")
	onKMIP := e.encrypt(t, svc, "written under the KMIP key")
	if st := e.status(t, admin); st.Provider.KeyProvider != "KMIP" {
		t.Fatalf("after AWS → KMIP the current provider is %+v", st.Provider)
	}

	if _, r := cmk.migrateTo(t, admin, testkms.MultiRegionKeyID); r.status != 200 {
		t.Fatalf("migrate back to the AWS key: %d %s", r.status, r.body)
	}
	e.waitMigration(t, admin)
	st := e.status(t, admin)
	if st.Provider.KeyProvider != "AWS-KMS" {
		t.Fatalf("after KMIP → AWS the current provider is %+v", st.Provider)
	}
	for ref, n := range st.CipherKeys {
		if ref != "cmk:"+st.Provider.ARNFingerPrint && n > 0 {
			t.Errorf("after KMIP → AWS, %d data keys are still wrapped by %s", n, ref)
		}
	}
	e.kmip.Stop(t) // nothing needs the KMIP key any more
	e.readable(t, svc, onAWS, "tenant data")
	e.readable(t, svc, onKMIP, "written under the KMIP key")
}
