package testkms

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/url"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
)

// errorCode returns the AWS error code of err, or "" if it has none.
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// httpStatus returns the HTTP status of an AWS error answer, or 0.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// wantCode fails the test unless err is an AWS API error with code and
// HTTP status.
func wantCode(t *testing.T, what string, err error, code string, status int) {
	t.Helper()
	if got := errorCode(err); got != code {
		t.Errorf("%s: error code %q, want %q (err: %v)", what, got, code, err)
	}
	if got := httpStatus(err); got != status {
		t.Errorf("%s: HTTP status %d, want %d (err: %v)", what, got, status, err)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var encContext = map[string]string{"tenant": "t-1"}

// roundTrip makes a data key with keyID through gen and decrypts it through
// dec (with decKeyID, if not empty), and encrypts and decrypts a message
// the same way.
func roundTrip(t *testing.T, gen, dec *kms.Client, keyID, decKeyID string) {
	t.Helper()
	ctx := ctxT(t)
	var decKey *string
	if decKeyID != "" {
		decKey = aws.String(decKeyID)
	}
	g, err := gen.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId: aws.String(keyID), KeySpec: types.DataKeySpecAes256, EncryptionContext: encContext,
	})
	if err != nil {
		t.Fatalf("GenerateDataKey(%s): %v", keyID, err)
	}
	if len(g.Plaintext) != 32 {
		t.Fatalf("GenerateDataKey(%s): %d bytes of plaintext, want 32", keyID, len(g.Plaintext))
	}
	d, err := dec.Decrypt(ctx, &kms.DecryptInput{
		CiphertextBlob: g.CiphertextBlob, KeyId: decKey, EncryptionContext: encContext,
	})
	if err != nil {
		t.Fatalf("Decrypt(GenerateDataKey(%s)): %v", keyID, err)
	}
	if !bytes.Equal(d.Plaintext, g.Plaintext) {
		t.Fatalf("Decrypt(GenerateDataKey(%s)): plaintext differs", keyID)
	}
	if _, err := dec.Decrypt(ctx, &kms.DecryptInput{
		CiphertextBlob: g.CiphertextBlob, KeyId: decKey, EncryptionContext: map[string]string{"tenant": "t-2"},
	}); errorCode(err) != "InvalidCiphertextException" {
		t.Errorf("Decrypt with another encryption context: %v, want InvalidCiphertextException", err)
	}

	msg := []byte("a small secret")
	e, err := gen.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: msg, EncryptionContext: encContext})
	if err != nil {
		t.Fatalf("Encrypt(%s): %v", keyID, err)
	}
	d, err = dec.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: e.CiphertextBlob, KeyId: decKey, EncryptionContext: encContext})
	if err != nil {
		t.Fatalf("Decrypt(Encrypt(%s)): %v", keyID, err)
	}
	if !bytes.Equal(d.Plaintext, msg) {
		t.Fatalf("Decrypt(Encrypt(%s)) = %q, want %q", keyID, d.Plaintext, msg)
	}
}

func TestStartSeededKeys(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	if s.Region != DefaultRegion || s.AccountID != DefaultAccountID {
		t.Errorf("Region, AccountID = %s, %s; want %s, %s", s.Region, s.AccountID, DefaultRegion, DefaultAccountID)
	}
	if u, err := url.Parse(s.URL); err != nil || u.Hostname() != "127.0.0.1" {
		t.Errorf("URL %q: want http://127.0.0.1:PORT", s.URL)
	}
	c := s.Client(t)
	ctx := ctxT(t)

	l, err := c.ListKeys(ctx, &kms.ListKeysInput{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range l.Keys {
		ids = append(ids, aws.ToString(k.KeyId))
	}
	for _, id := range []string{SymmetricKeyID, MultiRegionKeyID, SecondMultiRegionKeyID, AsymmetricKeyID} {
		if !slices.Contains(ids, id) {
			t.Errorf("ListKeys = %q, missing %s", ids, id)
		}
	}

	for _, tc := range []struct {
		id   string
		spec types.KeySpec
	}{
		{SymmetricKeyID, types.KeySpecSymmetricDefault},
		{MultiRegionKeyID, types.KeySpecSymmetricDefault},
		{SecondMultiRegionKeyID, types.KeySpecSymmetricDefault},
		{AsymmetricKeyID, types.KeySpecRsa2048},
	} {
		out, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(tc.id)})
		if err != nil {
			t.Fatalf("DescribeKey(%s): %v", tc.id, err)
		}
		md := out.KeyMetadata
		if got, want := aws.ToString(md.Arn), s.ARN(tc.id); got != want {
			t.Errorf("DescribeKey(%s).Arn = %s, want %s", tc.id, got, want)
		}
		if md.KeySpec != tc.spec || md.KeyUsage != types.KeyUsageTypeEncryptDecrypt || !md.Enabled || md.KeyState != types.KeyStateEnabled {
			t.Errorf("DescribeKey(%s) = KeySpec %s, KeyUsage %s, Enabled %v, KeyState %s; want %s, ENCRYPT_DECRYPT, true, Enabled",
				tc.id, md.KeySpec, md.KeyUsage, md.Enabled, md.KeyState, tc.spec)
		}
		if id, ok := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata); !ok || id == "" {
			t.Errorf("DescribeKey(%s): no request id", tc.id)
		}
	}

	for _, id := range []string{SymmetricKeyID, MultiRegionKeyID, SecondMultiRegionKeyID} {
		roundTrip(t, c, c, id, "")
		roundTrip(t, c, c, s.ARN(id), s.ARN(id))
	}

	// The asymmetric key encrypts with RSA but makes no data keys. AWS
	// answers InvalidKeyUsageException (400); local-kms answers
	// InternalFailureException (500).
	_, err = c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(AsymmetricKeyID), KeySpec: types.DataKeySpecAes256})
	wantCode(t, "GenerateDataKey(AsymmetricKeyID)", err, "InternalFailureException", 500)
	msg := []byte("rsa secret")
	e, err := c.Encrypt(ctx, &kms.EncryptInput{
		KeyId: aws.String(AsymmetricKeyID), Plaintext: msg, EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256,
	})
	if err != nil {
		t.Fatalf("Encrypt(AsymmetricKeyID): %v", err)
	}
	d, err := c.Decrypt(ctx, &kms.DecryptInput{
		KeyId: aws.String(AsymmetricKeyID), CiphertextBlob: e.CiphertextBlob, EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256,
	})
	if err != nil || !bytes.Equal(d.Plaintext, msg) {
		t.Fatalf("Decrypt(Encrypt(AsymmetricKeyID)) = %q, %v; want %q", d.Plaintext, err, msg)
	}
}

func TestStartOptions(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Region: "ap-southeast-2", AccountID: "444455556666"})
	out, err := s.Client(t).DescribeKey(ctxT(t), &kms.DescribeKeyInput{KeyId: aws.String(MultiRegionKeyID)})
	if err != nil {
		t.Fatal(err)
	}
	want := "arn:aws:kms:ap-southeast-2:444455556666:key/" + MultiRegionKeyID
	if got := aws.ToString(out.KeyMetadata.Arn); got != want || s.ARN(MultiRegionKeyID) != want {
		t.Errorf("Arn = %s, ARN() = %s; want %s", got, s.ARN(MultiRegionKeyID), want)
	}
	if got := aws.ToString(out.KeyMetadata.AWSAccountId); got != "444455556666" {
		t.Errorf("AWSAccountId = %s, want 444455556666", got)
	}
}

func TestCreateKey(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	c := s.Client(t)
	ctx := ctxT(t)
	out, err := c.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("made by a test")})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.KeyMetadata.KeyId)
	d, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	if d.KeyMetadata.KeySpec != types.KeySpecSymmetricDefault || aws.ToString(d.KeyMetadata.Arn) != s.ARN(id) {
		t.Errorf("DescribeKey(new key) = %s, %s", d.KeyMetadata.KeySpec, aws.ToString(d.KeyMetadata.Arn))
	}
	roundTrip(t, c, c, id, "")

	// MultiRegion is accepted and ignored: the key gets no mrk- id.
	mr, err := c.CreateKey(ctx, &kms.CreateKeyInput{MultiRegion: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if id := aws.ToString(mr.KeyMetadata.KeyId); len(id) < 4 || id[:4] == "mrk-" || aws.ToBool(mr.KeyMetadata.MultiRegion) {
		t.Errorf("CreateKey(MultiRegion) = %s, MultiRegion %v: local-kms has learnt multi-Region keys; update the package comment",
			id, aws.ToBool(mr.KeyMetadata.MultiRegion))
	}
}

func TestStartPair(t *testing.T) {
	t.Parallel()
	p, d := StartPair(t, "eu-west-1", "eu-west-3")
	if p.Region != "eu-west-1" || d.Region != "eu-west-3" {
		t.Fatalf("Regions %s, %s", p.Region, d.Region)
	}
	pc, dc := p.Client(t), d.Client(t)
	ctx := ctxT(t)

	for _, id := range []string{MultiRegionKeyID, SecondMultiRegionKeyID} {
		// Same key material: either Region decrypts what the other made,
		// given KeyId (a known difference from AWS).
		roundTrip(t, pc, dc, id, id)
		roundTrip(t, dc, pc, id, id)
		roundTrip(t, pc, dc, id, d.ARN(id))
	}

	g, err := pc.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(MultiRegionKeyID), KeySpec: types.DataKeySpecAes256})
	if err != nil {
		t.Fatal(err)
	}
	// Known differences: AWS decrypts without KeyId, local-kms looks for the
	// primary's ARN in the replica Region.
	_, err = dc.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: g.CiphertextBlob})
	wantCode(t, "Decrypt in the DR Region without KeyId", err, "AccessDeniedException", 400)
	_, err = dc.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: g.CiphertextBlob, KeyId: aws.String(p.ARN(MultiRegionKeyID))})
	wantCode(t, "Decrypt in the DR Region with the primary's ARN", err, "NotFoundException", 400)

	// The two multi-Region keys do not share material.
	_, err = pc.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: g.CiphertextBlob, KeyId: aws.String(SecondMultiRegionKeyID)})
	wantCode(t, "Decrypt with the other multi-Region key", err, "InvalidCiphertextException", 400)

	// Single-Region keys live in the primary Region only.
	for _, id := range []string{SymmetricKeyID, AsymmetricKeyID} {
		if _, err := pc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)}); err != nil {
			t.Errorf("DescribeKey(%s) in the primary Region: %v", id, err)
		}
		_, err := dc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
		wantCode(t, "DescribeKey of a single-Region key in the DR Region", err, "NotFoundException", 400)
	}
}

// TestKeyStates checks the key states the lifecycle depends on, and pins
// local-kms's known differences from AWS so that a change shows.
func TestKeyStates(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	c := s.Client(t)
	ctx := ctxT(t)
	key := aws.String(SymmetricKeyID)
	g, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: key, KeySpec: types.DataKeySpecAes256})
	if err != nil {
		t.Fatal(err)
	}
	state := func() types.KeyState {
		t.Helper()
		out, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: key})
		if err != nil {
			t.Fatal(err)
		}
		return out.KeyMetadata.KeyState
	}

	if _, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: key}); err != nil {
		t.Fatal(err)
	}
	if got := state(); got != types.KeyStateDisabled {
		t.Errorf("after DisableKey: KeyState %s", got)
	}
	_, err = c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: key, KeySpec: types.DataKeySpecAes256})
	wantCode(t, "GenerateDataKey of a disabled key", err, "DisabledException", 400)
	var disabled *types.DisabledException
	if !errors.As(err, &disabled) {
		t.Errorf("GenerateDataKey of a disabled key: %T, want *types.DisabledException", err)
	}
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: g.CiphertextBlob, KeyId: key})
	wantCode(t, "Decrypt with KeyId of a disabled key", err, "DisabledException", 400)
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: g.CiphertextBlob})
	wantCode(t, "Decrypt without KeyId of a disabled key (AWS: DisabledException)", err, "AccessDeniedException", 400)

	if _, err := c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: key}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: g.CiphertextBlob}); err != nil {
		t.Errorf("Decrypt after EnableKey: %v", err)
	}

	if _, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: key, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	if got := state(); got != types.KeyStatePendingDeletion {
		t.Errorf("after ScheduleKeyDeletion: KeyState %s", got)
	}
	_, err = c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: key, KeySpec: types.DataKeySpecAes256})
	wantCode(t, "GenerateDataKey of a key pending deletion", err, "KMSInvalidStateException", 400)
	if _, err := c.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: key}); err != nil {
		t.Fatal(err)
	}
	if got := state(); got != types.KeyStateEnabled {
		t.Errorf("after CancelKeyDeletion: KeyState %s; local-kms used to leave it Enabled (AWS: Disabled)", got)
	}

	_, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("00000000-0000-4000-8000-000000000000")})
	wantCode(t, "DescribeKey of an unknown key", err, "NotFoundException", 400)
}

// TestUnimplemented pins the actions local-kms does not implement: HTTP 501
// with a plain-text body, so the SDK reports no error code.
func TestUnimplemented(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	c := s.Client(t)
	ctx := ctxT(t)
	key := aws.String(MultiRegionKeyID)
	for name, call := range map[string]func() error{
		"RotateKeyOnDemand": func() error {
			_, err := c.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: key})
			return err
		},
		"ReplicateKey": func() error {
			_, err := c.ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: key, ReplicaRegion: aws.String("eu-west-3")})
			return err
		},
		"UpdatePrimaryRegion": func() error {
			_, err := c.UpdatePrimaryRegion(ctx, &kms.UpdatePrimaryRegionInput{KeyId: key, PrimaryRegion: aws.String("eu-west-3")})
			return err
		},
	} {
		err := call()
		if got := httpStatus(err); got != 501 {
			t.Errorf("%s: HTTP status %d, want 501 (err: %v)", name, got, err)
		}
	}
}

// TestCleanup checks that the processes and listeners are gone once the test
// that started them has ended.
func TestCleanup(t *testing.T) {
	t.Parallel()
	var s *Server
	var p *Proxy
	t.Run("start", func(t *testing.T) {
		s = Start(t, Options{})
		p = NewProxy(t, s)
		if _, err := p.Client(t).ListKeys(ctxT(t), &kms.ListKeysInput{}); err != nil {
			t.Fatal(err)
		}
	})
	select {
	case <-s.exited:
	default:
		t.Fatal("local-kms is still running after its test's cleanup")
	}
	if s.cmd.ProcessState == nil || !s.cmd.ProcessState.Exited() || s.cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("local-kms process state %v, want a clean exit", s.cmd.ProcessState)
	}
	for _, u := range []string{s.URL, p.URL} {
		host := u[len("http://"):]
		if c, err := net.DialTimeout("tcp", host, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections", u)
		}
	}
}

// TestLoopbackOnly checks that the wrapper refuses any other address.
func TestLoopbackOnly(t *testing.T) {
	t.Parallel()
	bin, err := binary()
	if err != nil {
		t.Skip(err)
	}
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		out, err := exec.Command(bin, "-addr", addr, "-data", t.TempDir()).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Errorf("localkms -addr %s: %v, want exit status 1; output:\n%s", addr, err, out)
		}
	}
}
