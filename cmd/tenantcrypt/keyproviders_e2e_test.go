package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/testkms"
)

func TestKeyProviderAPI(t *testing.T) {
	t.Parallel()
	e := startCMKEnv(t)
	ta := e.tenant(t, "acme", "enterprise")
	mrk := e.primary.ARN(testkms.MultiRegionKeyID)

	// Register: 201 with the key's multi-region facts.
	r := e.do("POST", kp, ta, register(mrk, "Acme key"))
	if r.status != 201 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	var p api.KeyProvider
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	fp := keyprovider.Fingerprint(mrk)
	if p.ARNFingerPrint != fp || len(fp) != 32 || p.KeyProvider != "AWS-KMS" || !p.MultiRegion || !p.DRCompliant ||
		p.ComplianceError != (api.ComplianceError{}) || p.PromotedToCurrentAt != api.NeverTime || p.TenantID != "acme" {
		t.Errorf("registered provider: %s", r.body)
	}
	if strings.Contains(string(r.body), `"current"`) {
		t.Errorf("a provider that is not current must omit \"current\": %s", r.body)
	}
	if !strings.Contains(string(r.body), `"complianceError":{"code":"","region":"","message":""}`) {
		t.Errorf("complianceError must be an object of empty strings when fine: %s", r.body)
	}
	if len(p.ReplicaKeys) == 0 || p.ReplicaKeys[0].Region != drRegion {
		t.Errorf("replicaKeys = %+v, want the %s replica", p.ReplicaKeys, drRegion)
	}

	t.Run("refusals", func(t *testing.T) {
		// A disabled key, made the way a customer would.
		ctx := context.Background()
		c := e.primary.Client(t)
		ck, err := c.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("disabled")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: ck.KeyMetadata.KeyId}); err != nil {
			t.Fatal(err)
		}
		biz := e.tenant(t, "smallco", "business")
		tests := []struct {
			name   string
			token  string
			body   any
			status int
			code   string
			detail string
		}{
			{"duplicate", ta, register(mrk, "again"), 409, "Encryption-34", "already registered"},
			{"replica of a registered mrk key", ta, register(e.dr.ARN(testkms.MultiRegionKeyID), "replica"), 409, "Encryption-34", "replica"},
			{"malformed ARN", ta, register("arn:aws:kms:nowhere", "x"), 417, "Encryption-35", ""},
			{"alias", ta, register("arn:aws:kms:eu-west-1:111122223333:alias/prod", "x"), 417, "Encryption-35", "alias"},
			{"asymmetric", ta, register(e.primary.ARN(testkms.AsymmetricKeyID), "rsa"), 406, "Encryption-33", "symmetric"},
			{"single-region", ta, register(e.primary.ARN(testkms.SymmetricKeyID), "single"), 406, "Encryption-33", "multi-region"},
			{"disabled", ta, register(aws.ToString(ck.KeyMetadata.Arn), "off"), 406, "Encryption-33", "not enabled"},
			{"business edition", biz, register(mrk, "biz"), 406, "Encryption-33", "business"},
			{"unknown type", ta, map[string]any{"arn": mrk, "name": "x", "keyprovider": "GCP"}, 400, "Encryption-01", "AWS-KMS"},
			{"older clients' keyProvider spelling", ta, map[string]any{"arn": e.primary.ARN(testkms.SecondMultiRegionKeyID), "name": "old", "keyProvider": "AWS-KMS"}, 201, "", ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := e.do("POST", kp, tt.token, tt.body)
				if r.status != tt.status {
					t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
				}
				if tt.code == "" {
					return
				}
				if got := r.errorCode(t); got != tt.code {
					t.Errorf("code %s, want %s", got, tt.code)
				}
				if !strings.Contains(strings.ToLower(string(r.body)), strings.ToLower(tt.detail)) {
					t.Errorf("body does not say %q: %s", tt.detail, r.body)
				}
			})
		}
		// The key policy refuses DescribeKey: 403. KMS does not answer: 408.
		other := e.tenant(t, "other", "enterprise")
		remove := e.pProxy.Inject(testkms.Fault{Action: "DescribeKey", AWSError: "AccessDeniedException"})
		if r := e.do("POST", kp, other, register(mrk, "denied")); r.status != 403 || r.errorCode(t) != "Encryption-31" {
			t.Errorf("access denied: %d %s, want 403", r.status, r.body)
		}
		remove()
		remove = e.pProxy.Inject(testkms.Fault{Action: "DescribeKey", Latency: 2 * cmkKMSTimeout})
		if r := e.do("POST", kp, other, register(mrk, "slow")); r.status != 408 || r.errorCode(t) != "Encryption-32" {
			t.Errorf("KMS timeout: %d %s, want 408", r.status, r.body)
		}
		remove()
	})

	t.Run("compliance error from the DR region", func(t *testing.T) {
		tb := e.tenant(t, "drtest", "enterprise")
		remove := e.dProx.Inject(testkms.Fault{Action: "Encrypt", AWSError: "AccessDeniedException"})
		r := e.do("POST", kp, tb, register(e.primary.ARN(testkms.SecondMultiRegionKeyID), "dr"))
		remove()
		var p api.KeyProvider
		_ = json.Unmarshal(r.body, &p)
		if r.status != 201 || p.DRCompliant || p.ComplianceError.Code != "Encryption-88" || p.ComplianceError.Region != drRegion ||
			!strings.Contains(p.ComplianceError.Message, "Encrypt") {
			t.Fatalf("register with Encrypt refused in the DR region: %d %s", r.status, r.body)
		}
		// Fixed in the DR region: a test finds it compliant again.
		r = e.do("POST", kp+"/"+p.ARNFingerPrint+"/actions/test", tb, nil)
		_ = json.Unmarshal(r.body, &p)
		if r.status != 201 || !p.DRCompliant || p.ComplianceError.Code != "" {
			t.Errorf("test after the fix: %d %s", r.status, r.body)
		}
		// And broken again: the test shows it without re-registering.
		remove = e.dProx.Inject(testkms.Fault{Action: "GenerateDataKey", AWSError: "AccessDeniedException"})
		r = e.do("POST", kp+"/"+p.ARNFingerPrint+"/actions/test", tb, nil)
		remove()
		_ = json.Unmarshal(r.body, &p)
		if r.status != 201 || p.DRCompliant || p.ComplianceError.Region != drRegion || !strings.Contains(p.ComplianceError.Message, "GenerateDataKey") {
			t.Errorf("test with GenerateDataKey refused in the DR region: %d %s", r.status, r.body)
		}
	})

	t.Run("read, rename, delete", func(t *testing.T) {
		r := e.do("GET", kp, ta, nil)
		var list []api.KeyProvider
		if err := json.Unmarshal(r.body, &list); err != nil || r.status != 200 || len(list) != 2 {
			t.Fatalf("list: %d %s (want a bare array of the 2 AWS providers)", r.status, r.body)
		}
		if r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control = %q", r.header.Get("Cache-Control"))
		}
		r = e.do("GET", kp+"/actions/list", ta, nil)
		if err := json.Unmarshal(r.body, &list); err != nil || len(list) != 3 || list[0].ARN != api.DefaultProviderARN ||
			list[0].KeyProvider != "Qlik" || !list[0].Current || list[0].CreatedAt != "Qlik managed" || list[0].ARNFingerPrint != "acme" {
			t.Errorf("actions/list: %d %s", r.status, r.body)
		}
		if r := e.do("GET", kp+"/acme", ta, nil); r.status != 200 || !strings.Contains(string(r.body), api.DefaultProviderARN) {
			t.Errorf("get default provider: %d %s", r.status, r.body)
		}
		if r := e.do("GET", kp+"/"+fp, ta, nil); r.status != 200 || !strings.Contains(string(r.body), mrk) {
			t.Errorf("get: %d %s", r.status, r.body)
		}
		if r := e.do("GET", kp+"/"+strings.Repeat("0", 32), ta, nil); r.status != 404 || r.errorCode(t) != "Encryption-30" {
			t.Errorf("get unknown: %d %s", r.status, r.body)
		}
		if r := e.do("GET", kp+"/"+strings.Repeat("a", 100), ta, nil); r.status != 414 {
			t.Errorf("get with a long fingerprint: %d %s, want 414", r.status, r.body)
		}
		patch := []map[string]any{{"op": "replace", "path": "/name", "value": "Renamed"}, {"op": "replace", "path": "/description", "value": "new"}}
		if r := e.do("PATCH", kp+"/"+fp, ta, patch); r.status != 204 || len(r.body) != 0 {
			t.Errorf("patch: %d %s", r.status, r.body)
		}
		if r := e.do("GET", kp+"/"+fp, ta, nil); !strings.Contains(string(r.body), `"name":"Renamed"`) || !strings.Contains(string(r.body), `"description":"new"`) {
			t.Errorf("after patch: %s", r.body)
		}
		for _, bad := range []any{
			[]map[string]any{{"op": "add", "path": "/name", "value": "x"}},
			[]map[string]any{{"op": "replace", "path": "/arn", "value": "x"}},
			[]map[string]any{{"op": "replace", "path": "/name", "value": 3}},
			map[string]any{"name": "x"},
			"not json",
		} {
			if r := e.do("PATCH", kp+"/"+fp, ta, bad); r.status != 400 {
				t.Errorf("patch %v: %d %s, want 400", bad, r.status, r.body)
			}
		}
		if r := e.do("PATCH", kp+"/"+strings.Repeat("0", 32), ta, patch); r.status != 404 {
			t.Errorf("patch unknown: %d", r.status)
		}
		if r := e.do("DELETE", kp+"/acme", ta, nil); r.status != 400 {
			t.Errorf("delete the default provider: %d %s, want 400", r.status, r.body)
		}
		second := keyprovider.Fingerprint(e.primary.ARN(testkms.SecondMultiRegionKeyID))
		if r := e.do("DELETE", kp+"/"+second, ta, nil); r.status != 204 || len(r.body) != 0 {
			t.Errorf("delete an unused provider: %d %s", r.status, r.body)
		}
		if r := e.do("DELETE", kp+"/"+second, ta, nil); r.status != 404 {
			t.Errorf("delete again: %d", r.status)
		}
		if r := e.do("GET", kp+"/migration/actions/details", ta, nil); r.status != 404 || r.errorCode(t) != "Encryption-39" {
			t.Errorf("details without a migration: %d %s", r.status, r.body)
		}
		// Another tenant sees none of it.
		if r := e.do("GET", kp+"/"+fp, e.token(auth.RoleTenantAdmin, "other"), nil); r.status != 404 {
			t.Errorf("another tenant's admin got %d for acme's provider", r.status)
		}
		if r := e.do("GET", kp, e.token(auth.RoleService, "acme"), nil); r.status != 403 {
			t.Errorf("a service token on the key-provider API: %d, want 403", r.status)
		}
	})

	t.Run("rate limit", func(t *testing.T) {
		tr := e.tenant(t, "busy", "enterprise")
		// 100 writes a minute: the burst is 100, and tokens refill at
		// 100/60 per second, so a slow (race-enabled) run may get a few more
		// before the first 429; bound that by the elapsed time.
		start := time.Now()
		var last response
		allowed := 0
		for range 200 {
			last = e.do("PATCH", kp+"/"+strings.Repeat("0", 32), tr, []map[string]any{{"op": "replace", "path": "/name", "value": "x"}})
			if last.status == 429 {
				break
			}
			allowed++
		}
		refill := int(time.Since(start).Seconds()*100/60) + 1
		if allowed < 100 || allowed > 100+refill {
			t.Errorf("%d writes allowed before the first 429, want 100 (+%d refilled)", allowed, refill)
		}
		if last.status != 429 || last.errorCode(t) != "Encryption-13" || last.header.Get("Retry-After") == "" {
			t.Errorf("after the burst: %d %s, want 429 with Retry-After", last.status, last.body)
		}
		if r := e.do("GET", kp, tr, nil); r.status != 200 {
			t.Errorf("reads are a separate tier: %d", r.status)
		}
		if r := e.do("PATCH", kp+"/"+strings.Repeat("0", 32), ta, []map[string]any{{"op": "replace", "path": "/name", "value": "x"}}); r.status == 429 {
			t.Errorf("another tenant was rate limited")
		}
	})
}

// TestCMKDataPlane: a tenant current on a customer managed key encrypts and
// decrypts through the HTTP data plane with data keys made by local-kms,
// and with a warm cache makes no KMS call at all.
func TestCMKDataPlane(t *testing.T) {
	t.Parallel()
	e := startCMKEnv(t)
	ta := e.tenant(t, "acme", "enterprise")
	svc := e.token(auth.RoleService, "acme")
	before := e.do("POST", "/api/v1/encryption/encrypt", svc, map[string]any{"plaintext": b64("before the CMK")}).json(t)["ciphertext"]

	mrk := e.primary.ARN(testkms.MultiRegionKeyID)
	if r := e.do("POST", kp, ta, register(mrk, "Acme key")); r.status != 201 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	fp := keyprovider.Fingerprint(mrk)
	e.pProxy.ResetCalls()
	r := e.do("POST", kp+"/"+fp+"/actions/migrate", ta, nil)
	var m api.Migration
	if err := json.Unmarshal(r.body, &m); err != nil || r.status != 200 || m.MigratingTo != mrk ||
		m.MigratingFrom != api.DefaultProviderARN || m.MigratingToPrefix != "#BYOKv1#:"+fp || m.MigratingToFingerprint != fp {
		t.Fatalf("migrate: %d %s", r.status, r.body)
	}
	done := e.waitMigration(t, ta)
	if done.Progress != 100 || done.CompletedAt == api.NeverTime {
		t.Errorf("completed migration: %+v", done)
	}
	r = e.do("GET", kp+"/"+fp, ta, nil)
	if !strings.Contains(string(r.body), `"current":true`) || strings.Contains(string(r.body), `"promotedToCurrentAt":"`+api.NeverTime) {
		t.Errorf("after the migration the CMK is current and promoted: %s", r.body)
	}

	// The migration made one data key at local-kms (the new active key)
	// and rewrapped the one existing key there.
	if g, enc := e.pProxy.Calls("GenerateDataKey"), e.pProxy.Calls("Encrypt"); g != 1 || enc != 1 {
		t.Errorf("migration's KMS calls: GenerateDataKey %d, Encrypt %d; want 1 and 1", g, enc)
	}
	// The data plane now uses the data key that local-kms made.
	r = e.do("POST", "/api/v1/encryption/encrypt", svc, map[string]any{"plaintext": b64("under the CMK")})
	ct, _ := r.json(t)["ciphertext"].(string)
	if r.status != 200 || !strings.HasPrefix(ct, "#BYOKv1#:"+fp+":") {
		t.Fatalf("encrypt on the CMK: %d %s", r.status, r.body)
	}
	if keyIDOfText(t, ct) == keyIDOfText(t, before.(string)) {
		t.Errorf("the CMK tenant still encrypts with the internal KMS's data key")
	}
	for _, c := range []any{ct, before} {
		if r := e.do("POST", "/api/v1/encryption/decrypt", svc, map[string]any{"ciphertext": c}); r.status != 200 {
			t.Errorf("decrypt %v: %d %s", c, r.status, r.body)
		}
	}
	st := e.do("GET", "/api/v1/encryption/status", ta, nil).json(t)
	if prov, _ := st["currentProvider"].(map[string]any); prov["arn"] != mrk || prov["keyprovider"] != "AWS-KMS" {
		t.Errorf("status: %v", st)
	}

	// Steady state: thousands of operations, no KMS call.
	e.pProxy.ResetCalls()
	const ops = 2000
	for i := range ops {
		path, body := "/api/v1/encryption/encrypt", map[string]any{"plaintext": b64("x")}
		if i%2 == 1 {
			path, body = "/api/v1/encryption/decrypt", map[string]any{"ciphertext": ct}
		}
		req, _ := http.NewRequest("POST", e.url+path, strings.NewReader(mustJSON(body)))
		req.Header.Set("Authorization", "Bearer "+svc)
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.http.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("op %d: %v %v", i, err, resp)
		}
		resp.Body.Close()
	}
	// The key monitor's DescribeKey checks are not the data plane's.
	calls := e.pProxy.Calls("") - e.pProxy.Calls("DescribeKey")
	t.Logf("KMS calls for %d warm data-plane operations: %d (%.2f per 10,000)", ops, calls, float64(calls)*10000/ops)
	if calls > 0 {
		t.Errorf("KMS calls in steady state = %d, want 0 (at most 1 per 10,000 operations)", calls)
	}
	metrics := string(e.do("GET", "/metrics", "", nil).body)
	if !strings.Contains(metrics, `tenantcrypt_kms_operations_total{op="GenerateDataKey",provider="cmk",result="ok"}`) {
		t.Errorf("metrics do not count the CMK's GenerateDataKey")
	}

	// The current provider cannot be deleted; reset moves back.
	if r := e.do("DELETE", kp+"/"+fp, ta, nil); r.status != 424 || r.errorCode(t) != "Encryption-36" {
		t.Errorf("delete the current provider: %d %s, want 424", r.status, r.body)
	}
	if r := e.do("POST", kp+"/"+fp+"/actions/migrate", ta, nil); r.status != 412 {
		t.Errorf("migrate to the current provider: %d %s, want 412", r.status, r.body)
	}
	r = e.do("POST", kp+"/actions/reset-to-default-provider", ta, nil)
	if r.status != 205 {
		t.Fatalf("reset: %d %s", r.status, r.body)
	}
	if d := e.do("GET", kp+"/migration/actions/details", ta, nil); d.status != 200 || !strings.Contains(string(d.body), api.DefaultProviderARN) {
		t.Errorf("details right after the 205 must show the reset: %d %s", d.status, d.body)
	}
	e.waitMigration(t, ta)
	if r := e.do("POST", kp+"/actions/reset-to-default-provider", ta, nil); r.status != 200 || !strings.Contains(string(r.body), "message") {
		t.Errorf("reset when on the default already: %d %s", r.status, r.body)
	}
	for _, c := range []any{ct, before} {
		if r := e.do("POST", "/api/v1/encryption/decrypt", svc, map[string]any{"ciphertext": c}); r.status != 200 {
			t.Errorf("decrypt %v after the reset: %d %s", c, r.status, r.body)
		}
	}
	if r := e.do("DELETE", kp+"/"+fp, ta, nil); r.status != 204 {
		t.Errorf("delete once unused: %d %s", r.status, r.body)
	}
}

func keyIDOfText(t *testing.T, text string) string {
	t.Helper()
	_, bin, err := envelope.ParseText(text)
	if err != nil {
		t.Fatal(err)
	}
	c, err := envelope.ParseCiphertext(bin)
	if err != nil {
		t.Fatal(err)
	}
	return c.KeyID.String()
}
