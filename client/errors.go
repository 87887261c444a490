package client

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
)

// Sentinel errors to branch on with errors.Is. A service answer is an
// *Error, which matches the sentinels its status and code stand for, so a
// caller can tell a revoked key from a request worth retrying without
// knowing the API's codes:
//
//	switch {
//	case errors.Is(err, client.ErrRetryLater):    // back off and retry
//	case errors.Is(err, client.ErrKeyRevoked):    // the customer disabled their key
//	case errors.Is(err, client.ErrDecryptionFailed): // wrong tenant, context or data
//	}
var (
	// ErrKeyRevoked: the tenant's customer managed key is disabled or its
	// key policy denies the service (Encryption-20). It lasts until the
	// key's owner re-enables the key; retrying before that fails.
	ErrKeyRevoked = errors.New("tenantcrypt: the tenant's key is revoked or unavailable")
	// ErrTenantLocked: the tenant's key is scheduled for deletion
	// (Encryption-21); it unlocks when the owner cancels the deletion.
	ErrTenantLocked = errors.New("tenantcrypt: the tenant is locked")
	// ErrTenantDestroyed: the tenant's key is deleted (Encryption-22);
	// its data cannot be recovered. Terminal.
	ErrTenantDestroyed = errors.New("tenantcrypt: the tenant is destroyed")
	// ErrTenantNotFound: the tenant does not exist, or no longer does
	// (Encryption-07). It also matches ErrNotFound.
	ErrTenantNotFound = errors.New("tenantcrypt: tenant not found")
	// ErrRetryLater: the service, its database or its KMS was unavailable
	// or throttled the request (503, 429; also 502 and 504 from a proxy).
	// The Client has already retried as its RetryPolicy allows; the
	// *Error's RetryAfter says when to try again.
	ErrRetryLater = errors.New("tenantcrypt: unavailable, retry later")
	// ErrDecryptionFailed: a ciphertext, stream or handle does not open
	// for this tenant and encryption context (Encryption-09), or a stream
	// decrypted locally failed to authenticate (altered, truncated,
	// extended, reordered, another context). Deliberately opaque; do not
	// retry.
	ErrDecryptionFailed = errors.New("tenantcrypt: decryption failed")
	// ErrUnauthenticated: the token is missing, expired or invalid (401).
	ErrUnauthenticated = errors.New("tenantcrypt: unauthenticated")
	// ErrForbidden: the token lacks the role the operation needs (403
	// Encryption-03).
	ErrForbidden = errors.New("tenantcrypt: forbidden")
	// ErrNotFound: no such route or resource (any 404).
	ErrNotFound = errors.New("tenantcrypt: not found")
	// ErrMalformedStream: the input is not a stream of the client's
	// format (wrong magic, an unknown version, a header out of bounds).
	// Returned only by local decryption; see docs/client-stream-format.md.
	ErrMalformedStream = errors.New("tenantcrypt: not a tenantcrypt client stream")
	// ErrNotApproved: the operation needs cryptography that FIPS 140-3
	// does not approve, and the process runs with GODEBUG=fips140=only:
	// decrypting a version 1 stream (counter nonces). Decrypt it outside
	// that mode; see docs/fips.md.
	ErrNotApproved = errors.New("tenantcrypt: not FIPS 140-3 approved")
)

// Error is an error answer of the service.
type Error struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// RetryAfter is the server's Retry-After, zero if none.
	RetryAfter time.Duration
	// Code is the API's stable error code (see package api).
	Code api.Code
	// Title and Detail are the service's explanation.
	Title, Detail string
	// Meta is the error's structured context, such as the offending field.
	Meta map[string]any
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("tenantcrypt: %d %s", e.StatusCode, e.Title)
	if e.Code != "" {
		msg += " (" + string(e.Code) + ")"
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Retryable reports whether the request may succeed if sent again later:
// the service or its KMS was unavailable or throttled (503, 429), or a
// proxy in front of it answered 502 or 504; not when the service has no
// KMS credentials (503 Encryption-15), which only the operator can fix.
func (e *Error) Retryable() bool {
	if e.Code == api.CodeKMSNotConfigured {
		return false // the operator's configuration: no retry fixes it
	}
	switch e.StatusCode {
	case http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusBadGateway, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// Is makes errors.Is match e against the sentinel errors of this package
// by its code and status.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrKeyRevoked:
		return e.Code == api.CodeKeyUnavailable
	case ErrTenantLocked:
		return e.Code == api.CodeTenantLocked
	case ErrTenantDestroyed:
		return e.Code == api.CodeTenantDestroyed
	case ErrTenantNotFound:
		return e.Code == api.CodeTenantNotFound
	case ErrRetryLater:
		return e.Retryable()
	case ErrDecryptionFailed:
		return e.Code == api.CodeDecryptionFailed
	case ErrUnauthenticated:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.Code == api.CodeForbidden
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	}
	return false
}

// revokes reports whether the answer says that the tenant's data keys
// must no longer be used: its key is unavailable, it is locked or
// destroyed, or it is gone. The Client purges its cached data keys then.
func (e *Error) revokes() bool {
	switch e.Code {
	case api.CodeKeyUnavailable, api.CodeTenantLocked, api.CodeTenantDestroyed, api.CodeTenantNotFound:
		return true
	}
	return false
}

// IsCode reports whether err is a service error with that code.
func IsCode(err error, code api.Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// ItemError turns the error of one item of a batch answer into an *Error,
// so that errors.Is and the sentinels work on it as on a single answer.
// It returns nil for nil.
func ItemError(ae *api.Error) error {
	if ae == nil {
		return nil
	}
	status, _ := strconv.Atoi(ae.Status)
	return &Error{StatusCode: status, Code: ae.Code, Title: ae.Title, Detail: ae.Detail, Meta: ae.Meta}
}

func decodeError(resp *http.Response, data []byte) error {
	e := &Error{StatusCode: resp.StatusCode}
	e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	var env api.ErrorResponse
	if jsonUnmarshal(data, &env) == nil && len(env.Errors) > 0 {
		ae := env.Errors[0]
		e.Code, e.Title, e.Detail, e.Meta = ae.Code, ae.Title, ae.Detail, ae.Meta
	} else {
		e.Title = http.StatusText(resp.StatusCode)
	}
	return e
}

// parseRetryAfter reads a Retry-After header: delay seconds, or an HTTP
// date (RFC 9110, section 10.2.3). Anything else, or a time in the past,
// is zero.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, 24*3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour)
	}
	return 0
}
