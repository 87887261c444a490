package server

import (
	"net/http"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
)

func (s *Server) status(w http.ResponseWriter, r *http.Request) error {
	tenantID := principalFrom(r).TenantID
	st, err := s.cfg.Keyring.TenantStatus(r.Context(), tenantID)
	if err != nil {
		return err
	}
	out := api.EncryptionStatus{
		TenantID:        tenantID,
		State:           st.Tenant.State.String(),
		KeyState:        st.Key.State.String(),
		RevocationBound: s.cfg.RevocationBound.String(),
		CipherKeys:      st.CipherKeys,
	}
	if st.Tenant.Provider == keyring.InternalProvider {
		out.Provider = api.StatusProvider{KeyProvider: "Qlik", ARN: api.DefaultProviderARN, ARNFingerPrint: tenantID, Prefix: st.Prefix}
	} else {
		fp, _ := keyprovider.FingerprintOf(st.Tenant.Provider)
		out.Provider = api.StatusProvider{KeyProvider: "AWS-KMS", ARNFingerPrint: fp, Prefix: st.Prefix}
		if s.cfg.KeyProviders != nil {
			if p, err := s.cfg.KeyProviders.Get(r.Context(), tenantID, fp); err == nil {
				out.Provider.ARN = p.ARN
			}
		}
	}
	if st.KeyErr != nil {
		out.KeyState = toHTTPError(st.KeyErr).title
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
