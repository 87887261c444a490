package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
)

// httpError is what a client sees of an error: the row of the error table
// (errortable.go) that answers it, filled from the error. It is not an
// error itself: handlers return domain errors or a *requestError, and
// writeError renders them.
type httpError struct {
	status     int
	code       api.Code
	title      string
	detail     string
	meta       map[string]any
	retryAfter int // seconds; 0 for none
}

// requestError is what the server finds wrong with a request itself (its
// body, path, role or rate) before any domain code runs. Its kind picks
// the row of the error table; detail words the problem for the rows that
// show it, meta points at the field or parameter.
type requestError struct {
	kind       kind
	detail     string
	meta       map[string]any
	retryAfter time.Duration // overrides the row's, if set
}

func (e *requestError) Error() string {
	title := lookup(opOther, e.kind).title
	if e.detail == "" {
		return title
	}
	return title + ": " + e.detail
}

var (
	errRouteNotFound    = &requestError{kind: kindRouteNotFound}
	errMethodNotAllowed = &requestError{kind: kindMethodNotAllowed}
	errInternal         = &requestError{kind: kindUnknown}
)

func badRequest(detail string, meta map[string]any) *requestError {
	return &requestError{kind: kindBadRequest, detail: detail, meta: meta}
}

func forbidden(detail string) *requestError {
	return &requestError{kind: kindForbidden, detail: detail}
}

func (e *httpError) apiError() *api.Error {
	return &api.Error{Code: e.code, Title: e.title, Detail: e.detail, Status: strconv.Itoa(e.status), Meta: e.meta}
}

// writeError renders err in the error envelope; 5xx causes are logged with
// the request id, never sent.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	he := toHTTPError(err)
	if he.status >= 500 {
		s.log.ErrorContext(r.Context(), "request failed", "request_id", requestIDFrom(r.Context()), "error", err.Error())
	}
	if he.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tenantcrypt"`)
	}
	if he.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(he.retryAfter))
	}
	writeJSON(w, he.status, api.ErrorResponse{Errors: []api.Error{*he.apiError()}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"errors":[{"code":"` + string(api.CodeInternal) + `","title":"Internal error"}]}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
