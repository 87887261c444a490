package kmipkind_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/kmip/kmipkind"
	"github.com/tenantcrypt/tenantcrypt/internal/testkms/pykmip"
)

type fixture struct {
	srv   *pykmip.Server
	creds pykmip.Credentials
	kind  *kmipkind.Kind
}

func newFixture(t *testing.T) fixture {
	s := pykmip.Start(t)
	return fixture{srv: s, creds: s.Client(t, "tenantcrypt-kind"), kind: kmipkind.New(kmipkind.Config{})}
}

func member(ca, cert, key []byte, endpoints ...string) json.RawMessage {
	m := map[string]any{"serverCA": string(ca), "clientCertificate": string(cert), "clientKey": string(key)}
	if endpoints != nil {
		m["endpoints"] = endpoints
	}
	b, _ := json.Marshal(m)
	return b
}

// target configures a registration of uid as the service would.
func (f fixture) target(t *testing.T, uid string, raw json.RawMessage) (keyprovider.Target, error) {
	t.Helper()
	key, err := f.kind.ParseKey("kmip://" + f.srv.Addr + "/" + uid)
	if err != nil {
		t.Fatal(err)
	}
	set, err := f.kind.Configure(key, raw)
	if err != nil {
		return keyprovider.Target{}, err
	}
	t.Cleanup(set.Secret.Destroy)
	return keyprovider.Target{
		Provider: keyprovider.Provider{TenantID: "t1", Fingerprint: "0123456789abcdef0123456789abcdef", Kind: kmipkind.Name, ARN: key.String(), Key: key, Config: set.Config},
		Secret:   set.Secret,
	}, nil
}

func (f fixture) mustTarget(t *testing.T, uid string, endpoints ...string) keyprovider.Target {
	t.Helper()
	tg, err := f.target(t, uid, member(f.srv.CAPEM, f.creds.CertPEM, f.creds.KeyPEM, endpoints...))
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func TestConfigure(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	key, _ := f.kind.ParseKey("kmip://127.0.0.1:5696/1")
	good := member(f.srv.CAPEM, f.creds.CertPEM, f.creds.KeyPEM, "kmip2.example.com:5696")
	set, err := f.kind.Configure(key, good)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(set.Config), "PRIVATE KEY") || !strings.Contains(string(set.Secret.Reveal()), "PRIVATE KEY") {
		t.Errorf("the client key must be the secret and nowhere in the config %s", set.Config)
	}
	set.Secret.Destroy()

	var input *fault.InputError
	for name, raw := range map[string]json.RawMessage{
		"missing":       nil,
		"not an object": json.RawMessage(`"x"`),
		"unknown field": json.RawMessage(`{"serverCA":"a","clientCertificate":"b","clientKey":"c","extra":1}`),
		"no clientKey":  json.RawMessage(`{"serverCA":"a","clientCertificate":"b"}`),
		"PEM a number":  json.RawMessage(`{"serverCA":1,"clientCertificate":"b","clientKey":"c"}`),
		"endpoints":     json.RawMessage(`{"serverCA":"a","clientCertificate":"b","clientKey":"c","endpoints":"h:1"}`),
	} {
		if _, err := f.kind.Configure(key, raw); !errors.As(err, &input) {
			t.Errorf("%s: Configure = %v, want an InputError", name, err)
		}
	}
	for name, raw := range map[string]json.RawMessage{
		"garbled CA":     member([]byte("not PEM"), f.creds.CertPEM, f.creds.KeyPEM),
		"garbled key":    member(f.srv.CAPEM, f.creds.CertPEM, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")),
		"bad endpoint":   member(f.srv.CAPEM, f.creds.CertPEM, f.creds.KeyPEM, "no-port"),
		"key of another": member(f.srv.CAPEM, f.creds.CertPEM, f.srv.Client(t, "x").KeyPEM),
	} {
		if _, err := f.kind.Configure(key, raw); !errors.Is(err, keyprovider.ErrMalformedARN) {
			t.Errorf("%s: Configure = %v, want ErrMalformedARN", name, err)
		} else if strings.Contains(err.Error(), "PRIVATE KEY") {
			t.Errorf("%s: the error quotes the key: %v", name, err)
		}
	}
	if _, err := f.kind.ParseKey("kmip://127.0.0.1/1"); !errors.Is(err, keyprovider.ErrMalformedARN) {
		t.Errorf("ParseKey without a port = %v, want ErrMalformedARN", err)
	}
}

func TestPatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tg := f.mustTarget(t, "1")
	cur := keyprovider.Settings{Config: tg.Config, Secret: tg.Secret}
	renewed := f.srv.Client(t, "tenantcrypt-kind")
	s1, err := f.kind.Patch(cur, "/clientCertificate", mustJSON(string(renewed.CertPEM)))
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Secret.Destroy()
	s2, err := f.kind.Patch(s1, "/clientKey", mustJSON(string(renewed.KeyPEM)))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Secret.Destroy()
	if string(s2.Secret.Reveal()) != string(renewed.KeyPEM) || !strings.Contains(string(s2.Config), jsonText(renewed.CertPEM)) {
		t.Error("the patched settings do not hold the renewed certificate and key")
	}
	if string(cur.Secret.Reveal()) != string(f.creds.KeyPEM) {
		t.Error("Patch changed the caller's settings")
	}
	s3, err := f.kind.Patch(s2, "/endpoints", json.RawMessage(`["kmip2.example.com:5696"]`))
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Secret.Destroy()
	if !strings.Contains(string(s3.Config), "kmip2.example.com:5696") {
		t.Errorf("endpoints not patched: %s", s3.Config)
	}
	var input *fault.InputError
	if _, err := f.kind.Patch(s3, "/name", mustJSON("x")); !errors.As(err, &input) {
		t.Errorf("Patch of an unknown path = %v, want an InputError", err)
	}
	if _, err := f.kind.Patch(s3, "/serverCA", mustJSON("")); !errors.As(err, &input) {
		t.Errorf("Patch to an empty CA = %v, want an InputError", err)
	}
	if _, err := f.kind.Patch(s3, "/endpoints", json.RawMessage(`["x"]`)); !errors.Is(err, keyprovider.ErrMalformedARN) {
		t.Errorf("Patch to a malformed endpoint = %v, want ErrMalformedARN", err)
	}
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

func jsonText(b []byte) string {
	s := string(mustJSON(string(b)))
	return s[1 : len(s)-1]
}

// TestRegistration is what registration (strict) and an admin's test
// find about keys of every sort.
func TestRegistration(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()

	good := f.srv.CreateKey(t, f.creds, pykmip.KeyOptions{})
	tg := f.mustTarget(t, good)
	if err := f.kind.Test(ctx, &tg, true); err != nil {
		t.Fatalf("Test of a good key: %v", err)
	}
	if tg.DRCompliant || tg.Compliance.Code != keyprovider.CodeNotCompliant || tg.MultiRegion {
		t.Errorf("one endpoint: DRCompliant %v, compliance %+v, multiRegion %v; want not compliant, not multi-region", tg.DRCompliant, tg.Compliance, tg.MultiRegion)
	}
	peer := f.srv.StartPeer(t)
	tg = f.mustTarget(t, good, peer.Addr)
	if err := f.kind.Test(ctx, &tg, true); err != nil {
		t.Fatalf("Test with two endpoints: %v", err)
	}
	if !tg.DRCompliant || tg.Compliance.Code != "" {
		t.Errorf("two endpoints that answer: DRCompliant %v, compliance %+v; want compliant", tg.DRCompliant, tg.Compliance)
	}
	peer.Stop(t)
	if err := f.kind.Test(ctx, &tg, false); err != nil {
		t.Fatalf("Test with one endpoint of two down: %v", err)
	}
	if tg.DRCompliant || !strings.Contains(tg.Compliance.Message, "only") {
		t.Errorf("one endpoint of two down: DRCompliant %v, compliance %+v; want not compliant", tg.DRCompliant, tg.Compliance)
	}

	revoked := f.srv.CreateKey(t, f.creds, pykmip.KeyOptions{})
	f.srv.Revoke(t, f.creds, revoked, false)
	unsuitable := map[string]string{
		"AES-128":      f.srv.CreateKey(t, f.creds, pykmip.KeyOptions{Length: 128}),
		"encrypt only": f.srv.CreateKey(t, f.creds, pykmip.KeyOptions{Usage: []string{"ENCRYPT"}}),
		"pre-active":   f.srv.CreateKey(t, f.creds, pykmip.KeyOptions{PreActive: true}),
		"revoked":      revoked,
		"unknown":      "4711",
	}
	for name, uid := range unsuitable {
		tg := f.mustTarget(t, uid)
		var refused *keyprovider.RefusedError
		if err := f.kind.Test(ctx, &tg, true); !errors.As(err, &refused) {
			t.Errorf("%s: strict Test = %v, want a RefusedError", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
		tg = f.mustTarget(t, uid)
		if err := f.kind.Test(ctx, &tg, false); err != nil || tg.DRCompliant || tg.Compliance.Message == "" {
			t.Errorf("%s: Test = %v, compliance %+v; want no error and a compliance error", name, err, tg.Compliance)
		}
	}

	// Another certificate of the same CA does not own the key.
	other := f.srv.Client(t, "another-tenant")
	tg, _ = f.target(t, good, member(f.srv.CAPEM, other.CertPEM, other.KeyPEM))
	if err := f.kind.Test(ctx, &tg, true); !errors.Is(err, kms.ErrAccessDenied) {
		t.Errorf("another owner: Test = %v, want ErrAccessDenied", err)
	}
	// The server's certificate is not the registered CA's.
	stranger := pykmip.Start(t)
	tg, _ = f.target(t, good, member(stranger.CAPEM, f.creds.CertPEM, f.creds.KeyPEM))
	if err := f.kind.Test(ctx, &tg, true); !errors.Is(err, kms.ErrAccessDenied) {
		t.Errorf("untrusted server: Test = %v, want ErrAccessDenied", err)
	}
	stranger.Stop(t)
	key, _ := f.kind.ParseKey("kmip://" + stranger.Addr + "/1")
	tg.Key, tg.ARN = key, key.String()
	if err := f.kind.Test(ctx, &tg, true); !errors.Is(err, kms.ErrUnavailable) {
		t.Errorf("unreachable server: Test = %v, want ErrUnavailable", err)
	}
}

// TestInspect drives a key through the states the key monitor must see.
func TestInspect(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	uid := f.srv.CreateKey(t, f.creds, pykmip.KeyOptions{})
	tg := f.mustTarget(t, uid)
	want := func(what string, known bool, state keyring.TenantState, result string) {
		t.Helper()
		v := f.kind.Inspect(ctx, tg, true)
		if len(v.Checks) != 1 {
			t.Fatalf("%s: %d checks, want 1", what, len(v.Checks))
		}
		c := v.Checks[0]
		if v.Known != known || known && v.State != state || c.Result != result || c.Detail == "" || c.CheckedAt.IsZero() {
			t.Fatalf("%s: Inspect = known %v, state %v, check %+v; want known %v, state %v, result %s", what, v.Known, v.State, c, known, state, result)
		}
		t.Logf("%s: %s", what, c.Detail)
	}
	want("active", true, keyring.StateActive, keyprovider.ResultOK)
	f.srv.Withdraw(t)
	want("permission withdrawn", true, keyring.StateKeyUnavailable, keyprovider.ResultAccessDenied)
	f.srv.Grant(t)
	want("permission granted again", true, keyring.StateActive, keyprovider.ResultOK)
	f.srv.Distrust(t)
	want("client certificate distrusted", true, keyring.StateKeyUnavailable, keyprovider.ResultAccessDenied)
	f.srv.Stop(t)
	want("server down", false, 0, keyprovider.ResultUnavailable)
	f.srv.Restart(t)
	want("server back", true, keyring.StateActive, keyprovider.ResultOK)
	f.srv.Revoke(t, f.creds, uid, false)
	want("revoked", true, keyring.StateKeyUnavailable, keyprovider.ResultDisabled)
	f.srv.Destroy(t, f.creds, uid)
	want("destroyed", true, keyring.StateDestroyed, keyprovider.ResultNotFound)
}
