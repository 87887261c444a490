package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// httpError is an error that knows its status and public message. Cause,
// if any, goes to the log only.
type httpError struct {
	status     int
	code       api.Code
	title      string
	detail     string
	meta       map[string]any
	retryAfter int // seconds; 0 for none
	cause      error
}

func (e *httpError) Error() string {
	msg := e.title
	if e.detail != "" {
		msg += ": " + e.detail
	}
	if e.cause != nil {
		msg += ": " + e.cause.Error()
	}
	return msg
}

func (e *httpError) Unwrap() error { return e.cause }

var (
	errRouteNotFound    = &httpError{status: 404, code: api.CodeNotFound, title: "Not found", detail: "no such endpoint; see /api/v1/openapi.json"}
	errMethodNotAllowed = &httpError{status: 405, code: api.CodeMethodNotAllowed, title: "Method not allowed", detail: "see the Allow header for the methods of this endpoint"}
	errInternal         = &httpError{status: 500, code: api.CodeInternal, title: "Internal error", detail: "the server failed; quote the request id to the operator"}
)

func badRequest(detail string, meta map[string]any) *httpError {
	return &httpError{status: 400, code: api.CodeBadRequest, title: "Bad request", detail: detail, meta: meta}
}

func forbidden(detail string) *httpError {
	return &httpError{status: 403, code: api.CodeForbidden, title: "Forbidden", detail: detail}
}

// toHTTPError maps any error a handler returns to what the client sees.
// This is the one place where errors become statuses.
func toHTTPError(err error) *httpError {
	var he *httpError
	if errors.As(err, &he) {
		return he
	}
	var ie *fault.InputError
	if errors.As(err, &ie) {
		return badRequest(ie.Error(), map[string]any{"field": ie.Field})
	}
	var se *keyring.TenantStateError
	if errors.As(err, &se) {
		return tenantStateError(se)
	}
	var rl *keyring.RateLimitError
	if errors.As(err, &rl) {
		he := rateLimited(rl.RetryAfter)
		he.detail = fmt.Sprintf("the tenant's data-plane quota (%g operations per second, burst %d; a batch counts each item) is used up; retry after the Retry-After delay", rl.Quota.Rate, rl.Quota.Burst)
		return he
	}
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		return &httpError{status: 401, code: api.CodeUnauthenticated, title: "Unauthorized", detail: authDetail(err)}
	case errors.Is(err, keyring.ErrTenantNotFound):
		return &httpError{status: 404, code: api.CodeTenantNotFound, title: "Tenant not found", detail: "no tenant with this id"}
	case errors.Is(err, keyring.ErrTenantExists):
		return &httpError{status: 409, code: api.CodeTenantExists, title: "Tenant exists", detail: "a tenant with this id exists already"}
	case errors.Is(err, keyring.ErrTenantRetired):
		return &httpError{status: 409, code: api.CodeTenantIDRetired, title: "Tenant id retired",
			detail: "this id belonged to a deleted tenant; tenant ids are never reused, so choose another id"}
	case errors.Is(err, keyring.ErrDecrypt):
		return &httpError{status: 400, code: api.CodeDecryptionFailed, title: "Decryption failed",
			detail: "the ciphertext or handle does not decrypt for this tenant and context"}
	case errors.Is(err, keyring.ErrHIPAARequiresCMK), errors.Is(err, keyring.ErrEditionForbidsCMK):
		return &httpError{status: 409, code: api.CodeConflict, title: "Conflict", detail: err.Error()}
	}
	if state, ok := keyring.StateOnUse(err); ok {
		// This request met the refusal itself; the tenant's state follows.
		return tenantStateError(&keyring.TenantStateError{State: state, Reason: keyring.KeyRefusal(err)})
	}
	switch {
	case errors.Is(err, kms.ErrNotConfigured):
		return errKMSNotConfigured(err)
	case errors.Is(err, kms.ErrThrottled):
		return &httpError{status: 503, code: api.CodeKMSThrottled, title: "KMS throttled", retryAfter: 1, cause: err,
			detail: "the key management service is throttling requests; retry after the Retry-After delay"}
	case errors.Is(err, kms.ErrUnavailable):
		return &httpError{status: 503, code: api.CodeUnavailable, title: "Service unavailable", retryAfter: 5, cause: err,
			detail: "the key management service did not answer; retry after the Retry-After delay"}
	case errors.Is(err, fault.ErrStoreUnavailable):
		return &httpError{status: 503, code: api.CodeUnavailable, title: "Service unavailable", retryAfter: 2, cause: err,
			detail: "the service's database is unavailable; retry after the Retry-After delay"}
	case errors.Is(err, context.DeadlineExceeded):
		return &httpError{status: 503, code: api.CodeUnavailable, title: "Service unavailable", retryAfter: 1, cause: err,
			detail: "the request timed out; retry after the Retry-After delay"}
	}
	return &httpError{status: errInternal.status, code: errInternal.code, title: errInternal.title, detail: errInternal.detail, cause: err}
}

// errKMSNotConfigured answers a call that needed the customer's KMS while
// the service has no credentials for it: the operator's configuration, so
// 503, and a detail that names what is missing.
func errKMSNotConfigured(cause error) *httpError {
	return &httpError{status: 503, code: api.CodeKMSNotConfigured, title: "KMS not configured", retryAfter: 60, cause: cause,
		detail: "tenantcrypt has no AWS credentials, so it cannot call AWS KMS: the platform operator must configure them " +
			"for the service (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a shared credentials file or profile, " +
			"or an instance, task or web-identity role)"}
}

// tenantStateError refuses a request because of the tenant's lifecycle
// state. Its detail says what the caller can do; meta carries the state,
// why (what was found of the key, where) and since when.
func tenantStateError(se *keyring.TenantStateError) *httpError {
	meta := map[string]any{"state": se.State.String()}
	if se.Reason != "" {
		meta["reason"] = se.Reason
	}
	if !se.Since.IsZero() {
		meta["since"] = se.Since.UTC().Format(time.RFC3339)
	}
	because := ""
	if se.Reason != "" {
		because = " (" + se.Reason + ")"
	}
	switch se.State {
	case keyring.StateKeyUnavailable:
		return &httpError{status: 403, code: api.CodeKeyUnavailable, title: "Key unavailable", meta: meta,
			detail: "the tenant's customer managed key is disabled or its key policy denies this service" + because +
				"; the data stays unreadable until the key's owner enables it or restores access, after which the tenant is active again without any other action"}
	case keyring.StateLocked:
		return &httpError{status: 423, code: api.CodeTenantLocked, title: "Tenant locked", meta: meta,
			detail: "the tenant's customer managed key is scheduled for deletion" + because +
				"; the tenant is locked until the key's owner cancels the deletion and enables the key"}
	case keyring.StateDestroyed:
		return &httpError{status: 410, code: api.CodeTenantDestroyed, title: "Tenant destroyed", meta: meta,
			detail: "the tenant's customer managed key no longer exists" + because + "; its encrypted data cannot be recovered"}
	}
	return errInternal
}

// authDetail is the verifier's public reason, which names what was wrong
// with the token but never echoes it.
func authDetail(err error) string {
	if reason := auth.Reason(err); reason != "" {
		return reason + "; a valid bearer token is required"
	}
	return "a valid bearer token is required"
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
