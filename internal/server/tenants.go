package server

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
)

func tenantJSON(t keyring.Tenant) api.Tenant {
	out := api.Tenant{
		ID: t.ID, Name: t.Name, Edition: t.Edition.String(), HIPAA: t.HIPAA, State: t.State.String(),
		Provider: t.Provider.String(), CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
	}
	if t.Quota != (keyring.Quota{}) {
		out.Quota = &api.Quota{Rate: t.Quota.Rate, Burst: t.Quota.Burst}
	}
	return out
}

func quotaOf(q *api.Quota) *keyring.Quota {
	if q == nil {
		return nil
	}
	return &keyring.Quota{Rate: q.Rate, Burst: q.Burst}
}

func parseEdition(s string) (keyring.Edition, error) {
	e, err := keyring.ParseEdition(s)
	if err != nil {
		return 0, badRequest(`field "edition" must be "enterprise" or "business"`, map[string]any{"field": "edition"})
	}
	return e, nil
}

func (s *Server) createTenant(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var req api.CreateTenantRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	ed, err := parseEdition(req.Edition)
	if err != nil {
		return err
	}
	spec := keyring.TenantSpec{ID: req.ID, Name: req.Name, Edition: ed, HIPAA: req.HIPAA}
	if q := quotaOf(req.Quota); q != nil {
		spec.Quota = *q
	}
	t, err := s.cfg.Keyring.CreateTenant(r.Context(), spec)
	if err != nil {
		return err
	}
	w.Header().Set("Location", api.RouteTenant.Expand(t.ID))
	writeJSON(w, http.StatusCreated, tenantJSON(t))
	return nil
}

func (s *Server) getTenant(w http.ResponseWriter, r *http.Request) error {
	t, err := s.cfg.Keyring.Tenant(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tenantJSON(t))
	return nil
}

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return badRequest(`parameter "limit" must be a number from 1 to 1000`, map[string]any{"parameter": "limit"})
		}
		limit = n
	}
	ts, err := s.cfg.Keyring.ListTenants(r.Context(), q.Get("after"), limit)
	if err != nil {
		return err
	}
	out := api.TenantList{Data: make([]api.Tenant, 0, len(ts))}
	for _, t := range ts {
		out.Data = append(out.Data, tenantJSON(t))
	}
	if len(ts) == limit {
		out.Links.Next = api.RouteListTenants.Path + "?limit=" + strconv.Itoa(limit) + "&after=" + url.QueryEscape(ts[len(ts)-1].ID)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) updateTenant(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var req api.UpdateTenantRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	u := keyring.TenantUpdate{Name: req.Name, HIPAA: req.HIPAA, Quota: quotaOf(req.Quota)}
	if req.Edition != nil {
		ed, err := parseEdition(*req.Edition)
		if err != nil {
			return err
		}
		u.Edition = &ed
	}
	t, err := s.cfg.Keyring.UpdateTenant(r.Context(), r.PathValue("id"), u)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tenantJSON(t))
	return nil
}

func (s *Server) deleteTenant(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Keyring.DeleteTenant(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
