// Package awskind is the AWS KMS kind of customer managed key: it teaches
// the key-provider service (package keyprovider) how to parse an AWS key
// ARN, open a provider for a registered key, check a key at registration
// and in the key monitor, and report failovers to a multi-region key's
// replica. Only the composition root (cmd/) imports it.
//
// Everything that depends on where a key lives (its region, the DR region
// and its replica there) is decided here, once: DRRegion.
package awskind

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/awskms"
)

// Name is the kind's name, as the API's "keyprovider" field spells it.
const Name = "AWS-KMS"

// Client is what the kind needs of AWS KMS (an *awskms.Client). Errors are
// kms sentinels wrapped in *kms.Error.
type Client interface {
	DescribeKey(ctx context.Context, key awskms.ARN) (awskms.KeyDescription, error)
	Probe(ctx context.Context, key awskms.ARN, region string, b kms.Binding) []awskms.ProbeResult
	Provider(ref kms.Ref, key awskms.ARN, replicaRegions ...string) kms.Provider
}

// Config configures a Kind.
type Config struct {
	// Client calls AWS KMS. Required.
	Client Client
	// Region is the service's own region; DRRegions maps a region to its
	// disaster-recovery region (see DRRegion).
	Region    string
	DRRegions map[string]string
	// AllowSingleRegion lets tenants register keys that are not
	// multi-region keys (no DR replica). Off by default.
	AllowSingleRegion bool
	// RegionHealth, if set, tells whether a region answers now or its
	// calls fail over to replicas (an *awskms.Client's RegionHealth), for
	// Failover.
	RegionHealth func(region string) (healthy bool, since time.Time)
	// Now is the clock of the checks' times; default time.Now.
	Now func() time.Time
}

// Kind is the AWS KMS kind.
type Kind struct {
	cfg Config
}

var (
	_ keyprovider.Kind             = (*Kind)(nil)
	_ keyprovider.Tester           = (*Kind)(nil)
	_ keyprovider.Inspector        = (*Kind)(nil)
	_ keyprovider.FailoverReporter = (*Kind)(nil)
	_ keyprovider.HomeReporter     = (*Kind)(nil)
)

// New returns the AWS kind.
func New(cfg Config) (*Kind, error) {
	if cfg.Client == nil {
		return nil, errors.New("awskind: Client is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Kind{cfg: cfg}, nil
}

// Name implements keyprovider.Kind.
func (k *Kind) Name() string { return Name }

// ParseKey implements keyprovider.Kind: the key is an awskms.ARN.
func (k *Kind) ParseKey(s string) (keyprovider.Key, error) {
	arn, err := awskms.ParseARN(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", keyprovider.ErrMalformedARN, err)
	}
	return arn, nil
}

// arnOf returns the target's parsed ARN.
func arnOf(t keyprovider.Target) (awskms.ARN, error) {
	if arn, ok := t.Key.(awskms.ARN); ok {
		return arn, nil
	}
	arn, err := awskms.ParseARN(t.ARN)
	if err != nil {
		return awskms.ARN{}, fmt.Errorf("awskind: stored ARN of %s: %w", t.Fingerprint, err)
	}
	return arn, nil
}

// DRRegion is the disaster-recovery region of a key whose home is
// keyRegion: what drs maps keyRegion to, else what it maps the service's
// own region to; "" when there is none or it is keyRegion itself.
func DRRegion(drs map[string]string, serviceRegion, keyRegion string) string {
	dr := drs[keyRegion]
	if dr == "" {
		dr = drs[serviceRegion]
	}
	if dr == keyRegion {
		return ""
	}
	return dr
}

func (k *Kind) drRegion(arn awskms.ARN) string {
	return DRRegion(k.cfg.DRRegions, k.cfg.Region, arn.Region)
}

// Open implements keyprovider.Kind: a multi-region key fails over to its
// replica in the DR region.
func (k *Kind) Open(_ context.Context, t keyprovider.Target, ref kms.Ref) (kms.Provider, error) {
	arn, err := arnOf(t)
	if err != nil {
		return nil, err
	}
	var replicas []string
	if dr := k.drRegion(arn); dr != "" && (t.MultiRegion || arn.MultiRegion()) {
		replicas = append(replicas, dr)
	}
	return k.cfg.Client.Provider(ref, arn, replicas...), nil
}

// Home implements keyprovider.HomeReporter: the key's own region.
func (k *Kind) Home(t keyprovider.Target) string {
	arn, err := arnOf(t)
	if err != nil {
		return ""
	}
	return arn.Region
}

// Failover implements keyprovider.FailoverReporter.
func (k *Kind) Failover(t keyprovider.Target) keyprovider.Failover {
	arn, err := arnOf(t)
	if err != nil || !t.MultiRegion || k.cfg.RegionHealth == nil {
		return keyprovider.Failover{}
	}
	dr := k.drRegion(arn)
	if dr == "" {
		return keyprovider.Failover{}
	}
	healthy, since := k.cfg.RegionHealth(arn.Region)
	return keyprovider.Failover{Active: !healthy, From: arn.Region, To: dr, Since: since}
}

// SameKey implements keyprovider.KeyComparer: replicas of a multi-region
// key are one key.
func (k *Kind) SameKey(a, b keyprovider.Key) bool {
	x, ok1 := a.(awskms.ARN)
	y, ok2 := b.(awskms.ARN)
	return ok1 && ok2 && (x == y || x.MultiRegion() && x.KeyID == y.KeyID)
}
