package awskms

// Tests against local-kms (package testkms): the real SDK client, the
// real HTTP protocol, an emulated KMS. Where local-kms differs from AWS the
// test says so.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssdkkms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/kmstest"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
	"github.com/tenantcrypt/tenantcrypt/internal/testkms"
)

const (
	primaryRegion = "eu-west-1"
	drRegion      = "eu-west-3"
)

// testConfig is a Config for tests: fake credentials, no HTTP proxy from
// the environment, AWS's ciphertext semantics over local-kms (see
// awsSemantics), short backoff so that retries cost milliseconds.
func testConfig(t testing.TB, endpoints map[string]string) Config {
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 32}
	t.Cleanup(tr.CloseIdleConnections)
	return Config{
		Region:         primaryRegion,
		Endpoints:      endpoints,
		CallTimeout:    2 * time.Second,
		RetryBaseDelay: time.Millisecond,
		RetryMaxDelay:  10 * time.Millisecond,
		HTTPClient:     &http.Client{Transport: newAWSSemantics(tr)},
		Credentials:    testCredentials,
	}
}

func newTestClient(t testing.TB, cfg Config) *Client {
	t.Helper()
	c, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// createKey makes a fresh symmetric key in s, for a test that changes its
// state or needs a key of its own.
func createKey(t testing.TB, s *testkms.Server) ARN {
	t.Helper()
	out, err := s.Client(t).CreateKey(t.Context(), &awssdkkms.CreateKeyInput{
		KeySpec:  types.KeySpecSymmetricDefault,
		KeyUsage: types.KeyUsageTypeEncryptDecrypt,
	})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	return mustARN(t, *out.KeyMetadata.Arn)
}

// TestConformanceSymmetric runs the provider conformance suite on
// single-region keys, one fresh key per tenant.
func TestConformanceSymmetric(t *testing.T) {
	srv := testkms.Start(t, testkms.Options{Region: primaryRegion})
	c := newTestClient(t, testConfig(t, map[string]string{primaryRegion: srv.URL}))
	var mu sync.Mutex
	keys := map[string]ARN{}
	kmstest.Run(t, func(t *testing.T, tenantID string) kms.Provider {
		mu.Lock()
		defer mu.Unlock()
		key, ok := keys[tenantID]
		if !ok {
			key = createKey(t, srv)
			keys[tenantID] = key
		}
		return c.Provider(testRef(key), key)
	})
}

// TestConformanceMultiRegion runs the suite on the two seeded
// multi-region keys, present in two regions with the same material. A
// tenant's providers alternate between the regions, as the service's
// replicas in the primary and the DR region would: what one wraps the
// other unwraps. Tenants alternate between the two keys, so that two
// tenants in a row never share one.
func TestConformanceMultiRegion(t *testing.T) {
	primary, dr := testkms.StartPair(t, primaryRegion, drRegion)
	c := newTestClient(t, testConfig(t, map[string]string{primaryRegion: primary.URL, drRegion: dr.URL}))
	var mu sync.Mutex
	type tenant struct {
		key   ARN
		calls int
	}
	tenants := map[string]*tenant{}
	ids := []string{testkms.MultiRegionKeyID, testkms.SecondMultiRegionKeyID}
	kmstest.Run(t, func(t *testing.T, tenantID string) kms.Provider {
		mu.Lock()
		defer mu.Unlock()
		tn, ok := tenants[tenantID]
		if !ok {
			tn = &tenant{key: mustARN(t, primary.ARN(ids[len(tenants)%len(ids)]))}
			tenants[tenantID] = tn
		}
		region := []string{primaryRegion, drRegion}[tn.calls%2]
		tn.calls++
		return c.Provider(testRef(tn.key), tn.key.InRegion(region))
	})
}

// binding is a tenant's binding, shaped like the keyring's.
func binding(tenant string) kms.Binding {
	return kms.Binding{kms.BindingTenant: tenant, kms.BindingKeyID: "dk-1", kms.BindingContext: "purpose=test"}
}

// wantKind checks that err is a *kms.Error of kind (nil: no sentinel).
func wantKind(t *testing.T, what string, err, kind error) *kms.Error {
	t.Helper()
	var ke *kms.Error
	if !errors.As(err, &ke) {
		t.Fatalf("%s: error %v (%T), want a *kms.Error", what, err, err)
	}
	if kind == nil {
		if ke.Kind != nil {
			t.Fatalf("%s: error %v, want one without a sentinel", what, err)
		}
		return ke
	}
	if !errors.Is(err, kind) {
		t.Fatalf("%s: error %v, want %v", what, err, kind)
	}
	return ke
}

func TestDisabledKey(t *testing.T) {
	srv := testkms.Start(t, testkms.Options{Region: primaryRegion})
	c := newTestClient(t, testConfig(t, map[string]string{primaryRegion: srv.URL}))
	key := createKey(t, srv)
	p := c.Provider(testRef(key), key)
	b := binding("t1")
	dk, w, err := p.GenerateDataKey(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	defer dk.Destroy()

	admin := srv.Client(t)
	if _, err := admin.DisableKey(t.Context(), &awssdkkms.DisableKeyInput{KeyId: aws.String(key.String())}); err != nil {
		t.Fatal(err)
	}
	_, _, err = p.GenerateDataKey(t.Context(), b)
	ke := wantKind(t, "GenerateDataKey of a disabled key", err, kms.ErrKeyDisabled)
	if ke.Op != "GenerateDataKey" || ke.Provider != testRef(key).String() || ke.Region != primaryRegion || ke.RequestID == "" {
		t.Errorf("error fields Op %q, Provider %q, Region %q, RequestID %q; want GenerateDataKey, the ref, %s and a request id",
			ke.Op, ke.Provider, ke.Region, ke.RequestID, primaryRegion)
	}
	got, err := p.Unwrap(t.Context(), w, b)
	if got != nil {
		t.Error("Unwrap of a disabled key returned a key")
	}
	wantKind(t, "Unwrap of a disabled key", err, kms.ErrKeyDisabled)
	_, err = p.Wrap(t.Context(), dk, b)
	wantKind(t, "Wrap with a disabled key", err, kms.ErrKeyDisabled)
	info, err := p.Describe(t.Context())
	if err != nil || info.State != kms.KeyDisabled {
		t.Errorf("Describe of a disabled key = %+v, %v; want %v", info, err, kms.KeyDisabled)
	}

	if _, err := admin.EnableKey(t.Context(), &awssdkkms.EnableKeyInput{KeyId: aws.String(key.String())}); err != nil {
		t.Fatal(err)
	}
	got, err = p.Unwrap(t.Context(), w, b)
	if err != nil {
		t.Fatalf("Unwrap after EnableKey: %v", err)
	}
	got.Destroy()
}

func TestPendingDeletionKey(t *testing.T) {
	srv := testkms.Start(t, testkms.Options{Region: primaryRegion})
	c := newTestClient(t, testConfig(t, map[string]string{primaryRegion: srv.URL}))
	key := createKey(t, srv)
	p := c.Provider(testRef(key), key)
	b := binding("t1")
	dk, w, err := p.GenerateDataKey(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	defer dk.Destroy()

	admin := srv.Client(t)
	if _, err := admin.ScheduleKeyDeletion(t.Context(), &awssdkkms.ScheduleKeyDeletionInput{
		KeyId: aws.String(key.String()), PendingWindowInDays: aws.Int32(7),
	}); err != nil {
		t.Fatal(err)
	}
	// KMS answers KMSInvalidStateException; the provider asks DescribeKey
	// which state that is.
	_, _, err = p.GenerateDataKey(t.Context(), b)
	wantKind(t, "GenerateDataKey of a key pending deletion", err, kms.ErrKeyPendingDeletion)
	_, err = p.Unwrap(t.Context(), w, b)
	wantKind(t, "Unwrap of a key pending deletion", err, kms.ErrKeyPendingDeletion)
	info, err := p.Describe(t.Context())
	if err != nil || info.State != kms.KeyPendingDeletion || !strings.Contains(info.Detail, "deletion scheduled for") {
		t.Errorf("Describe of a key pending deletion = %+v, %v; want %v with its deletion date", info, err, kms.KeyPendingDeletion)
	}

	if _, err := admin.CancelKeyDeletion(t.Context(), &awssdkkms.CancelKeyDeletionInput{KeyId: aws.String(key.String())}); err != nil {
		t.Fatal(err)
	}
	// AWS leaves a key Disabled after CancelKeyDeletion; local-kms
	// leaves it Enabled. Either way it is no longer pending deletion.
	info, err = p.Describe(t.Context())
	if err != nil || (info.State != kms.KeyDisabled && info.State != kms.KeyEnabled) {
		t.Errorf("Describe after CancelKeyDeletion = %+v, %v; want Disabled (AWS) or Enabled (local-kms)", info, err)
	}
}

func TestMissingKey(t *testing.T) {
	srv := testkms.Start(t, testkms.Options{Region: primaryRegion})
	c := newTestClient(t, testConfig(t, map[string]string{primaryRegion: srv.URL}))
	key := mustARN(t, srv.ARN("00000000-0000-4000-8000-000000000000"))
	p := c.Provider(testRef(key), key)
	_, _, err := p.GenerateDataKey(t.Context(), binding("t1"))
	wantKind(t, "GenerateDataKey", err, kms.ErrKeyNotFound)
	_, err = p.Describe(t.Context())
	wantKind(t, "Describe", err, kms.ErrKeyNotFound)
	_, err = c.DescribeKey(t.Context(), key)
	wantKind(t, "DescribeKey", err, kms.ErrKeyNotFound)
}

func TestUnwrapRefusesOtherKeyAndBinding(t *testing.T) {
	srv := testkms.Start(t, testkms.Options{Region: primaryRegion})
	c := newTestClient(t, testConfig(t, map[string]string{primaryRegion: srv.URL}))
	keyA, keyB := createKey(t, srv), createKey(t, srv)
	pa, pb := c.Provider(testRef(keyA), keyA), c.Provider(testRef(keyB), keyB)
	b := binding("t1")
	dk, w, err := pa.GenerateDataKey(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	dk.Destroy()
	if w.KeyVersion != keyA.String() {
		t.Errorf("KeyVersion = %q, want the key's ARN %s", w.KeyVersion, keyA)
	}

	tests := []struct {
		name string
		p    kms.Provider
		w    kms.Wrapped
		b    kms.Binding
	}{
		{"wrong binding", pa, w, binding("t2")},
		{"no binding", pa, w, nil},
		// Refused before any call: the blob names another key.
		{"key A's blob at key B", pb, w, b},
		// Sent to KMS with KeyId B: KMS refuses it.
		{"key A's blob relabelled as key B's", pb, kms.Wrapped{KeyVersion: keyB.String(), Blob: w.Blob}, b},
		{"KeyVersion not an ARN", pa, kms.Wrapped{KeyVersion: "1", Blob: w.Blob}, b},
		{"KeyVersion of a single-region key in another region", pa, kms.Wrapped{KeyVersion: ARN{keyA.Partition, drRegion, keyA.Account, keyA.KeyID}.String(), Blob: w.Blob}, b},
		{"blob too long for KMS", pa, kms.Wrapped{KeyVersion: w.KeyVersion, Blob: make([]byte, maxCiphertextLen+1)}, b},
	}
	for _, tt := range tests {
		got, err := tt.p.Unwrap(t.Context(), tt.w, tt.b)
		if got != nil {
			got.Destroy()
			t.Errorf("%s: Unwrap returned a key", tt.name)
		}
		wantKind(t, tt.name, err, kms.ErrInvalidCiphertext)
	}
}

func TestBadProviders(t *testing.T) {
	c := newTestClient(t, testConfig(t, nil))
	key := mustARN(t, "arn:aws:kms:eu-west-1:111122223333:key/"+testUUID)
	for name, p := range map[string]kms.Provider{
		"empty ref":     c.Provider(kms.Ref{}, key),
		"zero ARN":      c.Provider(kms.MustCMKRef("ref"), ARN{}),
		"ARN not whole": c.Provider(kms.MustCMKRef("ref"), ARN{Partition: "aws", Region: "eu-west-1", Account: "111122223333", KeyID: testUUID + ":x"}),
	} {
		_, _, err := p.GenerateDataKey(t.Context(), binding("t1"))
		wantKind(t, name, err, nil)
		_, err = p.Unwrap(t.Context(), kms.Wrapped{KeyVersion: key.String(), Blob: []byte{1}}, binding("t1"))
		wantKind(t, name, err, nil)
	}
}

func TestWrapRefusesWrongSize(t *testing.T) {
	c := newTestClient(t, testConfig(t, nil))
	key := mustARN(t, "arn:aws:kms:eu-west-1:111122223333:key/"+testUUID)
	p := c.Provider(testRef(key), key)
	for _, n := range []int{0, 16, 33} {
		pt := secret.New(make([]byte, n))
		_, err := p.Wrap(t.Context(), pt, binding("t1"))
		wantKind(t, fmt.Sprintf("Wrap of %d bytes", n), err, nil)
	}
}

func TestTakePlaintextZeroesTheSDKCopy(t *testing.T) {
	sdk := []byte{1, 2, 3, 4}
	s := takePlaintext(sdk)
	defer s.Destroy()
	if !bytes.Equal(sdk, make([]byte, 4)) {
		t.Errorf("the SDK's slice is %v after takePlaintext, want zeros", sdk)
	}
	if !bytes.Equal(s.Reveal(), []byte{1, 2, 3, 4}) {
		t.Error("takePlaintext lost the key")
	}
}

// faultEnv is a local-kms server behind a fault-injecting proxy, and a
// client whose endpoint is the proxy.
type faultEnv struct {
	srv   *testkms.Server
	proxy *testkms.Proxy
	c     *Client
	p     kms.Provider
	key   ARN
}

func newFaultEnv(t *testing.T, edit func(*Config)) faultEnv {
	t.Helper()
	srv := testkms.Start(t, testkms.Options{Region: primaryRegion})
	proxy := testkms.NewProxy(t, srv)
	cfg := testConfig(t, map[string]string{primaryRegion: proxy.URL})
	if edit != nil {
		edit(&cfg)
	}
	c := newTestClient(t, cfg)
	key := mustARN(t, srv.ARN(testkms.SymmetricKeyID))
	return faultEnv{srv: srv, proxy: proxy, c: c, p: c.Provider(testRef(key), key), key: key}
}

// TestRetries checks, through the real SDK and HTTP, which AWS errors are
// retried (MaxAttempts calls) and which are not (one call), and the
// sentinel each ends as.
func TestRetries(t *testing.T) {
	env := newFaultEnv(t, nil)
	b := binding("t1")
	dk, w, err := env.p.GenerateDataKey(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	dk.Destroy()

	tests := []struct {
		code   string
		status int // 0: the status AWS uses for the code
		want   error
		calls  int
	}{
		{"ThrottlingException", 0, kms.ErrThrottled, DefaultMaxAttempts},
		{"LimitExceededException", 0, kms.ErrThrottled, DefaultMaxAttempts},
		{"", http.StatusTooManyRequests, kms.ErrThrottled, DefaultMaxAttempts},
		{"KMSInternalException", 0, kms.ErrUnavailable, DefaultMaxAttempts},
		{"DependencyTimeoutException", 0, kms.ErrUnavailable, DefaultMaxAttempts},
		{"KeyUnavailableException", 0, kms.ErrUnavailable, DefaultMaxAttempts},
		{"ServiceUnavailable", 0, kms.ErrUnavailable, DefaultMaxAttempts},
		{"", http.StatusBadGateway, kms.ErrUnavailable, DefaultMaxAttempts},
		{"AccessDeniedException", 0, kms.ErrAccessDenied, 1},
		{"DisabledException", 0, kms.ErrKeyDisabled, 1},
		{"NotFoundException", 0, kms.ErrKeyNotFound, 1},
		{"InvalidCiphertextException", 0, kms.ErrInvalidCiphertext, 1},
		{"IncorrectKeyException", 0, kms.ErrInvalidCiphertext, 1},
		{"InvalidKeyUsageException", 0, kms.ErrInvalidCiphertext, 1},
		{"ValidationException", 0, nil, 1},
		{"UnrecognizedClientException", 0, kms.ErrAccessDenied, 1},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s %d", tt.code, tt.status)
		remove := env.proxy.Inject(testkms.Fault{Action: "Decrypt", AWSError: tt.code, Status: tt.status})
		env.proxy.ResetCalls()
		got, err := env.p.Unwrap(t.Context(), w, b)
		remove()
		if got != nil {
			got.Destroy()
			t.Errorf("%s: Unwrap returned a key", name)
		}
		ke := wantKind(t, name, err, tt.want)
		if n := env.proxy.Calls("Decrypt"); n != tt.calls {
			t.Errorf("%s: %d calls, want %d", name, n, tt.calls)
		}
		if ke.RequestID == "" {
			t.Errorf("%s: no request id in %v", name, err)
		}
		if got := kms.Retryable(err); got != (tt.calls > 1) {
			t.Errorf("%s: Retryable = %v, want %v", name, got, tt.calls > 1)
		}
	}
}

func TestRetriesThenSucceeds(t *testing.T) {
	env := newFaultEnv(t, nil)
	b := binding("t1")
	for _, code := range []string{"ThrottlingException", "KMSInternalException", "DependencyTimeoutException"} {
		env.proxy.Inject(testkms.Fault{Action: "GenerateDataKey", AWSError: code, Times: DefaultMaxAttempts - 1})
		env.proxy.ResetCalls()
		dk, _, err := env.p.GenerateDataKey(t.Context(), b)
		if err != nil {
			t.Errorf("%s %d times: %v", code, DefaultMaxAttempts-1, err)
			continue
		}
		dk.Destroy()
		if n := env.proxy.Calls("GenerateDataKey"); n != DefaultMaxAttempts {
			t.Errorf("%s %d times: %d calls, want %d", code, DefaultMaxAttempts-1, n, DefaultMaxAttempts)
		}
	}
}

// TestInvalidStateUndecided: a KMSInvalidStateException for a key that
// DescribeKey then shows enabled (a race, here injected) is reported as
// the milder ErrKeyDisabled, with one follow-up DescribeKey.
func TestInvalidStateUndecided(t *testing.T) {
	env := newFaultEnv(t, nil)
	env.proxy.Inject(testkms.Fault{Action: "GenerateDataKey", AWSError: "KMSInvalidStateException"})
	_, _, err := env.p.GenerateDataKey(t.Context(), binding("t1"))
	wantKind(t, "GenerateDataKey", err, kms.ErrKeyDisabled)
	if n, d := env.proxy.Calls("GenerateDataKey"), env.proxy.Calls("DescribeKey"); n != 1 || d != 1 {
		t.Errorf("%d GenerateDataKey and %d DescribeKey calls, want 1 and 1", n, d)
	}
}

// TestNoAnswer: a KMS that drops the connection, is down, or answers too
// late ends as ErrUnavailable after MaxAttempts attempts, in bounded time.
func TestNoAnswer(t *testing.T) {
	const callTimeout = 300 * time.Millisecond
	env := newFaultEnv(t, func(cfg *Config) { cfg.CallTimeout = callTimeout })
	b := binding("t1")
	// The bound: every attempt's timeout plus the backoff between them
	// (at most RetryMaxDelay each), with room for a loaded machine.
	bound := DefaultMaxAttempts*callTimeout + (DefaultMaxAttempts-1)*10*time.Millisecond + 2*time.Second

	tests := []struct {
		name  string
		fault func() (remove func())
	}{
		{"drop", func() func() { return env.proxy.Inject(testkms.Fault{Drop: true}) }},
		{"down", func() func() { env.proxy.Down(); return env.proxy.Up }},
		{"latency beyond CallTimeout", func() func() { return env.proxy.Inject(testkms.Fault{Latency: 10 * callTimeout}) }},
	}
	for _, tt := range tests {
		remove := tt.fault()
		env.proxy.ResetCalls()
		start := time.Now()
		_, _, err := env.p.GenerateDataKey(t.Context(), b)
		took := time.Since(start)
		remove()
		wantKind(t, tt.name, err, kms.ErrUnavailable)
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v reads as the caller's own deadline", tt.name, err)
		}
		if n := env.proxy.Calls("GenerateDataKey"); n != DefaultMaxAttempts {
			t.Errorf("%s: %d calls, want %d", tt.name, n, DefaultMaxAttempts)
		}
		if took > bound {
			t.Errorf("%s: took %v, want at most %v", tt.name, took, bound)
		}
	}

	// One slow answer: the next attempt gets through.
	env.proxy.Inject(testkms.Fault{Latency: 10 * callTimeout, Times: 1})
	env.proxy.ResetCalls()
	dk, _, err := env.p.GenerateDataKey(t.Context(), b)
	if err != nil {
		t.Fatalf("after one slow answer: %v", err)
	}
	dk.Destroy()
	if n := env.proxy.Calls("GenerateDataKey"); n != 2 {
		t.Errorf("after one slow answer: %d calls, want 2", n)
	}
}

// TestCallerDeadline: the caller's own deadline ends the call without
// retries, and the error says it was the caller's.
func TestCallerDeadline(t *testing.T) {
	env := newFaultEnv(t, nil)
	env.proxy.Inject(testkms.Fault{Latency: 5 * time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, _, err := env.p.GenerateDataKey(ctx, binding("t1"))
	wantKind(t, "GenerateDataKey", err, kms.ErrUnavailable)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want errors.Is(err, context.DeadlineExceeded)", err)
	}
	if n := env.proxy.Calls("GenerateDataKey"); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

// drEnv is the two regions of the seeded multi-region keys, each behind
// a proxy, and a client whose endpoints are the proxies.
type drEnv struct {
	primary, dr *testkms.Proxy
	c           *Client
	mrk         ARN // in the primary region
}

func newDREnv(t *testing.T) drEnv {
	t.Helper()
	ps, ds := testkms.StartPair(t, primaryRegion, drRegion)
	pp, dp := testkms.NewProxy(t, ps), testkms.NewProxy(t, ds)
	c := newTestClient(t, testConfig(t, map[string]string{primaryRegion: pp.URL, drRegion: dp.URL}))
	return drEnv{primary: pp, dr: dp, c: c, mrk: mustARN(t, ps.ARN(testkms.MultiRegionKeyID))}
}

func TestMultiRegionUnwrap(t *testing.T) {
	env := newDREnv(t)
	b := binding("t1")
	inPrimary := env.c.Provider(kms.MustCMKRef("mrk"), env.mrk)
	inDR := env.c.Provider(kms.MustCMKRef("mrk"), env.mrk.InRegion(drRegion))

	dk, w, err := inPrimary.GenerateDataKey(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	defer dk.Destroy()
	if w.KeyVersion != env.mrk.String() {
		t.Errorf("KeyVersion = %q, want the primary ARN %s", w.KeyVersion, env.mrk)
	}
	// The DR region's replica decrypts the primary's blob, called by its
	// own ARN (KeyId); the primary region is not asked.
	env.primary.ResetCalls()
	got, err := inDR.Unwrap(t.Context(), w, b)
	if err != nil {
		t.Fatalf("Unwrap in %s of a blob made in %s: %v", drRegion, primaryRegion, err)
	}
	if !bytes.Equal(got.Reveal(), dk.Reveal()) {
		t.Error("the replica unwrapped another key")
	}
	got.Destroy()
	if n, d := env.primary.Calls(""), env.dr.Calls("Decrypt"); n != 0 || d != 1 {
		t.Errorf("%d calls to %s and %d Decrypt calls to %s; want 0 and 1", n, primaryRegion, d, drRegion)
	}

	// And back: wrapped in the DR region, unwrapped in the primary.
	w2, err := inDR.Wrap(t.Context(), dk, b)
	if err != nil {
		t.Fatal(err)
	}
	if w2.KeyVersion != env.mrk.InRegion(drRegion).String() {
		t.Errorf("KeyVersion of the DR wrapping = %q, want the replica ARN", w2.KeyVersion)
	}
	got, err = inPrimary.Unwrap(t.Context(), w2, b)
	if err != nil {
		t.Fatalf("Unwrap in %s of a blob made in %s: %v", primaryRegion, drRegion, err)
	}
	got.Destroy()

	// The other multi-region key is another key, in every region: a blob
	// naming the first is refused before any call, and one relabelled as
	// the second's is refused by KMS.
	second := env.mrk
	second.KeyID = testkms.SecondMultiRegionKeyID
	other := env.c.Provider(kms.MustCMKRef("mrk2"), second.InRegion(drRegion))
	_, err = other.Unwrap(t.Context(), w, b)
	wantKind(t, "Unwrap by the other multi-region key", err, kms.ErrInvalidCiphertext)
	env.dr.ResetCalls()
	_, err = other.Unwrap(t.Context(), kms.Wrapped{KeyVersion: second.String(), Blob: w.Blob}, b)
	wantKind(t, "Unwrap by the other multi-region key, relabelled", err, kms.ErrInvalidCiphertext)
	if n := env.dr.Calls("Decrypt"); n != 1 {
		t.Errorf("relabelled blob: %d Decrypt calls, want 1", n)
	}
}

func TestDescribeKey(t *testing.T) {
	env := newDREnv(t)

	// local-kms knows nothing of multi-region keys; the proxy adds what
	// AWS reports.
	d, err := env.c.DescribeKey(t.Context(), env.mrk)
	if err != nil {
		t.Fatal(err)
	}
	if d.MultiRegion || d.Primary != nil || len(d.Replicas) != 0 {
		t.Errorf("without the proxy's metadata: %+v, want no multi-region data (local-kms has none)", d)
	}

	env.primary.SetMultiRegion(testkms.MultiRegionKeyID, primaryRegion, drRegion)
	env.dr.SetMultiRegion(testkms.MultiRegionKeyID, primaryRegion, drRegion)
	replica := env.mrk.InRegion(drRegion)
	wantPrimary := Replica{ARN: env.mrk.String(), Region: primaryRegion}
	wantReplicas := []Replica{{ARN: replica.String(), Region: drRegion}}
	for _, key := range []ARN{env.mrk, replica} {
		d, err := env.c.DescribeKey(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		if d.ARN != key.String() || d.State != kms.KeyEnabled || d.Spec != "SYMMETRIC_DEFAULT" || d.Usage != "ENCRYPT_DECRYPT" || !d.MultiRegion {
			t.Errorf("DescribeKey(%s) = %+v", key, d)
		}
		if d.Primary == nil || *d.Primary != wantPrimary {
			t.Errorf("DescribeKey(%s).Primary = %v, want %v", key, d.Primary, wantPrimary)
		}
		if !slices.Equal(d.Replicas, wantReplicas) {
			t.Errorf("DescribeKey(%s).Replicas = %v, want %v", key, d.Replicas, wantReplicas)
		}
	}

	single, err := env.c.DescribeKey(t.Context(), mustARN(t, env.primary.ARN(testkms.SymmetricKeyID)))
	if err != nil || single.MultiRegion || single.Spec != "SYMMETRIC_DEFAULT" {
		t.Errorf("DescribeKey of the single-region key = %+v, %v", single, err)
	}
	asym, err := env.c.DescribeKey(t.Context(), mustARN(t, env.primary.ARN(testkms.AsymmetricKeyID)))
	if err != nil || asym.Spec != "RSA_2048" || asym.Usage != "ENCRYPT_DECRYPT" {
		t.Errorf("DescribeKey of the RSA key = %+v, %v; want RSA_2048, ENCRYPT_DECRYPT", asym, err)
	}

	env.primary.Inject(testkms.Fault{Action: "DescribeKey", AWSError: "AccessDeniedException", Times: 1})
	_, err = env.c.DescribeKey(t.Context(), env.mrk)
	if ke := wantKind(t, "DescribeKey refused", err, kms.ErrAccessDenied); ke.Op != "DescribeKey" || ke.Region != primaryRegion {
		t.Errorf("error Op %q, Region %q; want DescribeKey, %s", ke.Op, ke.Region, primaryRegion)
	}
}

func TestProbe(t *testing.T) {
	env := newDREnv(t)
	b := binding("probe")
	actions := []string{"DescribeKey", "GenerateDataKey", "Encrypt", "Decrypt"}
	check := func(what string, got []ProbeResult, region string, want map[string]error) {
		t.Helper()
		if len(got) != len(actions) {
			t.Fatalf("%s: %d results, want %d: %+v", what, len(got), len(actions), got)
		}
		for i, r := range got {
			if r.Action != actions[i] || r.Region != region {
				t.Errorf("%s: result %d is %s in %s, want %s in %s", what, i, r.Action, r.Region, actions[i], region)
			}
			switch kind := want[r.Action]; {
			case kind == nil && r.Err != nil:
				t.Errorf("%s: %s: %v, want success", what, r.Action, r.Err)
			case kind != nil && !errors.Is(r.Err, kind):
				t.Errorf("%s: %s: %v, want %v", what, r.Action, r.Err, kind)
			}
		}
	}

	check("primary", env.c.Probe(t.Context(), env.mrk, primaryRegion, b), primaryRegion, nil)
	check("DR", env.c.Probe(t.Context(), env.mrk, drRegion, b), drRegion, nil)

	// The DR region's key policy refuses Encrypt: only Encrypt fails, and
	// the actions after it are still tried.
	remove := env.dr.Inject(testkms.Fault{Action: "Encrypt", AWSError: "AccessDeniedException"})
	env.dr.ResetCalls()
	check("DR refusing Encrypt", env.c.Probe(t.Context(), env.mrk, drRegion, b), drRegion,
		map[string]error{"Encrypt": kms.ErrAccessDenied})
	if n := env.dr.Calls("Decrypt"); n != 1 {
		t.Errorf("DR refusing Encrypt: %d Decrypt calls, want 1", n)
	}
	remove()

	// With nothing to decrypt, Decrypt is reported as not tried.
	env.primary.Inject(testkms.Fault{Action: "GenerateDataKey", AWSError: "AccessDeniedException"})
	env.primary.Inject(testkms.Fault{Action: "Encrypt", AWSError: "AccessDeniedException"})
	check("primary refusing GenerateDataKey and Encrypt", env.c.Probe(t.Context(), env.mrk, primaryRegion, b), primaryRegion,
		map[string]error{"GenerateDataKey": kms.ErrAccessDenied, "Encrypt": kms.ErrAccessDenied, "Decrypt": ErrNotProbed})

	// A single-region key does not exist in the DR region.
	single := mustARN(t, env.primary.ARN(testkms.SymmetricKeyID))
	check("single-region key in DR", env.c.Probe(t.Context(), single, drRegion, b), drRegion,
		map[string]error{"DescribeKey": kms.ErrKeyNotFound, "GenerateDataKey": kms.ErrKeyNotFound, "Encrypt": kms.ErrKeyNotFound, "Decrypt": ErrNotProbed})
}

// testRef is a provider Ref for key, as a registry would name it.
func testRef(key ARN) kms.Ref {
	sum := sha256.Sum256([]byte(key.String()))
	return kms.MustCMKRef(hex.EncodeToString(sum[:16]))
}
