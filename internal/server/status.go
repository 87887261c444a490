package server

import (
	"context"
	"net/http"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/fips"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
)

// status reports the tenant's encryption status. It works in every
// lifecycle state: it is how the admins of a refused tenant learn why.
func (s *Server) status(w http.ResponseWriter, r *http.Request) error {
	tenantID := principalFrom(r).TenantID
	st, err := s.cfg.Keyring.TenantStatus(r.Context(), tenantID)
	if err != nil {
		return err
	}
	var checks []lifecycle.KeyCheck
	if !kms.IsInternalText(st.Tenant.Provider) && s.cfg.Lifecycle != nil {
		if checks, err = s.keyChecks(r.Context(), st.Tenant); err != nil {
			return err
		}
		if len(checks) > 0 {
			// The check may have moved the tenant; report what it decided.
			if t, err := s.cfg.Keyring.Tenant(r.Context(), tenantID); err == nil {
				st.Tenant = t
			}
		}
	}
	t := st.Tenant
	out := api.EncryptionStatus{
		TenantID:        tenantID,
		State:           t.State.String(),
		StateReason:     t.StateReason,
		KeyState:        st.Key.State.String(),
		RevocationBound: s.cfg.RevocationBound.String(),
		CipherKeys:      st.CipherKeys,
		FIPS140:         fips.Mode(),
	}
	if !t.StateChangedAt.IsZero() {
		at := t.StateChangedAt
		out.StateChangedAt = &at
	}
	if kms.IsInternalText(t.Provider) {
		out.Provider = api.StatusProvider{KeyProvider: "Qlik", ARN: api.DefaultProviderARN, ARNFingerPrint: tenantID, Prefix: st.Prefix}
		if st.KeyErr != nil {
			out.KeyState = toHTTPError(st.KeyErr).title
		}
	} else {
		fp, _ := kms.FingerprintOfText(t.Provider)
		out.Provider = api.StatusProvider{KeyProvider: keyprovider.DefaultKind, ARNFingerPrint: fp, Prefix: st.Prefix}
		if s.cfg.KeyProviders != nil {
			if p, err := s.cfg.KeyProviders.Get(r.Context(), tenantID, fp); err == nil {
				out.Provider.ARN, out.Provider.KeyProvider = p.ARN, p.Kind
				compliant, why := p.DRCompliant, api.ComplianceError(p.Compliance)
				out.DRCompliant, out.ComplianceError = &compliant, &why
			}
		}
		describeChecks(&out, checks)
		if s.cfg.Lifecycle != nil {
			out.KeyCheckInterval = s.cfg.Lifecycle.Interval().String()
			f, err := s.cfg.Lifecycle.Failover(r.Context(), t)
			if err != nil {
				return err
			}
			if f.Active {
				out.Failover = &api.Failover{From: f.From, To: f.To, Since: f.Since}
				if out.Degraded {
					out.DegradedReason = "AWS KMS in " + f.From + " is unreachable; the key's calls fail over to its replica in " + f.To + " until it is back"
				}
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// keyChecks returns the stored checks of the tenant's current key, checking
// it now if it never was (a key just registered, or a fresh migration).
func (s *Server) keyChecks(ctx context.Context, t keyring.Tenant) ([]lifecycle.KeyCheck, error) {
	checks, err := s.cfg.Lifecycle.KeyChecks(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	if len(checks) > 0 && checks[0].Provider == t.Provider || t.State == keyring.StateDestroyed {
		return checks, nil
	}
	if fresh, err := s.cfg.Lifecycle.Check(ctx, t.ID); err == nil {
		return fresh, nil
	} else if ctx.Err() != nil {
		return nil, err
	}
	return nil, nil // the status says "Unknown" until the monitor's next check
}

// describeChecks fills the status's key state, last check and degradation
// from the checks, the key's own region (the first) deciding.
func describeChecks(out *api.EncryptionStatus, checks []lifecycle.KeyCheck) {
	out.KeyState = "Unknown"
	if len(checks) == 0 {
		return
	}
	home := checks[0]
	last := apiKeyCheck(home)
	for _, c := range checks {
		last.Regions = append(last.Regions, apiKeyCheck(c))
	}
	out.LastCheck = &last
	if home.KeyState != "" {
		out.KeyState = home.KeyState
	}
	switch home.Result {
	case lifecycle.ResultThrottled, lifecycle.ResultUnavailable, lifecycle.ResultError:
		if out.State == keyring.StateActive.String() {
			out.Degraded = true
			out.DegradedReason = home.Detail + "; cached data keys serve until their TTL, then requests that need the KMS fail with 503 and Retry-After"
		}
	}
}

func apiKeyCheck(c lifecycle.KeyCheck) api.KeyCheck {
	return api.KeyCheck{Time: c.CheckedAt, Result: c.Result, Region: c.Region, ARN: c.KeyARN, KeyState: c.KeyState, Detail: c.Detail}
}
