package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/audit"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
)

// Auditor is what the API needs of the audit log (an *audit.Log).
type Auditor interface {
	Ready() error
	RecordSync(ctx context.Context, e audit.Event) error
	Record(e audit.Event) error
	DataPlane(u audit.Use) error
	PerRequest() bool
}

// AuditReader reads and verifies the audit log (the store and the
// signer's published keys).
type AuditReader struct {
	Store      audit.Store
	PublicKeys func() []audit.PublicKey
}

// errAuditUnavailable answers an admin action whose audit event cannot be
// written: refused before it was carried out, or (acted) carried out but
// not recorded in time.
func errAuditUnavailable(acted bool) *requestError {
	if acted {
		return &requestError{kind: kindAuditLate}
	}
	return &requestError{kind: kindAuditRefused}
}

// isAdminAction reports whether a route changes something on behalf of an
// admin: those are audited one event each, synchronously, and refused when
// the audit log cannot be written.
func isAdminAction(rt Route) bool {
	if rt.Method == http.MethodGet || len(rt.Roles) == 0 {
		return false
	}
	for _, role := range rt.Roles {
		if role != auth.RolePlatformAdmin && role != auth.RoleTenantAdmin {
			return false
		}
	}
	return true
}

// isDataPlane reports whether a route is a data-plane operation.
func isDataPlane(rt Route) bool {
	return rt.Method == http.MethodPost && strings.HasPrefix(rt.Path, "/api/v1/encryption/") &&
		len(rt.Roles) == 1 && rt.Roles[0] == auth.RoleService
}

// dataPlaneOp names a data-plane route's operation: "encrypt",
// "datakeys.decrypt", ...
func dataPlaneOp(rt Route) string {
	return strings.ReplaceAll(strings.TrimPrefix(rt.Path, "/api/v1/encryption/"), "/", ".")
}

// adminAction names an admin route's action: "tenant.create",
// "keyprovider.migrate", "internalkms.rotate-root-key", ...
func adminAction(rt Route) string {
	path := strings.TrimPrefix(rt.Path, "/api/v1/")
	var parts []string
	for _, seg := range strings.Split(path, "/") {
		if seg == "" || seg == "actions" || seg == "encryption" || strings.HasPrefix(seg, "{") {
			continue
		}
		parts = append(parts, seg)
	}
	noun := "unknown"
	if len(parts) > 0 {
		noun = parts[0]
		if n, ok := auditNouns[noun]; ok {
			noun = n
		}
	}
	if len(parts) > 1 {
		return noun + "." + parts[len(parts)-1]
	}
	switch rt.Method {
	case http.MethodPost:
		if noun == "keyprovider" {
			return noun + ".register"
		}
		return noun + ".create"
	case http.MethodPatch:
		return noun + ".update"
	case http.MethodDelete:
		return noun + ".delete"
	}
	return noun + "." + strings.ToLower(rt.Method)
}

// auditNouns are the action prefixes of the API's collections.
var auditNouns = map[string]string{"tenants": "tenant", "keyproviders": "keyprovider", "internal-kms": "internalkms", "audits": "audit"}

// bufferedWriter holds an admin action's answer until its audit event is
// written, so that a failure to audit can still change the answer.
type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header { return b.header }
func (b *bufferedWriter) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}
func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedWriter) sendTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	if b.status != 0 {
		w.WriteHeader(b.status)
	}
	_, _ = w.Write(b.body.Bytes())
}

// audited runs an admin action: refused if the audit log is not writable;
// else carried out, then its event written before the answer goes out.
func (s *Server) audited(rt Route, w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Audit.Ready(); err != nil {
		return errAuditUnavailable(false)
	}
	buf := &bufferedWriter{header: http.Header{}}
	err := rt.h(buf, r)
	e := s.event(r, adminAction(rt))
	switch {
	case err != nil:
		he := toHTTPError(err)
		e.Result, e.ErrorCode = "failure", string(he.code)
		if he.status == http.StatusForbidden {
			e.Result = "denied"
		}
		e.Details = map[string]string{"status": strconv.Itoa(he.status)}
		if errors.Is(err, keyring.ErrTenantNotFound) || errors.Is(err, keyring.ErrTenantRetired) {
			// No such tenant: its name must not start a chain (a tenant
			// created later under that name would inherit the events),
			// nor reach a deleted tenant's. The platform's chain keeps it.
			e.ChainID = audit.PlatformChain
		}
	default:
		e.Details = map[string]string{"status": strconv.Itoa(max(buf.status, 200))}
		s.describeOutcome(&e, rt, r, buf)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if aerr := s.cfg.Audit.RecordSync(ctx, e); aerr != nil {
		s.log.ErrorContext(r.Context(), "writing an admin action's audit event failed", "request_id", requestIDFrom(r.Context()),
			"action", e.Action, "error", aerr.Error())
		return errAuditUnavailable(err == nil)
	}
	if err != nil {
		return err
	}
	buf.sendTo(w)
	return nil
}

// describeOutcome fills an admin event's tenant, target and details from
// the request and, for creations, the answer.
func (s *Server) describeOutcome(e *audit.Event, rt Route, r *http.Request, buf *bufferedWriter) {
	var body map[string]any
	if strings.HasPrefix(buf.header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(buf.body.Bytes(), &body)
	}
	str := func(k string) string { v, _ := body[k].(string); return v }
	switch {
	case e.Action == "tenant.create":
		e.TenantID, e.Target = str("id"), str("id")
	case e.Action == "keyprovider.register":
		e.Target = str("arnFingerPrint")
		e.Details["arn"] = str("arn")
	case strings.HasPrefix(e.Action, "keyprovider.") && str("migratingTo") != "":
		e.Details["from"], e.Details["to"] = str("migratingFrom"), str("migratingTo")
	}
	e.ChainID = e.TenantID
}

// event is an audit event of r by its principal, with the tenant and the
// target the path names.
func (s *Server) event(r *http.Request, action string) audit.Event {
	p := principalFrom(r)
	e := audit.Event{
		TenantID: p.TenantID, Principal: p.Subject, TokenID: p.TokenID,
		SourceAddr: sourceAddr(r), RequestID: requestIDFrom(r.Context()), Action: action,
	}
	if id := r.PathValue("id"); id != "" {
		e.TenantID, e.Target = id, id // platform admins act on the tenant in the path
	}
	if fp := r.PathValue("fp"); fp != "" {
		e.Target = fp
	}
	e.ChainID = e.TenantID
	return e
}

func sourceAddr(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// countUse records a data-plane request in the audit log: a batch item by
// item, as its handler counted them in sw, else the request as one item.
func (s *Server) countUse(rt Route, r *http.Request, sw *statusWriter, err error) {
	p := principalFrom(r)
	if p.TenantID == "" {
		return // not authenticated: not a use of any tenant's keys
	}
	u := audit.Use{TenantID: p.TenantID, Principal: p.Subject, TokenID: p.TokenID, SourceAddr: sourceAddr(r),
		RequestID: requestIDFrom(r.Context()), Operation: dataPlaneOp(rt), Outcomes: sw.items}
	if len(u.Outcomes) == 0 {
		code := ""
		switch {
		case err != nil:
			code = string(toHTTPError(err).code)
		case sw.status >= 400:
			code = "HTTP-" + strconv.Itoa(sw.status)
		}
		sw.one[0] = audit.Outcome{ErrorCode: code, Items: 1}
		u.Outcomes = sw.one[:]
	}
	if errors.Is(err, keyring.ErrTenantNotFound) {
		u.ChainID = audit.PlatformChain // no such tenant: start no chain of its name
	}
	if aerr := s.cfg.Audit.DataPlane(u); aerr != nil {
		s.log.ErrorContext(r.Context(), "the audit queue is full; a data-plane request went unrecorded", "request_id", u.RequestID)
	}
}

// recordDenied audits an admin route refused for the caller's role, in
// the caller's own tenant's chain (the platform's for a caller without a
// tenant): a tenant's chain holds what was done with that tenant's
// credentials, and nobody writes into another tenant's by being refused.
func (s *Server) recordDenied(rt Route, r *http.Request) {
	e := s.event(r, adminAction(rt))
	e.TenantID = principalFrom(r).TenantID
	e.ChainID = e.TenantID
	if e.ChainID != "" {
		// Only an existing tenant's chain: a token of a tenant that does
		// not exist (deleted, or not created yet) must not start a chain
		// that a tenant of that name would inherit.
		if _, err := s.cfg.Keyring.Tenant(r.Context(), e.ChainID); err != nil {
			e.ChainID = ""
		}
	}
	if e.ChainID == "" {
		e.ChainID = audit.PlatformChain
	}
	e.Result, e.ErrorCode = "denied", string(api.CodeForbidden)
	if err := s.cfg.Audit.Record(e); err != nil {
		s.log.ErrorContext(r.Context(), "the audit queue is full; a denied admin action went unrecorded", "request_id", e.RequestID)
	}
}
