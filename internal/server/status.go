package server

import (
	"net/http"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/fips"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
	"github.com/tenantcrypt/tenantcrypt/internal/tenantstatus"
)

// status reports the tenant's encryption status. It works in every
// lifecycle state: it is how the admins of a refused tenant learn why.
func (s *Server) status(w http.ResponseWriter, r *http.Request) error {
	tenantID := principalFrom(r).TenantID
	rep, err := s.tenantStatus.Report(r.Context(), tenantID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.statusJSON(tenantID, rep))
	return nil
}

func (s *Server) statusJSON(tenantID string, rep tenantstatus.Report) api.EncryptionStatus {
	t := rep.Tenant
	out := api.EncryptionStatus{
		TenantID:        tenantID,
		State:           t.State.String(),
		StateReason:     t.StateReason,
		KeyState:        string(rep.KeyState),
		RevocationBound: s.cfg.RevocationBound.String(),
		CipherKeys:      cipherKeyCounts(rep.CipherKeys),
		FIPS140:         fips.Mode(),
	}
	if !t.StateChangedAt.IsZero() {
		at := t.StateChangedAt
		out.StateChangedAt = &at
	}
	cmk := rep.CMK
	if cmk == nil {
		out.Provider = api.StatusProvider{KeyProvider: "Qlik", ARN: api.DefaultProviderARN, ARNFingerPrint: tenantID, Prefix: rep.Prefix}
		return out
	}
	out.Provider = api.StatusProvider{KeyProvider: keyprovider.DefaultKind, ARNFingerPrint: cmk.Fingerprint, Prefix: rep.Prefix}
	if p := cmk.Provider; p != nil {
		out.Provider.ARN, out.Provider.KeyProvider = p.ARN, p.Kind
		compliant, why := p.DRCompliant, api.ComplianceError(p.Compliance)
		out.DRCompliant, out.ComplianceError = &compliant, &why
	}
	if len(cmk.Checks) > 0 {
		last := apiKeyCheck(cmk.Checks[0])
		for _, c := range cmk.Checks {
			last.Regions = append(last.Regions, apiKeyCheck(c))
		}
		out.LastCheck = &last
	}
	out.Degraded, out.DegradedReason = cmk.Degraded, cmk.DegradedReason
	if cmk.CheckInterval > 0 {
		out.KeyCheckInterval = cmk.CheckInterval.String()
	}
	if f := cmk.Failover; f.Active {
		out.Failover = &api.Failover{From: f.From, To: f.To, Since: f.Since}
	}
	return out
}

func apiKeyCheck(c lifecycle.KeyCheck) api.KeyCheck {
	return api.KeyCheck{Time: c.CheckedAt, Result: c.Result, Region: c.Region, ARN: c.KeyARN, KeyState: c.KeyState, Detail: c.Detail}
}

// cipherKeyCounts keys the counts by the providers' text form, as the API
// shows them (nil stays nil).
func cipherKeyCounts(counts map[kms.Ref]int) map[string]int {
	if counts == nil {
		return nil
	}
	out := make(map[string]int, len(counts))
	for ref, n := range counts {
		out[ref.String()] = n
	}
	return out
}
