package kmipkind

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/kmip"
)

// Inspect implements keyprovider.Inspector. It reads the key's state with
// Get Attributes (from the first endpoint of the cluster that answers):
// Active is active (with probe, once a data key also wraps and unwraps);
// Pre-Active, and Deactivated or Compromised (revoked, for good), make the
// tenant key-unavailable, as does a refusal of this service (TLS, or the
// key manager's permissions: the customer withdrew access), which lifts
// when calls work again; Destroyed or not found is destroyed. Outages
// change nothing. With two or more endpoints, it also records the
// cluster's DR compliance.
func (k *Kind) Inspect(ctx context.Context, t keyprovider.Target, probe bool) keyprovider.Inspection {
	ctx = kms.WithTenant(ctx, t.TenantID)
	check := keyprovider.Check{Key: t.ARN}
	key, c, err := k.client(t)
	if err != nil {
		check.CheckedAt, check.Result = k.now(), keyprovider.ResultError
		check.Detail = "the registration cannot be used: " + err.Error()
		return keyprovider.Inspection{Checks: []keyprovider.Check{check}}
	}
	defer c.Close()
	check.Place = key.Endpoint
	p := kmip.NewProvider(kms.MustCMKRef(orDefault(t.Fingerprint)), key, c)
	a, err := c.GetAttributes(ctx, key.UID)
	check.CheckedAt = k.now()
	if err == nil {
		check.KeyState = a.State.String()
		if kmip.KeyState(a.State) == kms.KeyDestroyed {
			err = &kms.Error{Op: "GetAttributes", Kind: kms.ErrKeyNotFound, Err: errors.New(kmip.StateDetail(a.State))}
		}
	}
	v := keyprovider.Inspection{}
	switch {
	case err != nil:
		check.Result, check.Detail = keyprovider.ResultOf(err), "GetAttributes: "+detailOf(err)
	case a.State == kmip.StateActive:
		check.Result, check.Detail = keyprovider.ResultOK, "GetAttributes: the key is Active"
		if probe {
			if err := probeKey(ctx, p, t.TenantID); err != nil {
				check.Result, check.Detail = keyprovider.ResultOf(err), "probe (Encrypt, Decrypt): "+detailOf(err)
			}
		}
	default:
		check.Result, check.Detail = keyprovider.ResultDisabled, "GetAttributes: "+kmip.StateDetail(a.State)
	}
	switch check.Result {
	case keyprovider.ResultOK:
		v.Known, v.State = true, keyring.StateActive
	case keyprovider.ResultDisabled, keyprovider.ResultAccessDenied:
		v.Known, v.State, v.Reason = true, keyring.StateKeyUnavailable, check.Detail
	case keyprovider.ResultNotFound:
		v.Known, v.State, v.Reason = true, keyring.StateDestroyed, check.Detail
	}
	v.Checks = []keyprovider.Check{check}
	if s, err := parseConfig(t.Config); err == nil && len(endpoints(key, s)) > 1 && v.Known {
		v.Compliance = drCompliance(ctx, c)
	}
	return v
}

func (k *Kind) now() time.Time { return k.cfg.Now().UTC().Truncate(time.Microsecond) }

func detailOf(err error) string {
	var ee *kmip.EndpointError
	var re *kmip.ResultError
	switch {
	case errors.As(err, &ee) && ee.Refused:
		return fmt.Sprintf("TLS refused the connection to %s: the key manager no longer trusts the client certificate, or its certificate does not verify against the registered server CA; renew them with PATCH /kmip/clientCertificate, /kmip/clientKey or /kmip/serverCA", ee.Endpoint)
	case errors.Is(err, kms.ErrKeyNotFound):
		return "the key does not exist: it was destroyed, or this client certificate may not see it"
	case errors.As(err, &re) && errors.Is(err, kms.ErrAccessDenied):
		return fmt.Sprintf("the key manager refused this service (%v: %s): the customer withdrew the client's permission", re.Reason, re.Message)
	case errors.Is(err, kms.ErrKeyDisabled):
		return err.Error()
	case errors.Is(err, kms.ErrUnavailable):
		return "no KMIP server of the cluster answered; the key's state is unknown until the next check"
	}
	return "the check failed (" + kms.Outcome(err) + ")"
}
