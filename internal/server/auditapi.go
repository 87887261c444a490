package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/audit"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
)

var auditReaders = []auth.Role{auth.RoleTenantAdmin, auth.RolePlatformAdmin}

// auditRoutes are the audit API's routes; without an audit log (a server
// built for a test) they answer 404.
func (s *Server) auditRoutes() []Route {
	return []Route{
		{api.RouteAuditEvents, auditReaders, s.withAuditLog(s.listAudits), unlimited},
		{api.RouteExportAudit, auditReaders, s.withAuditLog(s.exportAudits), unlimited},
		{api.RouteVerifyAudit, auditReaders, s.withAuditLog(s.verifyAudits), unlimited},
		{api.RouteAuditPublicKeys, nil, s.withAuditLog(s.auditPublicKeys), unlimited},
	}
}

func (s *Server) withAuditLog(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.cfg.AuditLog == nil {
			return errRouteNotFound
		}
		return h(w, r)
	}
}

// auditChain is the chain a request reads: a tenant admin's own tenant's,
// while the tenant exists (a deleted tenant's credentials read nothing);
// a platform admin names one with ?tenantId= (or "_platform").
func (s *Server) auditChain(r *http.Request) (string, error) {
	p := principalFrom(r)
	q := r.URL.Query().Get("tenantId")
	if p.Has(auth.RoleTenantAdmin) && !p.Has(auth.RolePlatformAdmin) {
		if q != "" && q != p.TenantID {
			return "", forbidden("a tenant admin reads only its own tenant's audit log")
		}
		if _, err := s.cfg.Keyring.Tenant(r.Context(), p.TenantID); err != nil {
			return "", err
		}
		return p.TenantID, nil
	}
	if q == "" {
		return "", badRequest(`parameter "tenantId" is required for a platform admin (a tenant id, or "`+audit.PlatformChain+`")`, map[string]any{"parameter": "tenantId"})
	}
	if q != audit.PlatformChain && keyring.ValidateTenantID(q) != nil {
		return "", badRequest(`parameter "tenantId" is not a tenant id`, map[string]any{"parameter": "tenantId"})
	}
	return q, nil
}

func (s *Server) listAudits(w http.ResponseWriter, r *http.Request) error {
	chain, err := s.auditChain(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := audit.Filter{Action: q.Get("action"), Principal: q.Get("principal"), Result: q.Get("result")}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return badRequest(`parameter "limit" must be a number from 1 to 1000`, map[string]any{"parameter": "limit"})
		}
		limit = n
	}
	if v := q.Get("cursor"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return badRequest(`parameter "cursor" must be the "next" of a previous page`, map[string]any{"parameter": "cursor"})
		}
		f.AfterSeq = n
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := q.Get(t.name); v != "" {
			at, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return badRequest(`parameter "`+t.name+`" must be an RFC 3339 time such as 2026-11-28T15:00:00Z`, map[string]any{"parameter": t.name})
			}
			*t.dst = at
		}
	}
	if f.Result != "" && f.Result != "success" && f.Result != "failure" && f.Result != "denied" {
		return badRequest(`parameter "result" must be success, failure or denied`, map[string]any{"parameter": "result"})
	}
	events, err := s.cfg.AuditLog.Store.Events(r.Context(), chain, f, limit)
	if err != nil {
		return &fault.StoreError{Op: "reading the audit log", Err: err}
	}
	out := api.AuditPage{Items: make([]api.AuditEvent, 0, len(events))}
	for _, e := range events {
		out.Items = append(out.Items, audit.ToAPI(e))
	}
	if len(events) == limit {
		out.Next = strconv.FormatInt(events[len(events)-1].Seq, 10)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// exportAudits streams the whole chain, checkpoints first, as JSON Lines.
func (s *Server) exportAudits(w http.ResponseWriter, r *http.Request) error {
	chain, err := s.auditChain(r)
	if err != nil {
		return err
	}
	// Fail before the first byte if the store does not answer.
	if _, err := s.cfg.AuditLog.Store.ChainHead(r.Context(), chain); err != nil {
		return &fault.StoreError{Op: "reading the audit log", Err: err}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Content-Disposition", `attachment; filename="audit-`+chain+`.jsonl"`)
	w.WriteHeader(http.StatusOK)
	if err := audit.Export(r.Context(), s.cfg.AuditLog.Store, chain, time.Now(), w); err != nil {
		// The status is sent; a cut-off export fails its verification.
		s.log.ErrorContext(r.Context(), "exporting the audit log failed midway", "request_id", requestIDFrom(r.Context()), "error", err.Error())
	}
	return nil
}

func (s *Server) verifyAudits(w http.ResponseWriter, r *http.Request) error {
	chain, err := s.auditChain(r)
	if err != nil {
		return err
	}
	keys, err := audit.ParseKeys(s.cfg.AuditLog.PublicKeys())
	if err != nil {
		return err
	}
	rep, err := audit.VerifyStored(r.Context(), s.cfg.AuditLog.Store, chain, keys)
	if err != nil {
		return &fault.StoreError{Op: "reading the audit log", Err: err}
	}
	writeJSON(w, http.StatusOK, audit.ReportToAPI(rep))
	return nil
}

func (s *Server) auditPublicKeys(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, audit.PublicKeysToAPI(s.cfg.AuditLog.PublicKeys()))
	return nil
}
