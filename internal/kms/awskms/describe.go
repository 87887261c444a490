package awskms

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// KeyDescription is what registering a key needs to know of it.
type KeyDescription struct {
	// ARN is the key's ARN as KMS reports it.
	ARN string
	// State is the key's lifecycle state (see Provider's Describe for
	// how AWS's states map to it).
	State kms.KeyState
	// AWSState is the key state as AWS spells it ("Enabled",
	// "PendingDeletion", "Unavailable", ...).
	AWSState string
	// Spec is the key spec as AWS spells it; tenantcrypt needs
	// SYMMETRIC_DEFAULT.
	Spec string
	// Usage is the key usage as AWS spells it; tenantcrypt needs
	// ENCRYPT_DECRYPT.
	Usage string
	// MultiRegion is set for a multi-region key. Primary and Replicas
	// are known when KMS reports the key's multi-region configuration:
	// Primary is the primary key (possibly the one described), Replicas
	// its replica keys.
	MultiRegion bool
	Primary     *Replica
	Replicas    []Replica
}

// Replica is one region's key of a multi-region key.
type Replica struct {
	ARN    string
	Region string
}

// DescribeKey describes key, asking its own region. A key that is
// disabled or pending deletion is described without error; a key that
// does not exist, or no longer does, yields kms.ErrKeyNotFound. Errors are
// *kms.Error with Op "DescribeKey".
func (c *Client) DescribeKey(ctx context.Context, key ARN) (KeyDescription, error) {
	t := target{c: c, ref: key.String(), region: key.Region, key: key}
	if err := checkARN(key); err != nil {
		return KeyDescription{}, t.err(actionDescribeKey, nil, err)
	}
	md, err := t.describe(ctx, actionDescribeKey)
	if !outage(err) && ctx.Err() == nil {
		c.served(key.Region)
	}
	if err != nil {
		return KeyDescription{}, err
	}
	d := KeyDescription{
		ARN:         aws.ToString(md.Arn),
		State:       keyState(md.KeyState),
		AWSState:    string(md.KeyState),
		Spec:        string(md.KeySpec),
		Usage:       string(md.KeyUsage),
		MultiRegion: aws.ToBool(md.MultiRegion) || md.MultiRegionConfiguration != nil,
	}
	if d.ARN == "" {
		d.ARN = key.String()
	}
	if d.Spec == "" {
		d.Spec = string(md.CustomerMasterKeySpec) //lint:ignore SA1019 older answers (and local-kms) may carry only the deprecated field
	}
	if mrc := md.MultiRegionConfiguration; mrc != nil {
		if pk := mrc.PrimaryKey; pk != nil {
			d.Primary = &Replica{ARN: aws.ToString(pk.Arn), Region: aws.ToString(pk.Region)}
		}
		for _, r := range mrc.ReplicaKeys {
			d.Replicas = append(d.Replicas, Replica{ARN: aws.ToString(r.Arn), Region: aws.ToString(r.Region)})
		}
	}
	return d, nil
}

// ProbeResult is the outcome of one action of a Probe.
type ProbeResult struct {
	// Action is the AWS KMS action tried: "DescribeKey",
	// "GenerateDataKey", "Encrypt" or "Decrypt".
	Action string
	// Region is where it was tried.
	Region string
	// Err is nil if the action worked, else a *kms.Error
	// (kms.ErrAccessDenied where the key policy refuses it).
	Err error
}

// ErrNotProbed is the error of a Decrypt that Probe could not try because
// neither GenerateDataKey nor Encrypt gave it a ciphertext.
var ErrNotProbed = errors.New("not tried: GenerateDataKey and Encrypt made nothing to decrypt")

// Probe tries, in region, every action tenantcrypt needs of key, with
// binding as the encryption context: DescribeKey, GenerateDataKey,
// Encrypt, and Decrypt of what GenerateDataKey (else Encrypt) made, which
// must give back the same key. It tries them all whatever fails, and
// reports one result per action in that order, so that a refusal can be
// named by action and region. For a multi-region key, region's replica is
// probed.
func (c *Client) Probe(ctx context.Context, key ARN, region string, binding kms.Binding) []ProbeResult {
	t := target{c: c, ref: key.String(), region: region, key: key.InRegion(region)}
	results := make([]ProbeResult, 0, 4)
	report := func(action string, err error) {
		results = append(results, ProbeResult{Action: action, Region: region, Err: err})
	}
	if err := checkARN(key); err != nil {
		for _, action := range []string{actionDescribeKey, actionGenerateDataKey, actionEncrypt, actionDecrypt} {
			report(action, t.err(action, nil, err))
		}
		return results
	}

	_, err := t.describe(ctx, actionDescribeKey)
	report(actionDescribeKey, err)

	var want *secret.Bytes // the plaintext of blob
	var blob []byte
	dk, generated, err := t.generateDataKey(ctx, actionGenerateDataKey, binding)
	report(actionGenerateDataKey, err)
	if err == nil {
		defer dk.Destroy()
		want, blob = dk, generated
	}

	var encrypted []byte
	pt, err := secret.Random(kms.DataKeySize)
	if err == nil {
		defer pt.Destroy()
		encrypted, err = t.encrypt(ctx, actionEncrypt, pt, binding)
	} else {
		err = t.err(actionEncrypt, nil, err)
	}
	report(actionEncrypt, err)
	if want == nil && err == nil {
		want, blob = pt, encrypted
	}

	if want == nil {
		report(actionDecrypt, t.err(actionDecrypt, nil, ErrNotProbed))
		return results
	}
	got, err := t.decrypt(ctx, actionDecrypt, blob, binding)
	if err == nil {
		if !bytes.Equal(got.Reveal(), want.Reveal()) {
			err = t.err(actionDecrypt, nil, errors.New("decrypt gave back another key than was encrypted"))
		}
		got.Destroy()
	}
	report(actionDecrypt, err)
	return results
}

// checkARN refuses an ARN that was not made by ParseARN.
func checkARN(key ARN) error {
	parsed, err := ParseARN(key.String())
	if err != nil {
		return err
	}
	if parsed != key {
		return fmt.Errorf("%w: %q does not parse back to the same key", ErrMalformedARN, key.String())
	}
	return nil
}
