package auth

import "errors"

// ErrUnauthenticated is wrapped by every error with which [Verifier.Verify]
// or [BearerToken] refuses a request; test for it with [errors.Is].
//
// The message of such an error is "unauthenticated: " followed by a short
// reason ("token expired", "unknown key id", "algorithm not allowed", ...)
// that is safe to show to the client: it never contains the token, a claim
// value or key material. The error may also wrap a cause meant for logs,
// such as the failure of a key source.
var ErrUnauthenticated = errors.New("unauthenticated")

// ErrKeyNotFound is returned by a [KeySource] that has no key with the
// requested key id. Any other error from a KeySource means the keys could
// not be consulted at all.
var ErrKeyNotFound = errors.New("auth: no key with this key id")

// rejection is the error of a refused token: a reason safe to show to the
// client and, for logs, the cause if there is one.
type rejection struct {
	reason string
	cause  error
}

func (e *rejection) Error() string { return "unauthenticated: " + e.reason }

func (e *rejection) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrUnauthenticated}
	}
	return []error{ErrUnauthenticated, e.cause}
}

func reject(reason string) error { return &rejection{reason: reason} }

func rejectWith(reason string, cause error) error { return &rejection{reason: reason, cause: cause} }

// The reasons a token or request is refused, in words safe for a client.
const (
	reasonMissingToken     = "missing bearer token"
	reasonMalformedHeader  = "malformed authorization header"
	reasonTooLarge         = "token too large"
	reasonMalformed        = "malformed token"
	reasonAlgorithm        = "algorithm not allowed"
	reasonMissingKeyID     = "missing key id"
	reasonUnknownKeyID     = "unknown key id"
	reasonKeysUnavailable  = "signing keys unavailable"
	reasonKeyMismatch      = "key does not match algorithm"
	reasonKeyNotAllowed    = "key not allowed"
	reasonSignature        = "invalid signature"
	reasonMalformedClaims  = "malformed claims"
	reasonIssuer           = "invalid issuer"
	reasonAudience         = "invalid audience"
	reasonMissingSubject   = "missing subject"
	reasonMissingExpiry    = "missing expiry"
	reasonExpired          = "token expired"
	reasonNotYetValid      = "token not yet valid"
	reasonIssuedInFuture   = "token issued in the future"
	reasonMissingRoles     = "missing roles"
	reasonUnknownRole      = "unknown role"
	reasonMissingTenant    = "tenant role without tenant id"
	reasonInvalidTenant    = "tenantId is not a tenant id"
	reasonLifetime         = "token lifetime longer than allowed"
	reasonKeyInHeader      = "key reference in token header not allowed"
	reasonRequestCancelled = "request cancelled"
)

// Rejections without a cause are allocated once: the hot path of a busy
// server refuses many tokens for the same few reasons.
var (
	errMissingToken    = reject(reasonMissingToken)
	errMalformedHeader = reject(reasonMalformedHeader)
	errTooLarge        = reject(reasonTooLarge)
	errMalformed       = reject(reasonMalformed)
	errInvalidTenant   = reject(reasonInvalidTenant)
	errLifetime        = reject(reasonLifetime)
	errKeyInHeader     = reject(reasonKeyInHeader)
	errAlgorithm       = reject(reasonAlgorithm)
	errMissingKeyID    = reject(reasonMissingKeyID)
	errKeyMismatch     = reject(reasonKeyMismatch)
	errKeyNotAllowed   = reject(reasonKeyNotAllowed)
	errSignature       = reject(reasonSignature)
	errMalformedClaims = reject(reasonMalformedClaims)
	errIssuer          = reject(reasonIssuer)
	errAudience        = reject(reasonAudience)
	errMissingSubject  = reject(reasonMissingSubject)
	errMissingExpiry   = reject(reasonMissingExpiry)
	errExpired         = reject(reasonExpired)
	errNotYetValid     = reject(reasonNotYetValid)
	errIssuedInFuture  = reject(reasonIssuedInFuture)
	errMissingRoles    = reject(reasonMissingRoles)
	errUnknownRole     = reject(reasonUnknownRole)
	errMissingTenant   = reject(reasonMissingTenant)
)

// Reason returns the short, client-safe reason of a refusal by Verify or
// BearerToken ("token expired", ...), or "" for any other error.
func Reason(err error) string {
	var r *rejection
	if errors.As(err, &r) {
		return r.reason
	}
	return ""
}
