package awskind

import (
	"context"
	"errors"
	"fmt"

	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/awskms"
)

// Test implements keyprovider.Tester: it describes the key and probes the
// required actions in its region and the DR region, filling t's
// multi-region and compliance fields. With strict (registration), a key
// that cannot serve is refused; without (test), what is wrong is recorded
// as the compliance error.
func (k *Kind) Test(ctx context.Context, t *keyprovider.Target, strict bool) error {
	arn, err := arnOf(*t)
	if err != nil {
		return err
	}
	p := &t.Provider
	ctx = kms.WithTenant(ctx, p.TenantID)
	desc, err := k.cfg.Client.DescribeKey(ctx, arn)
	if err != nil {
		if strict || !errors.Is(err, kms.ErrAccessDenied) && !errors.Is(err, kms.ErrKeyNotFound) {
			if errors.Is(err, kms.ErrKeyNotFound) {
				return &keyprovider.RefusedError{Reason: fmt.Sprintf("no key %s exists in %s, or this service may not see it", arn.KeyID, arn.Region)}
			}
			return err
		}
		p.DRCompliant = false
		p.Compliance = keyprovider.ComplianceError{Code: keyprovider.CodeNotCompliant, Region: arn.Region, Message: "DescribeKey failed: " + kms.Outcome(err)}
		return nil
	}
	if problem := unusable(desc); problem != "" {
		if strict {
			return &keyprovider.RefusedError{Reason: problem}
		}
		p.DRCompliant = false
		p.Compliance = keyprovider.ComplianceError{Code: keyprovider.CodeNotCompliant, Region: arn.Region, Message: problem}
		return nil
	}
	p.MultiRegion = desc.MultiRegion || arn.MultiRegion()
	if strict && !p.MultiRegion && !k.cfg.AllowSingleRegion {
		return &keyprovider.RefusedError{Reason: "the key is not a multi-region key: create a multi-region key (mrk-) with a replica in the DR region, or ask the operator to allow single-region keys"}
	}
	p.Replicas = p.Replicas[:0]
	for _, r := range desc.Replicas {
		p.Replicas = append(p.Replicas, keyprovider.Replica{ARN: r.ARN, Region: r.Region})
	}
	dr := k.drRegion(arn)
	if p.MultiRegion && dr != "" && !hasReplica(p.Replicas, dr) {
		// DescribeKey may not list replicas (local-kms, a policy without
		// kms:DescribeKey on the replica): the probe below decides.
		p.Replicas = append(p.Replicas, keyprovider.Replica{ARN: arn.InRegion(dr).String(), Region: dr})
	}
	b := kms.Binding{kms.BindingTenant: p.TenantID, kms.BindingKeyID: "registration-probe"}
	p.Compliance = keyprovider.ComplianceError{}
	for _, r := range k.cfg.Client.Probe(ctx, arn, arn.Region, b) {
		if r.Err != nil {
			if strict {
				if errors.Is(r.Err, kms.ErrAccessDenied) {
					return fmt.Errorf("%s refused in %s: %w", r.Action, r.Region, r.Err)
				}
				return r.Err
			}
			p.Compliance = keyprovider.ComplianceError{Code: keyprovider.CodeNotCompliant, Region: r.Region, Message: fmt.Sprintf("the key policy or state refuses %s in %s (%s)", r.Action, r.Region, kms.Outcome(r.Err))}
			p.DRCompliant = false
			return nil
		}
	}
	p.DRCompliant = false
	switch {
	case dr == "":
		p.Compliance = keyprovider.ComplianceError{Code: keyprovider.CodeNotCompliant, Region: arn.Region, Message: "no DR region is configured for " + arn.Region}
	case !p.MultiRegion:
		p.Compliance = keyprovider.ComplianceError{Code: keyprovider.CodeNotCompliant, Region: dr, Message: "the key is not a multi-region key: it has no replica in " + dr}
	default:
		for _, r := range k.cfg.Client.Probe(ctx, arn.InRegion(dr), dr, b) {
			if r.Err != nil {
				p.Compliance = keyprovider.ComplianceError{Code: keyprovider.CodeNotCompliant, Region: dr, Message: fmt.Sprintf("the key policy or state refuses %s in %s (%s)", r.Action, dr, kms.Outcome(r.Err))}
				return nil
			}
		}
		p.DRCompliant = true
	}
	return nil
}

func hasReplica(rs []keyprovider.Replica, region string) bool {
	for _, r := range rs {
		if r.Region == region {
			return true
		}
	}
	return false
}

// unusable says why a key cannot wrap tenant keys, or "" if it can.
func unusable(d awskms.KeyDescription) string {
	switch {
	case d.Spec != "" && d.Spec != "SYMMETRIC_DEFAULT":
		return fmt.Sprintf("the key is asymmetric or not for encryption (%s): register a symmetric SYMMETRIC_DEFAULT key", d.Spec)
	case d.Usage != "" && d.Usage != "ENCRYPT_DECRYPT":
		return fmt.Sprintf("the key's usage is %s: register an ENCRYPT_DECRYPT key", d.Usage)
	case d.State != kms.KeyEnabled:
		return fmt.Sprintf("the key is not enabled (%s): enable it in AWS KMS first", d.State)
	}
	return ""
}
