package server

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
	"github.com/tenantcrypt/tenantcrypt/internal/tenantstatus"
)

// TestStatusJSON pins the wire form of a report; the assembly is tested
// in package tenantstatus.
func TestStatusJSON(t *testing.T) {
	s := &Server{cfg: Config{RevocationBound: 10 * time.Second}}
	since := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

	internal := s.statusJSON("acme", tenantstatus.Report{
		Tenant:   keyring.Tenant{ID: "acme", Provider: kms.InternalRef(), State: keyring.StateActive},
		Prefix:   "#QLIKv1#:acme",
		KeyState: tenantstatus.KeyUnreachable,
	})
	if internal.KeyState != "Service unavailable" || internal.Provider.KeyProvider != "Qlik" ||
		internal.Provider.ARN != api.DefaultProviderARN || internal.Provider.ARNFingerPrint != "acme" ||
		internal.RevocationBound != "10s" || internal.StateChangedAt != nil || internal.LastCheck != nil {
		t.Errorf("internal KMS status: %+v", internal)
	}

	fp := "0123456789abcdef0123456789abcdef"
	home := lifecycle.KeyCheck{Provider: kms.MustCMKRef(fp), Region: "eu-west-1", KeyARN: "arn:home", Result: lifecycle.ResultUnavailable, Detail: "no answer", CheckedAt: since}
	dr := lifecycle.KeyCheck{Provider: kms.MustCMKRef(fp), Region: "eu-central-1", KeyARN: "arn:dr", Result: lifecycle.ResultOK, KeyState: "Enabled", CheckedAt: since}
	cmk := s.statusJSON("acme", tenantstatus.Report{
		Tenant:     keyring.Tenant{ID: "acme", Provider: kms.MustCMKRef(fp), State: keyring.StateActive, StateChangedAt: since},
		Prefix:     "#BYOKv1#:" + fp,
		KeyState:   tenantstatus.KeyNotChecked,
		CipherKeys: map[kms.Ref]int{kms.InternalRef(): 2, kms.MustCMKRef(fp): 3},
		CMK: &tenantstatus.CMK{
			Fingerprint:   fp,
			Provider:      &keyprovider.Provider{Kind: keyprovider.DefaultKind, ARN: "arn:home", DRCompliant: true},
			Checks:        []lifecycle.KeyCheck{home, dr},
			CheckInterval: 5 * time.Second,
			Degraded:      true, DegradedReason: "failing over",
			Failover: lifecycle.Failover{Active: true, From: "eu-west-1", To: "eu-central-1", Since: since},
		},
	})
	b, err := json.Marshal(cmk)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	provider, _ := got["currentProvider"].(map[string]any)
	last, _ := got["lastCheck"].(map[string]any)
	regions, _ := last["regions"].([]any)
	counts, _ := got["cipherKeys"].(map[string]any)
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"keyState", got["keyState"], "Unknown"},
		{"currentProvider.keyprovider", provider["keyprovider"], "AWS-KMS"},
		{"currentProvider.arn", provider["arn"], "arn:home"},
		{"currentProvider.arnFingerPrint", provider["arnFingerPrint"], fp},
		{"drCompliant", got["drCompliant"], true},
		{"lastCheck.region", last["region"], "eu-west-1"},
		{"lastCheck.regions", len(regions), 2},
		{"degraded", got["degraded"], true},
		{"degradedReason", got["degradedReason"], "failing over"},
		{"keyCheckInterval", got["keyCheckInterval"], "5s"},
		{"stateChangedAt", got["stateChangedAt"], "2025-03-01T10:00:00Z"},
		{"failover", got["failover"] != nil, true},
		{"cipherKeys", len(counts), 2},
		{"cipherKeys.internal", counts["internal"], float64(2)},
		{"cipherKeys.cmk", counts["cmk:"+fp], float64(3)},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v (status %s)", c.name, c.got, c.want, b)
		}
	}
}
