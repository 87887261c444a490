package server

import (
	"net/http"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
)

// DefaultProviderARN is how the key-provider API names the internal KMS.
const DefaultProviderARN = "#QLIK_MANAGED_KEY_PROVIDER#"

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
		out.Provider = api.StatusProvider{KeyProvider: "Qlik", ARN: DefaultProviderARN, ARNFingerPrint: tenantID, Prefix: st.Prefix}
	} else {
		out.Provider = api.StatusProvider{KeyProvider: "AWS-KMS", ARNFingerPrint: st.Tenant.Provider, Prefix: st.Prefix}
	}
	if st.KeyErr != nil {
		out.KeyState = toHTTPError(st.KeyErr).title
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
