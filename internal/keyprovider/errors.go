package keyprovider

import "errors"

// CodeNotCompliant is the complianceError code of a key that a required
// action is refused for in a region.
const CodeNotCompliant = "Encryption-88"

// Errors callers branch on.
var (
	// ErrNotFound: no such key provider (or tenant).
	ErrNotFound = errors.New("key provider not found")
	// ErrExists: the key is already registered for the tenant.
	ErrExists = errors.New("key already registered")
	// ErrMalformedARN: the ARN is not a KMS key ARN.
	ErrMalformedARN = errors.New("malformed key ARN")
	// ErrInUse: the provider is current or still wraps data keys.
	ErrInUse = errors.New("key provider in use")
)

// RefusedError: the key exists but cannot serve as a tenant's key
// provider (not enabled, asymmetric, not multi-region, edition).
type RefusedError struct {
	Reason string
}

func (e *RefusedError) Error() string { return "key refused: " + e.Reason }
