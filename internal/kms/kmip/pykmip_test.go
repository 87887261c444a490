package kmip_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/kmip"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/kmstest"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
	"github.com/tenantcrypt/tenantcrypt/internal/testkms/pykmip"
)

// fixture is a pykmip-server and a client certificate for it.
type fixture struct {
	srv   *pykmip.Server
	creds pykmip.Credentials
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	s := pykmip.Start(t)
	return fixture{srv: s, creds: s.Client(t, "tenantcrypt")}
}

// client returns a client of f's server with f's certificate; endpoints
// default to the server's.
func (f fixture) client(t *testing.T, timeout time.Duration, endpoints ...string) *kmip.Client {
	t.Helper()
	return f.clientWith(t, f.creds, f.srv.CAPEM, timeout, endpoints...)
}

func (f fixture) clientWith(t *testing.T, creds pykmip.Credentials, ca []byte, timeout time.Duration, endpoints ...string) *kmip.Client {
	t.Helper()
	cr, err := kmip.ParseCredentials(ca, creds.CertPEM, creds.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if len(endpoints) == 0 {
		endpoints = []string{f.srv.Addr}
	}
	c, err := kmip.New(kmip.Config{Endpoints: endpoints, RootCAs: cr.RootCAs, Certificate: cr.Certificate, Timeout: timeout, Ref: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func (f fixture) provider(t *testing.T, c *kmip.Client, uid string) *kmip.Provider {
	return kmip.NewProvider(kms.MustCMKRef("kmip-"+uid), kmip.KeyURI{Endpoint: f.srv.Addr, UID: uid}, c)
}

func binding() kms.Binding {
	return kms.Binding{kms.BindingTenant: "t1", kms.BindingKeyID: "k1"}
}

func wantKind(t *testing.T, what string, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("%s: error %v, want %v", what, err, kind)
	}
	var ke *kms.Error
	if !errors.As(err, &ke) {
		t.Fatalf("%s: error %T is not a *kms.Error", what, err)
	}
}

// TestConformance runs the kms.Provider suite with one KMIP key per
// tenant, all owned by one client certificate.
func TestConformance(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.client(t, 0)
	var mu sync.Mutex
	keys := map[string]string{}
	kmstest.Run(t, func(t *testing.T, tenantID string) kms.Provider {
		mu.Lock()
		defer mu.Unlock()
		uid, ok := keys[tenantID]
		if !ok {
			uid = f.srv.CreateKey(t, f.creds, pykmip.KeyOptions{})
			keys[tenantID] = uid
		}
		return f.provider(t, c, uid)
	})
}

// TestServer checks the operations and every key state against one
// server.
func TestServer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.client(t, 0)
	ctx := t.Context()

	t.Run("DiscoverVersions", func(t *testing.T) {
		vs, err := c.DiscoverVersions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !contains(vs, kmip.Version{Major: 1, Minor: 4}) {
			t.Errorf("DiscoverVersions = %v, want 1.4 among them", vs)
		}
	})
	t.Run("Query", func(t *testing.T) {
		info, err := c.Query(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range []kmip.Operation{kmip.OpEncrypt, kmip.OpDecrypt, kmip.OpGetAttributes} {
			if !info.Supports(op) {
				t.Errorf("Query lists %v, want %v among them", info.Operations, op)
			}
		}
		if info.Vendor == "" {
			t.Error("Query returned no vendor")
		}
	})
	t.Run("GetAttributes", func(t *testing.T) {
		tests := []struct {
			name string
			opts pykmip.KeyOptions
			want kmip.Attributes
		}{
			{"AES-256 active", pykmip.KeyOptions{}, kmip.Attributes{ObjectType: kmip.ObjectSymmetricKey, State: kmip.StateActive, Algorithm: kmip.AlgorithmAES, Length: 256, UsageMask: kmip.UsageEncrypt | kmip.UsageDecrypt}},
			{"AES-128 pre-active", pykmip.KeyOptions{Length: 128, PreActive: true}, kmip.Attributes{ObjectType: kmip.ObjectSymmetricKey, State: kmip.StatePreActive, Algorithm: kmip.AlgorithmAES, Length: 128, UsageMask: kmip.UsageEncrypt | kmip.UsageDecrypt}},
			{"encrypt only", pykmip.KeyOptions{Usage: []string{"ENCRYPT"}}, kmip.Attributes{ObjectType: kmip.ObjectSymmetricKey, State: kmip.StateActive, Algorithm: kmip.AlgorithmAES, Length: 256, UsageMask: kmip.UsageEncrypt}},
		}
		for _, tt := range tests {
			uid := f.srv.CreateKey(t, f.creds, tt.opts)
			got, err := c.GetAttributes(ctx, uid)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if got != tt.want {
				t.Errorf("%s: GetAttributes = %+v, want %+v", tt.name, got, tt.want)
			}
		}
		_, err := c.GetAttributes(ctx, "no-such-key")
		wantKind(t, "GetAttributes of an unknown key", err, kms.ErrKeyNotFound)
	})
	t.Run("States", func(t *testing.T) {
		active := f.srv.CreateKey(t, f.creds, pykmip.KeyOptions{})
		pre := f.srv.CreateKey(t, f.creds, pykmip.KeyOptions{PreActive: true})
		deactivated := f.srv.CreateKey(t, f.creds, pykmip.KeyOptions{})
		compromised := f.srv.CreateKey(t, f.creds, pykmip.KeyOptions{})
		destroyed := f.srv.CreateKey(t, f.creds, pykmip.KeyOptions{})

		// Data wrapped while the keys were Active.
		wrapped := map[string]kms.Wrapped{}
		for _, uid := range []string{deactivated, compromised, destroyed} {
			_, w, err := f.provider(t, c, uid).GenerateDataKey(ctx, binding())
			if err != nil {
				t.Fatal(err)
			}
			wrapped[uid] = w
		}
		f.srv.Revoke(t, f.creds, deactivated, false)
		f.srv.Revoke(t, f.creds, compromised, true)
		f.srv.Revoke(t, f.creds, destroyed, false)
		f.srv.Destroy(t, f.creds, destroyed)

		tests := []struct {
			name   string
			uid    string
			state  kms.KeyState
			detail string
			useErr error // of Wrap and Unwrap
		}{
			{"Active", active, kms.KeyEnabled, "Active", nil},
			{"Pre-Active", pre, kms.KeyDisabled, "Pre-Active", kms.ErrKeyDisabled},
			{"Deactivated", deactivated, kms.KeyDisabled, "revoked (Deactivated)", kms.ErrKeyDisabled},
			{"Compromised", compromised, kms.KeyDisabled, "revoked (Compromised)", kms.ErrKeyDisabled},
			{"Destroyed", destroyed, kms.KeyStateUnknown, "", kms.ErrKeyNotFound},
			{"unknown", "4711", kms.KeyStateUnknown, "", kms.ErrKeyNotFound},
		}
		for _, tt := range tests {
			p := f.provider(t, c, tt.uid)
			info, err := p.Describe(ctx)
			if tt.state == kms.KeyStateUnknown {
				wantKind(t, tt.name+": Describe", err, kms.ErrKeyNotFound)
			} else if err != nil {
				t.Fatalf("%s: Describe: %v", tt.name, err)
			} else if info.State != tt.state || !strings.Contains(info.Detail, tt.detail) {
				t.Errorf("%s: Describe = %+v, want state %v and a detail with %q", tt.name, info, tt.state, tt.detail)
			}

			dk, err := secret.Random(kms.DataKeySize)
			if err != nil {
				t.Fatal(err)
			}
			w, err := p.Wrap(ctx, dk, binding())
			dk.Destroy()
			if tt.useErr == nil {
				if err != nil {
					t.Fatalf("%s: Wrap: %v", tt.name, err)
				}
			} else {
				wantKind(t, tt.name+": Wrap", err, tt.useErr)
			}
			if old, ok := wrapped[tt.uid]; ok {
				w = old
			}
			if len(w.Blob) == 0 {
				continue
			}
			got, err := p.Unwrap(ctx, w, binding())
			got.Destroy()
			if tt.useErr == nil {
				if err != nil {
					t.Fatalf("%s: Unwrap: %v", tt.name, err)
				}
			} else {
				wantKind(t, tt.name+": Unwrap", err, tt.useErr)
			}
		}
	})
	t.Run("AnotherOwner", func(t *testing.T) {
		// PyKMIP gives a key to the certificate that created it: another
		// certificate of the same CA may not use it.
		uid := f.srv.CreateKey(t, f.creds, pykmip.KeyOptions{})
		other := f.clientWith(t, f.srv.Client(t, "another-tenant"), f.srv.CAPEM, 0)
		p := f.provider(t, other, uid)
		_, err := p.Describe(ctx)
		wantKind(t, "Describe", err, kms.ErrAccessDenied)
		_, _, err = p.GenerateDataKey(ctx, binding())
		wantKind(t, "GenerateDataKey", err, kms.ErrAccessDenied)
	})
	t.Run("UntrustedServer", func(t *testing.T) {
		otherCA := pykmip.Start(t).CAPEM // a CA that did not issue f's server certificate
		c := f.clientWith(t, f.creds, otherCA, 0)
		_, err := c.DiscoverVersions(ctx)
		wantKind(t, "DiscoverVersions", err, kms.ErrAccessDenied)
		var ee *kmip.EndpointError
		if !errors.As(err, &ee) || !ee.Refused {
			t.Errorf("error %v, want an *EndpointError with Refused", err)
		}
	})
	t.Run("NoFailoverOnRefusal", func(t *testing.T) {
		// The key is the second server's: the first one's refusal ends
		// the search.
		peer := f.srv.StartPeer(t)
		creds := f.srv.Client(t, "no-failover") // the CA of both servers issued it
		uid := peer.CreateKey(t, creds, pykmip.KeyOptions{})
		if _, err := f.clientWith(t, creds, f.srv.CAPEM, 0, peer.Addr).GetAttributes(ctx, uid); err != nil {
			t.Fatalf("the peer does not give the key: %v", err)
		}
		_, err := f.clientWith(t, creds, f.srv.CAPEM, 0, f.srv.Addr, peer.Addr).GetAttributes(ctx, uid)
		var re *kmip.ResultError
		if !errors.As(err, &re) || re.Endpoint != f.srv.Addr {
			t.Errorf("GetAttributes = %v, want the first server's refusal, not the second server's answer", err)
		}
	})
	t.Run("Endpoints", func(t *testing.T) {
		down := closedPort(t)
		silent := silentServer(t)
		uid := f.srv.CreateKey(t, f.creds, pykmip.KeyOptions{})
		c := f.client(t, 500*time.Millisecond, down, silent, f.srv.Addr)
		p := f.provider(t, c, uid)
		if _, _, err := p.GenerateDataKey(ctx, binding()); err != nil {
			t.Fatalf("GenerateDataKey past a closed port and a silent server: %v", err)
		}
		checks := c.CheckEndpoints(ctx)
		for i, want := range []bool{false, false, true} {
			if got := checks[i].Err == nil; got != want {
				t.Errorf("CheckEndpoints()[%d] (%s) answered = %v (%v), want %v", i, checks[i].Endpoint, got, checks[i].Err, want)
			}
		}

		c = f.client(t, 0, down)
		_, err := c.DiscoverVersions(ctx)
		wantKind(t, "DiscoverVersions at a closed port", err, kms.ErrUnavailable)

		c = f.client(t, 0, silent)
		dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err = c.DiscoverVersions(dctx)
		wantKind(t, "DiscoverVersions at a silent server past the deadline", err, kms.ErrUnavailable)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v, want errors.Is(err, context.DeadlineExceeded)", err)
		}
	})
}

// TestAccess withdraws and restores the client's access, and takes the
// server down and up: the reversible refusals and outages.
func TestAccess(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.client(t, 2*time.Second)
	ctx := t.Context()
	uid := f.srv.CreateKey(t, f.creds, pykmip.KeyOptions{})
	p := f.provider(t, c, uid)
	dk, w, err := p.GenerateDataKey(ctx, binding())
	if err != nil {
		t.Fatal(err)
	}
	defer dk.Destroy()
	works := func(what string) {
		t.Helper()
		got, err := p.Unwrap(ctx, w, binding())
		if err != nil {
			t.Fatalf("%s: Unwrap: %v", what, err)
		}
		defer got.Destroy()
		if !bytes.Equal(got.Reveal(), dk.Reveal()) {
			t.Fatalf("%s: Unwrap returned another key", what)
		}
		if info, err := p.Describe(ctx); err != nil || info.State != kms.KeyEnabled {
			t.Fatalf("%s: Describe = %+v, %v; want enabled", what, info, err)
		}
	}
	refused := func(what string, kind error) {
		t.Helper()
		got, err := p.Unwrap(ctx, w, binding())
		got.Destroy()
		wantKind(t, what+": Unwrap", err, kind)
		_, err = p.Describe(ctx)
		wantKind(t, what+": Describe", err, kind)
		_, _, err = p.GenerateDataKey(ctx, binding())
		wantKind(t, what+": GenerateDataKey", err, kind)
	}

	works("at first")
	f.srv.Withdraw(t)
	refused("operation policy withdrawn", kms.ErrAccessDenied)
	f.srv.Grant(t)
	works("operation policy granted again")

	f.srv.Distrust(t)
	refused("client certificate no longer trusted", kms.ErrAccessDenied)
	f.srv.Trust(t)
	works("client certificate trusted again")

	f.srv.Stop(t)
	refused("server down", kms.ErrUnavailable)
	f.srv.Restart(t)
	works("server back")
}

func contains(vs []kmip.Version, v kmip.Version) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// closedPort returns an address where nothing listens.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// silentServer accepts connections and never answers.
func silentServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}
