package tenantstatus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
)

const fp = "0123456789abcdef0123456789abcdef"

var cmkRef = kms.MustCMKRef(fp)

// fakeTenants serves one tenant; stored is what Tenant returns (a check
// may have moved it since TenantStatus).
type fakeTenants struct {
	status keyring.TenantStatus
	err    error
	stored *keyring.Tenant
}

func (f *fakeTenants) TenantStatus(context.Context, string) (keyring.TenantStatus, error) {
	return f.status, f.err
}

func (f *fakeTenants) Tenant(context.Context, string) (keyring.Tenant, error) {
	if f.stored != nil {
		return *f.stored, nil
	}
	return f.status.Tenant, nil
}

type fakeMonitor struct {
	stored      []lifecycle.KeyCheck
	storedErr   error
	fresh       []lifecycle.KeyCheck
	freshErr    error
	checked     int
	failover    lifecycle.Failover
	failoverErr error
}

func (m *fakeMonitor) KeyChecks(context.Context, string) ([]lifecycle.KeyCheck, error) {
	return m.stored, m.storedErr
}

func (m *fakeMonitor) Check(context.Context, string) ([]lifecycle.KeyCheck, error) {
	m.checked++
	return m.fresh, m.freshErr
}

func (m *fakeMonitor) Interval() time.Duration { return 5 * time.Second }

func (m *fakeMonitor) Failover(context.Context, keyring.Tenant) (lifecycle.Failover, error) {
	return m.failover, m.failoverErr
}

type fakeProviders struct {
	p   keyprovider.Provider
	err error
}

func (f fakeProviders) Get(context.Context, string, string) (keyprovider.Provider, error) {
	return f.p, f.err
}

func internalStatus(key kms.KeyInfo, keyErr error) keyring.TenantStatus {
	return keyring.TenantStatus{
		Tenant: keyring.Tenant{ID: "acme", Provider: kms.InternalRef(), State: keyring.StateActive},
		Prefix: "#QLIKv1#:acme", Key: key, KeyErr: keyErr, CipherKeys: map[kms.Ref]int{kms.InternalRef(): 3},
	}
}

func cmkStatus(state keyring.TenantState) keyring.TenantStatus {
	return keyring.TenantStatus{
		Tenant: keyring.Tenant{ID: "acme", Provider: cmkRef, State: state},
		Prefix: "#BYOKv1#:" + fp, CipherKeys: map[kms.Ref]int{cmkRef: 2},
	}
}

func check(result, keyState, region string) lifecycle.KeyCheck {
	return lifecycle.KeyCheck{TenantID: "acme", Provider: cmkRef, Region: region, Result: result, KeyState: keyState,
		Detail: "AWS KMS in " + region + " did not answer"}
}

func TestReportInternalKMS(t *testing.T) {
	tests := []struct {
		name   string
		key    kms.KeyInfo
		keyErr error
		want   KeyState
	}{
		{"enabled", kms.KeyInfo{State: kms.KeyEnabled}, nil, "Enabled"},
		{"root key unavailable", kms.KeyInfo{}, &kms.Error{Op: "Describe", Kind: kms.ErrUnavailable, Err: errors.New("no current root key version")}, KeyUnreachable},
		{"throttled", kms.KeyInfo{}, &kms.Error{Op: "Describe", Kind: kms.ErrThrottled}, KeyThrottled},
		{"not configured", kms.KeyInfo{}, &kms.Error{Op: "Describe", Kind: kms.ErrNotConfigured}, KeyKMSNotConfigured},
		{"database", kms.KeyInfo{}, &fault.StoreError{Op: "reading KEKs", Err: errors.New("down")}, KeyUnreachable},
		{"deadline", kms.KeyInfo{}, fmt.Errorf("describe: %w", context.DeadlineExceeded), KeyUnreachable},
		{"refused", kms.KeyInfo{}, &kms.Error{Op: "Describe", Kind: kms.ErrKeyDisabled}, KeyRefused},
		{"pending deletion", kms.KeyInfo{}, &kms.Error{Op: "Describe", Kind: kms.ErrKeyPendingDeletion}, KeyPendingDeletion},
		{"anything else", kms.KeyInfo{}, errors.New("boom"), KeyDescribeFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mon := &fakeMonitor{}
			svc := New(Config{Tenants: &fakeTenants{status: internalStatus(tt.key, tt.keyErr)}, Monitor: mon, KeyProviders: fakeProviders{}})
			rep, err := svc.Report(context.Background(), "acme")
			if err != nil {
				t.Fatalf("Report: %v", err)
			}
			if rep.KeyState != tt.want {
				t.Errorf("KeyState = %q, want %q", rep.KeyState, tt.want)
			}
			if rep.CMK != nil {
				t.Errorf("CMK = %+v, want nil on the internal KMS", rep.CMK)
			}
			if rep.Prefix != "#QLIKv1#:acme" || rep.CipherKeys[kms.InternalRef()] != 3 {
				t.Errorf("Prefix %q, CipherKeys %v: want the keyring's", rep.Prefix, rep.CipherKeys)
			}
			if mon.checked != 0 {
				t.Errorf("the internal KMS's key was checked %d times by the monitor, want 0", mon.checked)
			}
		})
	}
}

func TestReportCMK(t *testing.T) {
	record := keyprovider.Provider{TenantID: "acme", Fingerprint: fp, ARN: "arn:aws:kms:eu-west-1:111122223333:key/mrk-" + fp, DRCompliant: true}
	tests := []struct {
		name      string
		state     keyring.TenantState
		stored    *keyring.Tenant // the tenant after the check
		monitor   *fakeMonitor
		providers KeyProviders
		// want
		keyState     KeyState
		checks       int
		checkedNow   bool
		degraded     string // a part of the reason; "" for not degraded
		failover     bool
		tenantState  keyring.TenantState
		withProvider bool
	}{
		{name: "no monitor, no records", state: keyring.StateActive,
			keyState: KeyNotChecked, tenantState: keyring.StateActive},
		{name: "stored checks of the current key", state: keyring.StateActive,
			monitor:   &fakeMonitor{stored: []lifecycle.KeyCheck{check(lifecycle.ResultOK, "Enabled", "eu-west-1"), check(lifecycle.ResultOK, "Enabled", "eu-central-1")}},
			providers: fakeProviders{p: record},
			keyState:  "Enabled", checks: 2, tenantState: keyring.StateActive, withProvider: true},
		{name: "never checked: checked now, which moves the tenant", state: keyring.StateActive,
			stored:   &keyring.Tenant{ID: "acme", Provider: cmkRef, State: keyring.StateLocked},
			monitor:  &fakeMonitor{fresh: []lifecycle.KeyCheck{check(lifecycle.ResultPendingDeletion, "PendingDeletion", "eu-west-1")}},
			keyState: "PendingDeletion", checks: 1, checkedNow: true, tenantState: keyring.StateLocked},
		{name: "stored checks of the previous key: checked now", state: keyring.StateActive,
			monitor: &fakeMonitor{
				stored: []lifecycle.KeyCheck{{Provider: kms.InternalRef(), Result: lifecycle.ResultOK, KeyState: "Enabled"}},
				fresh:  []lifecycle.KeyCheck{check(lifecycle.ResultOK, "Enabled", "eu-west-1")}},
			keyState: "Enabled", checks: 1, checkedNow: true, tenantState: keyring.StateActive},
		{name: "a check that fails leaves the state unknown", state: keyring.StateActive,
			monitor:  &fakeMonitor{freshErr: errors.New("kms down")},
			keyState: KeyNotChecked, checkedNow: true, tenantState: keyring.StateActive},
		{name: "destroyed: no new check", state: keyring.StateDestroyed,
			monitor:  &fakeMonitor{},
			keyState: KeyNotChecked, tenantState: keyring.StateDestroyed},
		{name: "unreachable KMS degrades an active tenant", state: keyring.StateActive,
			monitor:  &fakeMonitor{stored: []lifecycle.KeyCheck{check(lifecycle.ResultUnavailable, "", "eu-west-1")}},
			keyState: KeyNotChecked, checks: 1, degraded: "cached data keys serve until their TTL", tenantState: keyring.StateActive},
		{name: "unreachable KMS with a failover", state: keyring.StateActive,
			monitor: &fakeMonitor{stored: []lifecycle.KeyCheck{check(lifecycle.ResultUnavailable, "", "eu-west-1")},
				failover: lifecycle.Failover{Active: true, From: "eu-west-1", To: "eu-central-1", Since: time.Unix(1700000000, 0)}},
			keyState: KeyNotChecked, checks: 1, degraded: "fail over to its replica in eu-central-1", failover: true, tenantState: keyring.StateActive},
		{name: "a refused tenant is not degraded", state: keyring.StateKeyUnavailable,
			monitor:  &fakeMonitor{stored: []lifecycle.KeyCheck{check(lifecycle.ResultThrottled, "", "eu-west-1")}},
			keyState: KeyNotChecked, checks: 1, tenantState: keyring.StateKeyUnavailable},
		{name: "an unreadable provider record is left out", state: keyring.StateActive,
			providers: fakeProviders{err: &fault.StoreError{Op: "reading key provider", Err: errors.New("down")}},
			keyState:  KeyNotChecked, tenantState: keyring.StateActive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Tenants: &fakeTenants{status: cmkStatus(tt.state), stored: tt.stored}, KeyProviders: tt.providers}
			if tt.monitor != nil {
				cfg.Monitor = tt.monitor
			}
			rep, err := New(cfg).Report(context.Background(), "acme")
			if err != nil {
				t.Fatalf("Report: %v", err)
			}
			if rep.KeyState != tt.keyState {
				t.Errorf("KeyState = %q, want %q", rep.KeyState, tt.keyState)
			}
			if rep.Tenant.State != tt.tenantState {
				t.Errorf("tenant state = %v, want %v", rep.Tenant.State, tt.tenantState)
			}
			cmk := rep.CMK
			if cmk == nil {
				t.Fatal("CMK = nil, want the customer managed key")
			}
			if cmk.Fingerprint != fp {
				t.Errorf("Fingerprint = %q, want %q", cmk.Fingerprint, fp)
			}
			if got := len(cmk.Checks); got != tt.checks {
				t.Errorf("%d checks, want %d", got, tt.checks)
			}
			if tt.monitor != nil {
				if got := tt.monitor.checked > 0; got != tt.checkedNow {
					t.Errorf("checked now = %v, want %v", got, tt.checkedNow)
				}
				if cmk.CheckInterval != 5*time.Second {
					t.Errorf("CheckInterval = %v, want the monitor's 5s", cmk.CheckInterval)
				}
			} else if cmk.CheckInterval != 0 {
				t.Errorf("CheckInterval = %v without a monitor, want 0", cmk.CheckInterval)
			}
			if got := cmk.Degraded; got != (tt.degraded != "") || !strings.Contains(cmk.DegradedReason, tt.degraded) {
				t.Errorf("Degraded = %v (%q), want %v (%q)", got, cmk.DegradedReason, tt.degraded != "", tt.degraded)
			}
			if cmk.Failover.Active != tt.failover {
				t.Errorf("Failover = %+v, want active %v", cmk.Failover, tt.failover)
			}
			if got := cmk.Provider != nil; got != tt.withProvider {
				t.Errorf("Provider = %+v, want one: %v", cmk.Provider, tt.withProvider)
			}
		})
	}
}

func TestReportErrors(t *testing.T) {
	storeDown := &fault.StoreError{Op: "reading tenant", Err: errors.New("down")}
	tests := []struct {
		name    string
		tenants *fakeTenants
		monitor *fakeMonitor
		want    error
	}{
		{"no such tenant", &fakeTenants{err: keyring.ErrTenantNotFound}, &fakeMonitor{}, keyring.ErrTenantNotFound},
		{"database", &fakeTenants{err: storeDown}, &fakeMonitor{}, fault.ErrStoreUnavailable},
		{"stored checks unreadable", &fakeTenants{status: cmkStatus(keyring.StateActive)}, &fakeMonitor{storedErr: storeDown}, fault.ErrStoreUnavailable},
		{"failover unknown", &fakeTenants{status: cmkStatus(keyring.StateActive)},
			&fakeMonitor{stored: []lifecycle.KeyCheck{check(lifecycle.ResultOK, "Enabled", "eu-west-1")}, failoverErr: storeDown}, fault.ErrStoreUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{Tenants: tt.tenants, Monitor: tt.monitor}).Report(context.Background(), "acme")
			if !errors.Is(err, tt.want) {
				t.Errorf("Report: %v, want %v", err, tt.want)
			}
		})
	}
}

// A check cut short by the caller's context is the caller's error, not an
// unknown key state.
func TestReportCheckCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	mon := &fakeMonitor{freshErr: context.Canceled}
	_, err := New(Config{Tenants: &fakeTenants{status: cmkStatus(keyring.StateActive)}, Monitor: mon}).Report(ctx, "acme")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Report: %v, want context.Canceled", err)
	}
}
