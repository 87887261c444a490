package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/audit"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	principalKey
)

// requestIDFrom returns the request's id, set by the requestID middleware.
func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// principalFrom returns the authenticated caller; routes with roles always
// have one.
func principalFrom(r *http.Request) auth.Principal {
	p, _ := r.Context().Value(principalKey).(auth.Principal)
	return p
}

// requestID gives every request an id: the caller's X-Request-Id when it is
// a sane token, else a fresh one. It is echoed in the response and logged.
func (s *Server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

func validRequestID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}

// recoverer turns a panic into a 500 in the error envelope; the stack goes
// to the server log only, never to the client.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.ErrorContext(r.Context(), "panic serving request",
					"request_id", requestIDFrom(r.Context()), "panic", fmt.Sprintf("%T", v), "stack", string(debug.Stack()))
				s.writeError(w, r, errInternal)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// wrap adds to one route: authentication and role checks, the body limit,
// no-store caching, metrics and the request log.
func (s *Server) wrap(rt Route) http.Handler {
	label := rt.Method + " " + rt.Path
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r, endSpan := s.traceRequest(r, label, rt.Method, rt.Path)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		sw := &statusWriter{ResponseWriter: w}
		// A body announced too large is refused before anything else.
		err := s.bodyLimits(sw, r)
		if err == nil {
			r, err = s.authorize(rt, r)
		}
		if err == nil {
			err = s.limit(rt, r)
		}
		audited := s.cfg.Audit != nil
		if err == nil {
			switch {
			case audited && isAdminAction(rt):
				err = s.audited(rt, sw, r)
			case audited && isDataPlane(rt) && s.cfg.Audit.PerRequest() && s.cfg.Audit.Ready() != nil:
				// Every request is an event: none goes unrecorded.
				err = errAuditUnavailable(false)
			default:
				err = rt.h(sw, r)
			}
		} else if audited && isAdminAction(rt) && toHTTPError(err).status == http.StatusForbidden {
			s.recordDenied(rt, r)
		}
		if err != nil {
			s.writeError(sw, r, err)
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		if audited && isDataPlane(rt) {
			sw.status = status
			s.countUse(rt, r, sw, err)
		}
		elapsed := time.Since(start)
		s.metrics.observe(label, status, elapsed)
		s.logRequest(r, label, status, elapsed, err)
		endSpan(status)
	})
}

// authorize verifies the bearer token of a route with roles and checks that
// the principal holds one of them (the verifier has already refused a tenant
// role without a tenant). It returns the request carrying the principal.
func (s *Server) authorize(rt Route, r *http.Request) (*http.Request, error) {
	if len(rt.Roles) == 0 {
		return r, nil
	}
	token, err := auth.BearerToken(r)
	if err != nil {
		return r, err
	}
	p, err := s.cfg.Auth.Verify(r.Context(), token)
	if err != nil {
		return r, err
	}
	r = r.WithContext(context.WithValue(r.Context(), principalKey, p))
	if !slices.ContainsFunc(rt.Roles, p.Has) {
		return r, forbidden(fmt.Sprintf("this operation needs the role %s", rolesText(rt.Roles)))
	}
	return r, nil
}

// limit applies the key-provider API's per-tenant rate limits.
func (s *Server) limit(rt Route, r *http.Request) error {
	var l *rateLimiter
	switch rt.tier {
	case readTier:
		l = s.reads
	case writeTier:
		l = s.writes
	default:
		return nil
	}
	if ok, retry := l.allow(principalFrom(r).TenantID); !ok {
		return rateLimited(retry)
	}
	return nil
}

func rolesText(roles []auth.Role) string {
	s := ""
	for i, r := range roles {
		if i > 0 {
			s += " or "
		}
		s += r.String()
	}
	return s
}

func (s *Server) logRequest(r *http.Request, route string, status int, elapsed time.Duration, err error) {
	level := slog.LevelDebug
	switch {
	case status >= 500:
		level = slog.LevelError
	case status >= 400:
		level = slog.LevelInfo
	}
	if !s.log.Enabled(r.Context(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", requestIDFrom(r.Context())),
		slog.String("route", route),
		slog.Int("status", status),
		// Milliseconds with a unit in the name: slog's JSON handler would
		// write a Duration as bare integer nanoseconds.
		slog.Float64("elapsed_ms", float64(elapsed.Microseconds())/1000),
		slog.String("remote", r.RemoteAddr),
	}
	if p, ok := r.Context().Value(principalKey).(auth.Principal); ok {
		attrs = append(attrs, slog.String("subject", p.Subject), slog.String("tenant", p.TenantID))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	if traceID, spanID, ok := traceAttrs(r); ok {
		attrs = append(attrs, slog.String("trace_id", traceID), slog.String("span_id", spanID))
	}
	s.log.LogAttrs(r.Context(), level, "request", attrs...)
}

// statusWriter remembers the status written and, for the audit log, a
// batch's items by outcome.
type statusWriter struct {
	http.ResponseWriter
	status int
	// items counts a batch's items by outcome (countItem); empty for a
	// single request. one is a single request's outcome, without an
	// allocation.
	items []audit.Outcome
	one   [1]audit.Outcome
}

// countItems counts n items of a request by their error code (empty for
// a success).
func (w *statusWriter) countItems(code api.Code, n int) {
	for i := range w.items {
		if w.items[i].ErrorCode == string(code) {
			w.items[i].Items += n
			return
		}
	}
	w.items = append(w.items, audit.Outcome{ErrorCode: string(code), Items: n})
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
