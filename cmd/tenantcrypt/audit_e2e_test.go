package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/testkms"
)

// audits reads every page of the audit log that query (starting with "&")
// selects.
func (ts *testServer) audits(t testing.TB, token, query string) []api.AuditEvent {
	t.Helper()
	var all []api.AuditEvent
	cursor := ""
	for {
		q := query
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		r := ts.do("GET", "/api/v1/audits?limit=1000"+q, token, nil)
		var page api.AuditPage
		if r.status != 200 || json.Unmarshal(r.body, &page) != nil {
			t.Fatalf("audits%s: %d %s", q, r.status, r.body)
		}
		all = append(all, page.Items...)
		if page.Next == "" {
			return all
		}
		cursor = page.Next
	}
}

// TestAuditLog: what a tenant's admins, services, its key's owner and the
// service itself did is in the tenant's audit log, with who, from where,
// which request, what and how it ended — and no key material; the log
// verifies on the server and offline from an export with only the
// published keys; an event altered, deleted or reordered in the database
// fails verification, which names where.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	e := startCMKEnv(t, "--revocation-bound", "2s", "--audit-data-plane", "per-request")
	admin, svc, ct := e.cmkTenant(t, "acme")
	if r := e.do("PATCH", "/api/v1/tenants/acme", e.admin, map[string]any{"name": "Acme Corp"}); r.status != 200 {
		t.Fatalf("rename tenant: %d %s", r.status, r.body)
	}
	fp := keyprovider.Fingerprint(e.primary.ARN(testkms.MultiRegionKeyID))
	if r := e.do("POST", kp+"/"+fp+"/actions/test", admin, nil); r.status != 201 {
		t.Fatalf("test: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/api/v1/tenants", admin, map[string]any{"id": "x", "name": "x", "edition": "business"}); r.status != 403 {
		t.Fatalf("a tenant admin creating a tenant: %d", r.status)
	}
	dk := e.do("POST", "/api/v1/encryption/datakeys", svc, map[string]any{"context": map[string]string{"f": "1"}}).json(t)
	if r := e.decrypt(svc, "#BYOKv1#:garbage"); r.status != 400 {
		t.Fatalf("bad decrypt: %d", r.status)
	}
	// The key's owner disables it and enables it again.
	if _, err := e.customer(t).DisableKey(context.Background(), &kms.DisableKeyInput{KeyId: aws.String(testkms.MultiRegionKeyID)}); err != nil {
		t.Fatal(err)
	}
	until(t, "refused", 10*time.Second, func() bool { return e.decrypt(svc, ct).status == 403 })
	if _, err := e.customer(t).EnableKey(context.Background(), &kms.EnableKeyInput{KeyId: aws.String(testkms.MultiRegionKeyID)}); err != nil {
		t.Fatal(err)
	}
	until(t, "active again", 10*time.Second, func() bool { return e.decrypt(svc, ct).status == 200 })

	var events []api.AuditEvent
	until(t, "events written", 10*time.Second, func() bool {
		events = e.audits(t, admin, "")
		for _, ev := range events {
			if ev.Action == "tenant.state" && ev.Details["to"] == "active" {
				return true
			}
		}
		return false
	})
	byAction := map[string][]api.AuditEvent{}
	for _, ev := range events {
		byAction[ev.Action] = append(byAction[ev.Action], ev)
		if ev.ChainID != "acme" || ev.Hash == "" || ev.PrevHash == "" {
			t.Errorf("event %+v", ev)
		}
	}
	for _, action := range []string{"tenant.create", "tenant.update", "keyprovider.register", "keyprovider.migrate",
		"keyprovider.test", "tenant.state", "datakey.rotate", "kms.GenerateDataKey", "kms.Decrypt", "kms.DescribeKey",
		"kms.Encrypt", "dataplane.encrypt", "dataplane.decrypt", "dataplane.datakeys"} {
		if len(byAction[action]) == 0 {
			t.Errorf("no %s event among %d", action, len(events))
		}
	}
	reg := byAction["keyprovider.register"][0]
	if reg.Principal != "test:tenant-admin" || reg.TokenID == "" || reg.SourceAddr != "127.0.0.1" || reg.RequestID == "" ||
		reg.Target != fp || reg.Result != "success" || reg.Details["arn"] == "" || reg.TenantID != "acme" {
		t.Errorf("register event %+v", reg)
	}
	if c := byAction["tenant.create"][0]; c.Principal != "test:platform-admin" || c.Target != "acme" {
		t.Errorf("tenant.create event %+v", c)
	}
	denied := false
	for _, ev := range byAction["tenant.create"] {
		denied = denied || ev.Result == "denied" && ev.ErrorCode == "Encryption-03" && ev.Principal == "test:tenant-admin"
	}
	if !denied {
		t.Errorf("the refused tenant creation is not recorded as denied: %+v", byAction["tenant.create"])
	}
	states := map[string]bool{}
	for _, ev := range byAction["tenant.state"] {
		states[ev.Details["from"]+">"+ev.Details["to"]] = true
	}
	if !states["active>key-unavailable"] || !states["key-unavailable>active"] {
		t.Errorf("state changes recorded: %v", states)
	}
	kmsOK := false
	for _, ev := range append(byAction["kms.Decrypt"], byAction["kms.DescribeKey"]...) {
		if ev.Target == "" || ev.Details["region"] == "" {
			t.Errorf("kms event without key or region: %+v", ev)
		}
		kmsOK = kmsOK || ev.Result == "success" && ev.Details["awsRequestId"] != ""
	}
	if !kmsOK {
		t.Error("no kms event with its AWS request id")
	}
	failed := false
	for _, ev := range byAction["dataplane.decrypt"] {
		failed = failed || ev.Result == "failure" && ev.ErrorCode == "Encryption-09"
	}
	if !failed {
		t.Error("the failed decrypt is not recorded with its error code")
	}
	// No key material, plaintext or ciphertext in any event.
	raw, _ := json.Marshal(events)
	for _, secret := range []string{dk["plaintext"].(string), dk["handle"].(string), ct, b64("tenant data"), "#BYOKv1#:garbage"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("an event holds %q", secret)
		}
	}

	// Filters.
	if got := e.audits(t, admin, "&action=keyprovider."); len(got) != 3 {
		t.Errorf("action prefix keyprovider.: %d events, want register, migrate, test", len(got))
	}
	if got := e.audits(t, admin, "&result=denied"); len(got) != 1 {
		t.Errorf("result=denied: %d events", len(got))
	}
	if got := e.audits(t, admin, "&principal=test:platform-admin"); len(got) != 2 {
		t.Errorf("principal=test:platform-admin: %d events, want create and update", len(got))
	}
	if got := e.audits(t, admin, "&to=2000-01-01T00:00:00Z"); len(got) != 0 {
		t.Errorf("to=2000: %d events", len(got))
	}
	if r := e.do("GET", "/api/v1/audits?tenantId=other", admin, nil); r.status != 403 {
		t.Errorf("a tenant admin reading another tenant's log: %d", r.status)
	}
	if r := e.do("GET", "/api/v1/audits", svc, nil); r.status != 403 {
		t.Errorf("a service reading the log: %d", r.status)
	}
	if got := e.audits(t, e.admin, "&tenantId=acme"); len(got) < len(events) {
		t.Errorf("a platform admin sees %d of acme's %d events", len(got), len(events))
	}

	// Verification on the server, and offline from an export.
	verify := func() api.AuditVerification {
		r := e.do("GET", "/api/v1/audits/actions/verify", admin, nil)
		var v api.AuditVerification
		if r.status != 200 || json.Unmarshal(r.body, &v) != nil {
			t.Fatalf("verify: %d %s", r.status, r.body)
		}
		return v
	}
	if v := verify(); !v.Valid || v.Events != len(events) && v.Events < len(events) {
		t.Fatalf("verify: %+v", v)
	}
	dir := t.TempDir()
	exportFile, keysFile := filepath.Join(dir, "acme.jsonl"), filepath.Join(dir, "keys.json")
	cli := func(args ...string) int {
		env := map[string]string{"TENANTCRYPT_SERVER": e.url, "TENANTCRYPT_DATA_DIR": e.dataDir, "TENANTCRYPT_TOKEN": admin}
		return run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(""), &syncBuffer{}, &syncBuffer{})
	}
	if code := cli("audit", "export", "--out", exportFile); code != exitOK {
		t.Fatalf("audit export: exit %d", code)
	}
	if code := cli("audit", "public-keys", "--out", keysFile); code != exitOK {
		t.Fatalf("audit public-keys: exit %d", code)
	}
	if code := cli("audit", "verify", "--file", exportFile, "--public-keys", keysFile); code != exitOK {
		t.Errorf("offline verification of the export: exit %d", code)
	}
	data, _ := os.ReadFile(exportFile)
	tampered := filepath.Join(dir, "tampered.jsonl")
	os.WriteFile(tampered, []byte(strings.Replace(string(data), `"test:tenant-admin"`, `"test:someone-else"`, 1)), 0o600)
	if code := cli("audit", "verify", "--file", tampered, "--public-keys", keysFile); code != exitFailure {
		t.Errorf("offline verification of an edited export: exit %d, want %d", code, exitFailure)
	}

	// Tampering in the database, as someone with write access to it would
	// (dropping the append-only triggers first).
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.dataDir, "tenantcrypt.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := db.Exec(`UPDATE audit_events SET principal = 'x' WHERE chain_id = 'acme' AND seq = 3`); err == nil {
		t.Error("the database let an audit event be changed")
	}
	exec(`DROP TRIGGER audit_events_no_update`)
	exec(`DROP TRIGGER audit_events_no_delete`)
	exec(`DROP TRIGGER audit_events_no_replace`)
	const restore = `INSERT INTO audit_events SELECT * FROM audit_backup WHERE seq BETWEEN 3 AND 6`
	for _, tc := range []struct {
		name     string
		tamper   []string
		seq      int64
		contains string
	}{
		{"altered", []string{`UPDATE audit_events SET principal = 'mallory' WHERE chain_id = 'acme' AND seq = 3`}, 3, "altered"},
		{"deleted", []string{`DELETE FROM audit_events WHERE chain_id = 'acme' AND seq = 4`}, 4, "missing"},
		{"reordered", []string{`DELETE FROM audit_events WHERE chain_id = 'acme' AND seq IN (5, 6)`,
			`INSERT INTO audit_events (chain_id, seq, time, tenant_id, principal, token_id, source_addr, request_id, action, target, result, error_code, details, prev_hash, hash)
			SELECT chain_id, 11 - seq, time, tenant_id, principal, token_id, source_addr, request_id, action, target, result, error_code, details, prev_hash, hash
			FROM audit_backup WHERE seq IN (5, 6)`}, 5, "reordered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exec(`DROP TABLE IF EXISTS audit_backup`)
			exec(`CREATE TABLE audit_backup AS SELECT * FROM audit_events WHERE chain_id = 'acme'`)
			for _, q := range tc.tamper {
				exec(q)
			}
			v := verify()
			if v.Valid || v.Problem == nil || v.Problem.Seq != tc.seq || !strings.Contains(v.Problem.Reason, tc.contains) {
				t.Errorf("verify after the row was %s: %+v (%+v)", tc.name, v, v.Problem)
			}
			exec(`DELETE FROM audit_events WHERE chain_id = 'acme' AND seq BETWEEN 3 AND 6`)
			exec(restore)
			if v := verify(); !v.Valid {
				t.Fatalf("verify after restoring: %+v", v.Problem)
			}
		})
	}
}

// TestAuditPlatformChain: failover, failback and internal KMS rotation go
// to the platform's chain, which platform admins read.
func TestAuditPlatformChain(t *testing.T) {
	t.Parallel()
	e := startCMKEnv(t, "--revocation-bound", "2s", "--cache-ttl", "1s", "--cache-idle", "1s", "--kms-probe-interval", "100ms")
	_, svc, ct := e.cmkTenant(t, "acme")
	e.pProxy.Down()
	e.dProx.ResetCalls() // registration probed the replica already
	until(t, "served by the replica", 10*time.Second, func() bool {
		return e.decrypt(svc, ct).status == 200 && e.dProx.Calls("Decrypt") > 0
	})
	e.pProxy.Up()
	var actions map[string]bool
	until(t, "failover and failback audited", 20*time.Second, func() bool {
		e.decrypt(svc, ct)
		actions = map[string]bool{}
		for _, ev := range e.audits(t, e.admin, "&tenantId=_platform") {
			actions[ev.Action] = true
		}
		return actions["kms.failover"] && actions["kms.failback"]
	})
	if r := e.do("GET", "/api/v1/audits/actions/verify?tenantId=_platform", e.admin, nil); r.status != 200 || !strings.Contains(string(r.body), `"valid":true`) {
		t.Errorf("verify the platform chain: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/api/v1/audits?tenantId=_platform", e.token(auth.RoleTenantAdmin, "acme"), nil); r.status != 403 {
		t.Errorf("a tenant admin reading the platform chain: %d", r.status)
	}
}

// TestAuditSurvivesShutdown: a graceful shutdown writes what is still
// queued or counted — here the data plane's per-minute counts, which would
// otherwise wait for the minute to end — and signs the chains' heads.
func TestAuditSurvivesShutdown(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	admin := ts.token(auth.RolePlatformAdmin, "")
	if r := ts.do("POST", "/api/v1/tenants", admin, map[string]any{"id": "acme", "name": "Acme", "edition": "business"}); r.status != 201 {
		t.Fatalf("create tenant: %d %s", r.status, r.body)
	}
	svc := ts.token(auth.RoleService, "acme")
	for range 5 {
		if r := ts.do("POST", "/api/v1/encryption/encrypt", svc, map[string]any{"plaintext": b64("x")}); r.status != 200 {
			t.Fatalf("encrypt: %d %s", r.status, r.body)
		}
	}
	if code := ts.stop(); code != exitOK {
		t.Fatalf("server exit %d", code)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(ts.dataDir, "tenantcrypt.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var details string
	if err := db.QueryRow(`SELECT details FROM audit_events WHERE chain_id = 'acme' AND action = 'dataplane.encrypt'`).Scan(&details); err != nil {
		t.Fatalf("the data plane's count was not written at shutdown: %v", err)
	}
	if !strings.Contains(details, `"count":"5"`) {
		t.Errorf("count event details %s, want a count of 5", details)
	}
	var head, signed int64
	if err := db.QueryRow(`SELECT MAX(seq) FROM audit_events WHERE chain_id = 'acme'`).Scan(&head); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT MAX(seq) FROM audit_checkpoints WHERE chain_id = 'acme'`).Scan(&signed); err != nil || signed != head {
		t.Errorf("last checkpoint at seq %d (%v), want the head %d", signed, err, head)
	}
}

// TestAuditCountsBatchItems replays the review's probe: batches whose items
// all fail. Each item is counted under its own outcome, failures by error
// code, in both audit modes.
func TestAuditCountsBatchItems(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"per-minute", "per-request"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, nil, "--audit-data-plane", mode)
			admin := ts.token(auth.RolePlatformAdmin, "")
			if r := ts.do("POST", "/api/v1/tenants", admin, map[string]any{"id": "acme", "name": "Acme", "edition": "business"}); r.status != 201 {
				t.Fatalf("create tenant: %d %s", r.status, r.body)
			}
			svc := ts.token(auth.RoleService, "acme")
			ct := ts.do("POST", "/api/v1/encryption/encrypt", svc, map[string]any{"plaintext": b64("x")}).json(t)["ciphertext"].(string)
			items := make([]map[string]any, 1000)
			for i := range items {
				items[i] = map[string]any{"ciphertext": ct, "context": map[string]string{"guess": strconv.Itoa(i)}}
			}
			items[0] = map[string]any{"ciphertext": ct}     // the right context: a success
			items[1] = map[string]any{"ciphertext": "AAAA"} // not a ciphertext at all
			if r := ts.do("POST", "/api/v1/encryption/decrypt", svc, map[string]any{"items": items}); r.status != 200 {
				t.Fatalf("batch: %d %s", r.status, r.body)
			}
			ts2 := restartServer(t, ts, nil, "--audit-data-plane", mode) // the stop writes the counts
			var decrypts []api.AuditEvent
			for _, e := range ts2.audits(t, admin, "&tenantId=acme") {
				if e.Action == "dataplane.decrypt" {
					decrypts = append(decrypts, e)
				}
			}
			failures := 0
			got := map[string]string{}
			for _, e := range decrypts {
				if mode == "per-minute" {
					got[e.Result+"/"+e.ErrorCode] = e.Details["count"]
					continue
				}
				got = e.Details
				if e.Result != "failure" {
					t.Errorf("per-request event of a batch with 999 failures: result %q", e.Result)
				}
			}
			for k, v := range got {
				if strings.HasPrefix(k, "failure/") || strings.HasPrefix(k, "failed:") {
					n, _ := strconv.Atoi(v)
					failures += n
				}
			}
			if failures != 999 {
				t.Errorf("%s: %d failed items recorded, want 999: %v", mode, failures, got)
			}
			want := map[string]string{"success/": "1"}
			if mode == "per-request" {
				want = map[string]string{"items": "1000", "succeeded": "1"}
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: %s = %q, want %q (all: %v)", mode, k, got[k], v, got)
				}
			}
		})
	}
}
