package awskind

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/awskms"
)

// Inspect implements keyprovider.Inspector. It describes the key in its
// own region (whose answer decides the tenant's state), in the DR region
// for a multi-region key (recorded, for DR compliance) and, when AWS names
// a primary key in a third region, there too (a disabled primary revokes
// as well). With probe, a key that answers enabled is probed with real
// calls before the verdict is active, since a key policy can allow
// DescribeKey and deny Decrypt.
func (k *Kind) Inspect(ctx context.Context, t keyprovider.Target, probe bool) keyprovider.Inspection {
	arn, err := arnOf(t)
	if err != nil {
		c := keyprovider.Check{Place: "", Key: t.ARN, CheckedAt: k.now(), Result: keyprovider.ResultError, Detail: "the registered ARN does not parse"}
		return keyprovider.Inspection{Checks: []keyprovider.Check{c}}
	}
	ctx = kms.WithTenant(ctx, t.TenantID)
	dr := k.drRegion(arn)
	var drCheck *keyprovider.Check
	var wg sync.WaitGroup
	if t.MultiRegion && dr != "" {
		wg.Go(func() {
			c, _ := k.describe(ctx, arn.InRegion(dr))
			drCheck = &c
		})
	}
	home, desc := k.describe(ctx, arn)
	v := keyprovider.Inspection{Checks: []keyprovider.Check{home}}
	if p := desc.Primary; p != nil && p.Region != arn.Region && p.Region != dr {
		if parn, err := awskms.ParseARN(p.ARN); err == nil {
			primary, _ := k.describe(ctx, parn)
			v.Checks = append(v.Checks, primary)
			if primary.Result != keyprovider.ResultNotFound && severity(primary.Result) > severity(home.Result) {
				home = primary
			}
		}
	}
	wg.Wait()
	if drCheck != nil {
		v.Checks = append(v.Checks, *drCheck)
	}

	switch home.Result {
	case keyprovider.ResultOK:
		v.Known, v.State = true, keyring.StateActive
		if probe {
			v = k.probe(ctx, t.TenantID, arn, v)
		}
	case keyprovider.ResultDisabled, keyprovider.ResultAccessDenied:
		v.Known, v.State, v.Reason = true, keyring.StateKeyUnavailable, home.Detail
	case keyprovider.ResultPendingDeletion:
		v.Known, v.State, v.Reason = true, keyring.StateLocked, home.Detail
	case keyprovider.ResultNotFound:
		v.Known, v.State, v.Reason = true, keyring.StateDestroyed, home.Detail
	}
	if drCheck != nil {
		v.Compliance = k.compliance(ctx, t, arn, dr, *drCheck)
	}
	return v
}

func (k *Kind) now() time.Time { return k.cfg.Now().UTC().Truncate(time.Microsecond) }

// probe tries the actions the tenant needs before it returns to active.
func (k *Kind) probe(ctx context.Context, tenantID string, arn awskms.ARN, v keyprovider.Inspection) keyprovider.Inspection {
	b := kms.Binding{kms.BindingTenant: tenantID, kms.BindingKeyID: "key-check-probe"}
	for _, r := range k.cfg.Client.Probe(ctx, arn, arn.Region, b) {
		if r.Err == nil {
			continue
		}
		if state, ok := keyring.StateOnUse(r.Err); ok {
			v.State, v.Reason = state, fmt.Sprintf("DescribeKey in %s shows the key enabled, but %s", arn.Region, keyring.KeyRefusal(r.Err))
			return v
		}
		// Not an answer about the key: stay as we are until a probe works.
		v.Known = false
		return v
	}
	return v
}

// compliance is the provider's DR compliance as the DR region's check c
// found it, nil when it says nothing new: a replica that is disabled,
// pending deletion, gone or denied makes the provider non-compliant; once
// it answers enabled again, a probe of every required action there (as a
// test does) makes it compliant again. Outages change nothing.
func (k *Kind) compliance(ctx context.Context, t keyprovider.Target, arn awskms.ARN, dr string, c keyprovider.Check) *keyprovider.Compliance {
	switch c.Result {
	case keyprovider.ResultDisabled, keyprovider.ResultPendingDeletion, keyprovider.ResultNotFound, keyprovider.ResultAccessDenied:
		return &keyprovider.Compliance{Error: keyprovider.ComplianceError{Code: keyprovider.CodeNotCompliant, Region: dr,
			Message: "the replica in the DR region cannot serve a failover: " + c.Detail}}
	case keyprovider.ResultOK:
		if t.DRCompliant || t.Compliance.Region != dr {
			return nil // compliant, or not for a reason of the DR region's
		}
		b := kms.Binding{kms.BindingTenant: t.TenantID, kms.BindingKeyID: "key-check-probe"}
		for _, r := range k.cfg.Client.Probe(ctx, arn.InRegion(dr), dr, b) {
			if r.Err != nil {
				return nil // still refused: the recorded reason stands
			}
		}
		return &keyprovider.Compliance{DRCompliant: true}
	}
	return nil
}

// severity orders results by how much of the tenant they shut off.
func severity(result string) int {
	switch result {
	case keyprovider.ResultNotFound:
		return 4
	case keyprovider.ResultPendingDeletion:
		return 3
	case keyprovider.ResultDisabled, keyprovider.ResultAccessDenied:
		return 2
	case keyprovider.ResultOK:
		return 1
	}
	return 0
}

// describe checks key in its region.
func (k *Kind) describe(ctx context.Context, key awskms.ARN) (keyprovider.Check, awskms.KeyDescription) {
	c := keyprovider.Check{Place: key.Region, Key: key.String()}
	desc, err := k.cfg.Client.DescribeKey(ctx, key)
	c.CheckedAt = k.now()
	if err != nil {
		c.Result = keyprovider.ResultOf(err)
		c.Detail = fmt.Sprintf("DescribeKey in %s: %s", key.Region, describeError(c.Result, err))
		return c, desc
	}
	c.KeyState = desc.AWSState
	switch desc.State {
	case kms.KeyEnabled:
		c.Result = keyprovider.ResultOK
		c.Detail = fmt.Sprintf("DescribeKey in %s: the key is enabled", key.Region)
	case kms.KeyDisabled:
		c.Result = keyprovider.ResultDisabled
		if desc.AWSState == "" || desc.AWSState == "Disabled" {
			c.Detail = fmt.Sprintf("DescribeKey in %s: the key is disabled in the customer's AWS account; its owner must enable it", key.Region)
		} else {
			c.Detail = fmt.Sprintf("DescribeKey in %s: the key cannot be used (AWS key state %s) in the customer's AWS account; its owner must make it usable", key.Region, desc.AWSState)
		}
	case kms.KeyPendingDeletion:
		c.Result = keyprovider.ResultPendingDeletion
		c.Detail = fmt.Sprintf("DescribeKey in %s: the key is scheduled for deletion (%s); its owner must cancel the deletion and enable it", key.Region, awsState(desc))
	default:
		c.Result = keyprovider.ResultError
		c.Detail = fmt.Sprintf("DescribeKey in %s: the key is in state %s, which tenantcrypt does not know", key.Region, awsState(desc))
	}
	return c, desc
}

func awsState(d awskms.KeyDescription) string {
	if d.AWSState != "" {
		return d.AWSState
	}
	return d.State.String()
}

func describeError(result string, err error) string {
	switch result {
	case keyprovider.ResultNotFound:
		return "the key does not exist: it was deleted, or this service cannot see it"
	case keyprovider.ResultAccessDenied:
		return "the key policy or grants deny this service access to the key"
	case keyprovider.ResultThrottled:
		return "AWS KMS throttled the check; the key's state is unknown until the next check"
	case keyprovider.ResultUnavailable:
		return "AWS KMS did not answer; the key's state is unknown until the next check"
	}
	return "the check failed (" + kms.Outcome(err) + ")"
}
