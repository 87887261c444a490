package testkms

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// proxied starts a server and a proxy in front of it.
func proxied(t *testing.T) (*Proxy, *kms.Client) {
	t.Helper()
	p := NewProxy(t, Start(t, Options{}))
	return p, p.Client(t)
}

func gdk(ctx context.Context, c *kms.Client) error {
	_, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(MultiRegionKeyID), KeySpec: types.DataKeySpecAes256})
	return err
}

// wantTransportError fails the test unless err is a transport error, with
// no AWS error code or HTTP status.
func wantTransportError(t *testing.T, what string, err error) {
	t.Helper()
	var se *smithyhttp.RequestSendError
	if !errors.As(err, &se) || errorCode(err) != "" || httpStatus(err) != 0 {
		t.Errorf("%s: %v (%T), want a transport error (*smithyhttp.RequestSendError) without an AWS error code", what, err, err)
	}
}

func TestProxyForwards(t *testing.T) {
	t.Parallel()
	p, c := proxied(t)
	if p.Region != DefaultRegion || p.AccountID != DefaultAccountID || p.ARN(SymmetricKeyID) != keyARN(DefaultRegion, DefaultAccountID, SymmetricKeyID) {
		t.Errorf("proxy Region %s, AccountID %s, ARN %s", p.Region, p.AccountID, p.ARN(SymmetricKeyID))
	}
	roundTrip(t, c, c, MultiRegionKeyID, "")
	out, err := c.DescribeKey(ctxT(t), &kms.DescribeKeyInput{KeyId: aws.String(SymmetricKeyID)})
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata); id == "" {
		t.Error("DescribeKey through the proxy: no request id")
	}
	if out.KeyMetadata.MultiRegion != nil || out.KeyMetadata.MultiRegionConfiguration != nil {
		t.Errorf("DescribeKey without SetMultiRegion: MultiRegion %v, configuration %v; want neither", out.KeyMetadata.MultiRegion, out.KeyMetadata.MultiRegionConfiguration)
	}
	// roundTrip: GenerateDataKey, 2 Decrypt, Encrypt, Decrypt; then DescribeKey.
	for action, want := range map[string]int{"GenerateDataKey": 1, "Encrypt": 1, "Decrypt": 3, "DescribeKey": 1, "": 6, "TrentService.Decrypt": 3} {
		if got := p.Calls(action); got != want {
			t.Errorf("Calls(%q) = %d, want %d", action, got, want)
		}
	}
	p.ResetCalls()
	if got := p.Calls(""); got != 0 {
		t.Errorf("Calls after ResetCalls = %d", got)
	}
}

func TestProxyErrors(t *testing.T) {
	t.Parallel()
	p, c := proxied(t)
	for _, tc := range []struct {
		fault      Fault
		code       string
		status     int
		errPointer any // a pointer to the SDK's typed error, if it has one
	}{
		{Fault{AWSError: "ThrottlingException"}, "ThrottlingException", 400, nil},
		{Fault{AWSError: "AccessDeniedException"}, "AccessDeniedException", 400, nil},
		{Fault{AWSError: "KMSInternalException"}, "KMSInternalException", 500, new(*types.KMSInternalException)},
		{Fault{AWSError: "DependencyTimeoutException"}, "DependencyTimeoutException", 503, new(*types.DependencyTimeoutException)},
		{Fault{AWSError: "KeyUnavailableException"}, "KeyUnavailableException", 500, new(*types.KeyUnavailableException)},
		{Fault{AWSError: "DisabledException"}, "DisabledException", 400, new(*types.DisabledException)},
		{Fault{AWSError: "KMSInvalidStateException"}, "KMSInvalidStateException", 400, new(*types.KMSInvalidStateException)},
		{Fault{AWSError: "NotFoundException"}, "NotFoundException", 400, new(*types.NotFoundException)},
		{Fault{Status: 500}, "KMSInternalException", 500, nil},
		{Fault{Status: 503}, "ServiceUnavailable", 503, nil},
		{Fault{Status: 429}, "ThrottlingException", 429, nil},
		{Fault{Status: 502, AWSError: "InternalFailure", Message: "bad gateway"}, "InternalFailure", 502, nil},
	} {
		remove := p.Inject(tc.fault)
		err := gdk(ctxT(t), c)
		remove()
		what := "GenerateDataKey with " + tc.code
		wantCode(t, what, err, tc.code, tc.status)
		if tc.errPointer != nil && !errors.As(err, tc.errPointer) {
			t.Errorf("%s: %T does not match %T", what, err, tc.errPointer)
		}
		var re *awshttp.ResponseError
		if errors.As(err, &re) && re.ServiceRequestID() == "" {
			t.Errorf("%s: no request id", what)
		}
		var ae smithy.APIError
		if tc.fault.Message != "" && (!errors.As(err, &ae) || ae.ErrorMessage() != tc.fault.Message) {
			t.Errorf("%s: %v, want message %q", what, err, tc.fault.Message)
		}
	}
	if err := gdk(ctxT(t), c); err != nil {
		t.Errorf("GenerateDataKey after the faults were removed: %v", err)
	}
}

func TestProxyDrop(t *testing.T) {
	t.Parallel()
	p, c := proxied(t)
	if err := gdk(ctxT(t), c); err != nil { // an open connection to drop
		t.Fatal(err)
	}
	p.Inject(Fault{Action: "GenerateDataKey", Drop: true, Times: 1})
	wantTransportError(t, "GenerateDataKey with Drop", gdk(ctxT(t), c))
	if err := gdk(ctxT(t), c); err != nil {
		t.Errorf("GenerateDataKey after the dropped one: %v", err)
	}
}

func TestProxyDownUp(t *testing.T) {
	t.Parallel()
	p, c := proxied(t)
	if err := gdk(ctxT(t), c); err != nil {
		t.Fatal(err)
	}
	p.Down()
	wantTransportError(t, "GenerateDataKey while down", gdk(ctxT(t), c))
	_, err := c.DescribeKey(ctxT(t), &kms.DescribeKeyInput{KeyId: aws.String(MultiRegionKeyID)})
	wantTransportError(t, "DescribeKey while down", err)
	// A fresh client, on a new connection, fails the same way.
	wantTransportError(t, "GenerateDataKey while down, new client", gdk(ctxT(t), p.Client(t)))
	p.Up()
	if err := gdk(ctxT(t), c); err != nil {
		t.Errorf("GenerateDataKey after Up: %v", err)
	}
	if got := p.Calls("GenerateDataKey"); got != 4 {
		t.Errorf("Calls(GenerateDataKey) = %d, want 4 (dropped calls count)", got)
	}
}

func TestProxyLatency(t *testing.T) {
	t.Parallel()
	p, c := proxied(t)

	remove := p.Inject(Fault{Action: "GenerateDataKey", Latency: 100 * time.Millisecond})
	start := time.Now()
	if err := gdk(ctxT(t), c); err != nil {
		t.Errorf("GenerateDataKey with latency: %v", err)
	}
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Errorf("GenerateDataKey with 100ms latency took %v", took)
	}
	remove()

	// A client that gives up sees a timeout.
	p.Inject(Fault{Action: "Decrypt", Latency: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: []byte("x"), KeyId: aws.String(MultiRegionKeyID)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Decrypt with a 100ms deadline and a minute's latency: %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Decrypt timed out after %v", took)
	}

	// With Status, latency comes before the error.
	p.Inject(Fault{Action: "Encrypt", Latency: 50 * time.Millisecond, AWSError: "ThrottlingException", Times: 1})
	start = time.Now()
	_, err = c.Encrypt(ctxT(t), &kms.EncryptInput{KeyId: aws.String(MultiRegionKeyID), Plaintext: []byte("x")})
	wantCode(t, "Encrypt with latency and throttling", err, "ThrottlingException", 400)
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Errorf("Encrypt with 50ms latency took %v", took)
	}
}

func TestProxyTimesAndOrder(t *testing.T) {
	t.Parallel()
	p, c := proxied(t)
	p.Inject(Fault{Action: "GenerateDataKey", AWSError: "ThrottlingException", Times: 2})
	p.Inject(Fault{AWSError: "KMSInternalException", Times: 1}) // every action, after the first fault
	p.Inject(Fault{Action: "Decrypt", AWSError: "AccessDeniedException"})

	for i, want := range []string{"ThrottlingException", "ThrottlingException", "KMSInternalException", ""} {
		if got := errorCode(gdk(ctxT(t), c)); got != want {
			t.Errorf("GenerateDataKey #%d: error code %q, want %q", i+1, got, want)
		}
	}
	if got := p.Calls("GenerateDataKey"); got != 4 {
		t.Errorf("Calls(GenerateDataKey) = %d, want 4", got)
	}
	// The Decrypt fault applies until removed; Encrypt is not affected.
	e, err := c.Encrypt(ctxT(t), &kms.EncryptInput{KeyId: aws.String(MultiRegionKeyID), Plaintext: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	decrypt := func() error {
		_, err := c.Decrypt(ctxT(t), &kms.DecryptInput{CiphertextBlob: e.CiphertextBlob})
		return err
	}
	for range 3 {
		wantCode(t, "Decrypt", decrypt(), "AccessDeniedException", 400)
	}
	p.mu.Lock()
	n := len(p.faults)
	p.mu.Unlock()
	if n != 1 {
		t.Errorf("%d faults left, want 1 (used-up faults are removed)", n)
	}
}

func TestProxyRemove(t *testing.T) {
	t.Parallel()
	p, c := proxied(t)
	remove := p.Inject(Fault{AWSError: "ThrottlingException"})
	for range 3 {
		wantCode(t, "GenerateDataKey", gdk(ctxT(t), c), "ThrottlingException", 400)
	}
	remove()
	remove() // a no-op
	if err := gdk(ctxT(t), c); err != nil {
		t.Errorf("GenerateDataKey after remove: %v", err)
	}
}

// TestProxyWithRetries shows what an SDK client with retries sees: transient
// faults are retried away, and Calls counts every attempt.
func TestProxyWithRetries(t *testing.T) {
	t.Parallel()
	p := NewProxy(t, Start(t, Options{}))
	c := p.Client(t, func(o *kms.Options) {
		o.RetryMaxAttempts = 0 // else it caps the Retryer's attempts
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 4
			so.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
		})
	})
	p.Inject(Fault{Action: "GenerateDataKey", AWSError: "ThrottlingException", Times: 1})
	p.Inject(Fault{Action: "GenerateDataKey", Status: 503, Times: 1})
	p.Inject(Fault{Action: "GenerateDataKey", Drop: true, Times: 1})
	if err := gdk(ctxT(t), c); err != nil {
		t.Fatalf("GenerateDataKey with 3 transient faults and 4 attempts: %v", err)
	}
	if got := p.Calls("GenerateDataKey"); got != 4 {
		t.Errorf("Calls(GenerateDataKey) = %d, want 4", got)
	}
	p.Inject(Fault{Action: "GenerateDataKey", AWSError: "AccessDeniedException", Times: 1})
	p.ResetCalls()
	wantCode(t, "GenerateDataKey with AccessDenied", gdk(ctxT(t), c), "AccessDeniedException", 400)
	if got := p.Calls("GenerateDataKey"); got != 1 {
		t.Errorf("Calls(GenerateDataKey) = %d, want 1 (AccessDenied is not retried)", got)
	}
}

func TestProxySetMultiRegion(t *testing.T) {
	t.Parallel()
	ps, ds := StartPair(t, "eu-west-1", "eu-west-3")
	pp, dp := NewProxy(t, ps), NewProxy(t, ds)
	for _, p := range []*Proxy{pp, dp} {
		p.SetMultiRegion(MultiRegionKeyID, "eu-west-1", "eu-west-3")
	}
	primaryKey := types.MultiRegionKey{Arn: aws.String(ps.ARN(MultiRegionKeyID)), Region: aws.String("eu-west-1")}
	replicaKey := types.MultiRegionKey{Arn: aws.String(ds.ARN(MultiRegionKeyID)), Region: aws.String("eu-west-3")}
	for _, tc := range []struct {
		p    *Proxy
		kind types.MultiRegionKeyType
	}{{pp, types.MultiRegionKeyTypePrimary}, {dp, types.MultiRegionKeyTypeReplica}} {
		c := tc.p.Client(t)
		out, err := c.DescribeKey(ctxT(t), &kms.DescribeKeyInput{KeyId: aws.String(MultiRegionKeyID)})
		if err != nil {
			t.Fatal(err)
		}
		md := out.KeyMetadata
		if !aws.ToBool(md.MultiRegion) || md.MultiRegionConfiguration == nil {
			t.Fatalf("%s: DescribeKey(MultiRegionKeyID): MultiRegion %v, configuration %v", tc.p.Region, md.MultiRegion, md.MultiRegionConfiguration)
		}
		mc := md.MultiRegionConfiguration
		if mc.MultiRegionKeyType != tc.kind || !sameKey(mc.PrimaryKey, &primaryKey) || len(mc.ReplicaKeys) != 1 || !sameKey(&mc.ReplicaKeys[0], &replicaKey) {
			t.Errorf("%s: MultiRegionConfiguration = %s %v %v", tc.p.Region, mc.MultiRegionKeyType, mc.PrimaryKey, mc.ReplicaKeys)
		}
		// The rest of the metadata is local-kms's own.
		if aws.ToString(md.Arn) != tc.p.ARN(MultiRegionKeyID) || md.KeySpec != types.KeySpecSymmetricDefault || md.CreationDate == nil {
			t.Errorf("%s: DescribeKey(MultiRegionKeyID) = Arn %s, KeySpec %s, CreationDate %v", tc.p.Region, aws.ToString(md.Arn), md.KeySpec, md.CreationDate)
		}
		// Other keys are untouched.
		out, err = c.DescribeKey(ctxT(t), &kms.DescribeKeyInput{KeyId: aws.String(SecondMultiRegionKeyID)})
		if err != nil {
			t.Fatal(err)
		}
		if out.KeyMetadata.MultiRegion != nil || out.KeyMetadata.MultiRegionConfiguration != nil {
			t.Errorf("%s: DescribeKey(SecondMultiRegionKeyID) has multi-Region metadata", tc.p.Region)
		}
	}

	// Failing over: the DR Region decrypts what the primary made.
	roundTrip(t, pp.Client(t), dp.Client(t), MultiRegionKeyID, MultiRegionKeyID)
}

func sameKey(a, b *types.MultiRegionKey) bool {
	return a != nil && b != nil && aws.ToString(a.Arn) == aws.ToString(b.Arn) && aws.ToString(a.Region) == aws.ToString(b.Region)
}
