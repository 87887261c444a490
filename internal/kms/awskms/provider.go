package awskms

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// maxCiphertextLen is AWS KMS's limit on a CiphertextBlob; a longer one
// cannot be a blob KMS made.
const maxCiphertextLen = 6144

// Provider returns key as a kms.Provider whose Ref is ref (the caller's
// registry decides refs; they are stored beside every wrapped key).
//
// Every call passes the kms.Binding as the AWS encryption context and
// names the key by its ARN, Decrypt included, so a blob of another key is
// refused even where the blob would name its key itself. Calls go to the
// key's own region. A key ARN that ParseARN would refuse, or an empty
// ref, gives a provider whose every call fails.
//
// Errors are *kms.Error with Op the provider method ("Unwrap"), Region,
// and the AWS request id when KMS answered. Their Kind follows the AWS
// error code: a KMSInvalidStateException, whose code does not tell a key
// pending deletion from one otherwise unusable, is followed by one
// DescribeKey to tell (kms.ErrKeyPendingDeletion, else kms.ErrKeyDisabled
// if that call fails too). The caller's own cancellation or deadline is
// kms.ErrUnavailable with errors.Is(err, context.Canceled) (or
// DeadlineExceeded) true. An error no sentinel describes (a validation
// error, a key that cannot encrypt) has a nil Kind and is not retryable.
//
// Describe maps AWS's key states: Enabled and Updating to kms.KeyEnabled;
// Disabled, PendingImport, Unavailable (custom key store disconnected)
// and Creating to kms.KeyDisabled; PendingDeletion and
// PendingReplicaDeletion to kms.KeyPendingDeletion. Its Detail names the
// AWS state and any scheduled deletion date.
//
// For a multi-region key, replicaRegions are where its replicas serve when
// the key's own region has an outage (a broken connection, a timeout, a
// 5xx or KMSInternalException): the same call goes to the replica, and
// while the region's breaker is open (see RegionHealth), later calls go
// there at once; a probe per Config.ProbeInterval fails back. A refusal
// (disabled, pending deletion, access denied, not found) is an answer from
// the key's region and never fails over; throttling is retried there.
// Replicas of a key that is not multi-region are ignored.
func (c *Client) Provider(ref kms.Ref, key ARN, replicaRegions ...string) kms.Provider {
	p := &provider{ref: ref, t: target{c: c, ref: ref.String(), region: key.Region, key: key}}
	if err := checkARN(key); err != nil {
		p.invalid = err
	} else if ref.IsZero() {
		p.invalid = errors.New("awskms: empty provider ref")
	}
	if key.MultiRegion() {
		for _, r := range replicaRegions {
			if r != key.Region && regionRE.MatchString(r) {
				p.replicas = append(p.replicas, target{c: c, ref: ref.String(), region: r, key: key.InRegion(r)})
			}
		}
	}
	return p
}

type provider struct {
	ref kms.Ref
	t   target
	// replicas are the key's replicas to fail over to, in order.
	replicas []target
	// invalid says why this provider cannot be used, if it cannot.
	invalid error
}

var _ kms.Provider = (*provider)(nil)

func (p *provider) Ref() kms.Ref { return p.ref }

func (p *provider) GenerateDataKey(ctx context.Context, b kms.Binding) (*secret.Bytes, kms.Wrapped, error) {
	const op = "GenerateDataKey"
	if p.invalid != nil {
		return nil, kms.Wrapped{}, p.t.err(op, nil, p.invalid)
	}
	var dk *secret.Bytes
	var w kms.Wrapped
	err := p.do(ctx, func(t target) error {
		var err error
		dk, w.Blob, err = t.generateDataKey(ctx, op, b)
		w.KeyVersion = t.key.String()
		return err
	})
	if err != nil {
		return nil, kms.Wrapped{}, err
	}
	return dk, w, nil
}

func (p *provider) Wrap(ctx context.Context, plaintext *secret.Bytes, b kms.Binding) (kms.Wrapped, error) {
	const op = "Wrap"
	if p.invalid != nil {
		return kms.Wrapped{}, p.t.err(op, nil, p.invalid)
	}
	var w kms.Wrapped
	err := p.do(ctx, func(t target) error {
		var err error
		w.Blob, err = t.encrypt(ctx, op, plaintext, b)
		w.KeyVersion = t.key.String()
		return err
	})
	if err != nil {
		return kms.Wrapped{}, err
	}
	return w, nil
}

// Unwrap decrypts w if w.KeyVersion names this provider's key (in any
// region, for a multi-region key: its replicas share the key material),
// and refuses it as ErrInvalidCiphertext without asking KMS otherwise.
func (p *provider) Unwrap(ctx context.Context, w kms.Wrapped, b kms.Binding) (*secret.Bytes, error) {
	const op = "Unwrap"
	if p.invalid != nil {
		return nil, p.t.err(op, nil, p.invalid)
	}
	if len(w.Blob) == 0 || len(w.Blob) > maxCiphertextLen {
		return nil, p.t.err(op, kms.ErrInvalidCiphertext, nil)
	}
	if by, err := ParseARN(w.KeyVersion); err != nil || !by.sameKey(p.t.key) {
		return nil, p.t.err(op, kms.ErrInvalidCiphertext, nil)
	}
	var dk *secret.Bytes
	err := p.do(ctx, func(t target) error {
		var err error
		dk, err = t.decrypt(ctx, op, w.Blob, b)
		return err
	})
	return dk, err
}

func (p *provider) Describe(ctx context.Context) (kms.KeyInfo, error) {
	const op = "Describe"
	if p.invalid != nil {
		return kms.KeyInfo{}, p.t.err(op, nil, p.invalid)
	}
	md, err := p.t.describe(ctx, op)
	if err != nil {
		return kms.KeyInfo{}, err
	}
	detail := "AWS KMS key state " + string(md.KeyState)
	if md.DeletionDate != nil {
		detail += ", deletion scheduled for " + md.DeletionDate.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	return kms.KeyInfo{State: keyState(md.KeyState), Detail: detail}, nil
}

// keyState maps AWS's key states to the lifecycle's. A state in which KMS
// refuses cryptographic operations for a reason the customer controls
// (imported material missing, custom key store disconnected, a replica
// still being created) counts as disabled; Updating (a multi-region key
// changing its primary) still serves them.
func keyState(s types.KeyState) kms.KeyState {
	switch s {
	case types.KeyStateEnabled, types.KeyStateUpdating:
		return kms.KeyEnabled
	case types.KeyStateDisabled, types.KeyStatePendingImport, types.KeyStateUnavailable, types.KeyStateCreating:
		return kms.KeyDisabled
	case types.KeyStatePendingDeletion, types.KeyStatePendingReplicaDeletion:
		return kms.KeyPendingDeletion
	}
	return kms.KeyStateUnknown
}

// target is one key called in one region, with the name (kms.Error's
// Provider) its failures carry. key is the key's ARN in region.
type target struct {
	c      *Client
	ref    string
	region string
	key    ARN
	// attempts limits the attempts of each call (0: the client's policy).
	attempts int
}

// err is a failure of op that KMS did not report.
func (t target) err(op string, kind, cause error) *kms.Error {
	return &kms.Error{Op: op, Provider: t.ref, Region: t.region, Kind: kind, Err: cause}
}

func (t target) client(op string) (*awskms.Client, error) {
	kc, err := t.c.regionClient(t.region)
	if err != nil {
		return nil, t.err(op, nil, err)
	}
	return kc, nil
}

// fail is the *kms.Error for err, which the SDK returned for action.
func (t target) fail(ctx context.Context, op, action string, err error) error {
	c := classify(err)
	kind := c.kind(action)
	if c == classInvalidState && action != actionDescribeKey {
		kind = t.invalidStateKind(ctx)
	}
	return opError(op, t.ref, t.region, kind, err)
}

// invalidStateKind tells the states behind a KMSInvalidStateException
// apart. They differ for the tenant (pending deletion locks it; the other
// states make its key unavailable) and the exception's code does not say
// which, so this asks DescribeKey rather than read the message. If that
// fails too, the key is reported disabled: the milder state, which the
// lifecycle's own polling of Describe corrects.
func (t target) invalidStateKind(ctx context.Context) error {
	md, err := t.describe(ctx, actionDescribeKey)
	switch {
	case errors.Is(err, kms.ErrKeyNotFound):
		return kms.ErrKeyNotFound
	case err == nil && keyState(md.KeyState) == kms.KeyPendingDeletion:
		return kms.ErrKeyPendingDeletion
	}
	return kms.ErrKeyDisabled
}

// answeredKey checks that KMS answered for the key it was asked about.
func (t target) answeredKey(op string, keyID *string) error {
	if keyID == nil {
		return nil
	}
	if got, err := ParseARN(*keyID); err != nil || got != t.key {
		return t.err(op, nil, fmt.Errorf("KMS answered for key %q, not %s", *keyID, t.key))
	}
	return nil
}

func (t target) generateDataKey(ctx context.Context, op string, b kms.Binding) (*secret.Bytes, []byte, error) {
	kc, err := t.client(op)
	if err != nil {
		return nil, nil, err
	}
	out, err := kc.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{
		KeyId:             aws.String(t.key.String()),
		KeySpec:           types.DataKeySpecAes256,
		EncryptionContext: b,
	}, attemptsOption(t.attempts)...)
	t.observe(ctx, actionGenerateDataKey, b, resultMetadata(out, func() middleware.Metadata { return out.ResultMetadata }), err)
	if err != nil {
		return nil, nil, t.fail(ctx, op, actionGenerateDataKey, err)
	}
	dk := takePlaintext(out.Plaintext)
	if err := t.answeredKey(op, out.KeyId); err != nil {
		dk.Destroy()
		return nil, nil, err
	}
	if dk.Len() != kms.DataKeySize || len(out.CiphertextBlob) == 0 {
		n := dk.Len()
		dk.Destroy()
		return nil, nil, t.err(op, nil, fmt.Errorf("GenerateDataKey answered a %d-byte key and a %d-byte blob", n, len(out.CiphertextBlob)))
	}
	return dk, out.CiphertextBlob, nil
}

func (t target) encrypt(ctx context.Context, op string, plaintext *secret.Bytes, b kms.Binding) ([]byte, error) {
	if n := plaintext.Len(); n != kms.DataKeySize {
		return nil, t.err(op, nil, fmt.Errorf("a data key has %d bytes, not %d", kms.DataKeySize, n))
	}
	kc, err := t.client(op)
	if err != nil {
		return nil, err
	}
	out, err := kc.Encrypt(ctx, &awskms.EncryptInput{
		KeyId:               aws.String(t.key.String()),
		Plaintext:           plaintext.Reveal(),
		EncryptionContext:   b,
		EncryptionAlgorithm: types.EncryptionAlgorithmSpecSymmetricDefault,
	}, attemptsOption(t.attempts)...)
	t.observe(ctx, actionEncrypt, b, resultMetadata(out, func() middleware.Metadata { return out.ResultMetadata }), err)
	if err != nil {
		return nil, t.fail(ctx, op, actionEncrypt, err)
	}
	if err := t.answeredKey(op, out.KeyId); err != nil {
		return nil, err
	}
	if len(out.CiphertextBlob) == 0 {
		return nil, t.err(op, nil, errors.New("encrypt answered an empty blob"))
	}
	return out.CiphertextBlob, nil
}

func (t target) decrypt(ctx context.Context, op string, blob []byte, b kms.Binding) (*secret.Bytes, error) {
	kc, err := t.client(op)
	if err != nil {
		return nil, err
	}
	out, err := kc.Decrypt(ctx, &awskms.DecryptInput{
		CiphertextBlob: blob,
		// Naming the key makes KMS refuse a blob of another key, and
		// lets a replica decrypt what its primary wrapped.
		KeyId:               aws.String(t.key.String()),
		EncryptionContext:   b,
		EncryptionAlgorithm: types.EncryptionAlgorithmSpecSymmetricDefault,
	}, attemptsOption(t.attempts)...)
	t.observe(ctx, actionDecrypt, b, resultMetadata(out, func() middleware.Metadata { return out.ResultMetadata }), err)
	if err != nil {
		return nil, t.fail(ctx, op, actionDecrypt, err)
	}
	dk := takePlaintext(out.Plaintext)
	if err := t.answeredKey(op, out.KeyId); err != nil {
		dk.Destroy()
		return nil, err
	}
	if dk.Len() != kms.DataKeySize {
		// A blob this key made, but not of a data key: not ours.
		dk.Destroy()
		return nil, t.err(op, kms.ErrInvalidCiphertext, nil)
	}
	return dk, nil
}

func (t target) describe(ctx context.Context, op string) (*types.KeyMetadata, error) {
	kc, err := t.client(op)
	if err != nil {
		return nil, err
	}
	out, err := kc.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(t.key.String())}, attemptsOption(t.attempts)...)
	t.observe(ctx, actionDescribeKey, nil, resultMetadata(out, func() middleware.Metadata { return out.ResultMetadata }), err)
	if err != nil {
		return nil, t.fail(ctx, op, actionDescribeKey, err)
	}
	if out.KeyMetadata == nil {
		return nil, t.err(op, nil, errors.New("DescribeKey answered no key metadata"))
	}
	if err := t.answeredKey(op, out.KeyMetadata.Arn); err != nil {
		return nil, err
	}
	return out.KeyMetadata, nil
}

// resultMetadata is an answer's metadata, or none when there is no answer.
func resultMetadata[T any](out *T, meta func() middleware.Metadata) middleware.Metadata {
	if out == nil {
		return middleware.Metadata{}
	}
	return meta()
}

// takePlaintext moves a plaintext key out of an SDK answer into a
// *secret.Bytes, zeroing the SDK's copy.
func takePlaintext(b []byte) *secret.Bytes {
	s := secret.New(bytes.Clone(b))
	clear(b)
	return s
}
