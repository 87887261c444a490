// Package api holds tenantcrypt's public wire types: the JSON bodies of its
// HTTP API, the stable error codes of its error envelope, and its routes
// (Route: method, path, retry safety). Both the server and the Go client
// use it; it imports nothing but the standard library.
//
// Binary values (plaintexts, data keys) travel as standard base64 with
// padding. Ciphertexts and handles are tenantcrypt's own text form
// ("<prefix>:<base64url>", see package envelope) and are passed through as
// they are.
package api

import "time"

// ErrorResponse is the body of every 4xx and 5xx answer.
type ErrorResponse struct {
	Errors []Error `json:"errors"`
}

// Error is one error of an ErrorResponse, and of a failed batch item.
type Error struct {
	// Code is stable and machine-readable; see the Code constants.
	Code Code `json:"code"`
	// Title is short and stable for a code.
	Title string `json:"title"`
	// Detail tells the caller what went wrong and what to do.
	Detail string `json:"detail,omitempty"`
	// Status is the HTTP status, as a string (as in Qlik's API).
	Status string `json:"status,omitempty"`
	// Meta carries structured context, such as the offending field.
	Meta map[string]any `json:"meta,omitempty"`
}

// Error implements error, so that a client can return an Error as is.
func (e *Error) Error() string {
	if e.Detail != "" {
		return string(e.Code) + ": " + e.Title + ": " + e.Detail
	}
	return string(e.Code) + ": " + e.Title
}

// Tenant is a tenant as the platform admin API shows it.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Edition   string    `json:"edition"`
	HIPAA     bool      `json:"hipaa"`
	State     string    `json:"state"`
	Provider  string    `json:"keyProvider"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Quota is the tenant's own data-plane quota; absent when the tenant
	// has the server's defaults (--tenant-rate, --tenant-burst).
	Quota *Quota `json:"quota,omitempty"`
}

// Quota is a tenant's data-plane quota: Rate operations per second on
// average, Burst at once (a batch counts its items). {"rate": 0,
// "burst": 0} in a request returns the tenant to the server's defaults;
// otherwise Rate > 0 and Burst ≥ MaxBatchItems.
type Quota struct {
	Rate  float64 `json:"rate"`
	Burst int     `json:"burst"`
}

// CreateTenantRequest is the body of POST /api/v1/tenants.
type CreateTenantRequest struct {
	// ID is optional; the server generates one when it is empty.
	ID      string `json:"id,omitempty"`
	Name    string `json:"name"`
	Edition string `json:"edition"`
	HIPAA   bool   `json:"hipaa,omitempty"`
	Quota   *Quota `json:"quota,omitempty"`
}

// UpdateTenantRequest is the body of PATCH /api/v1/tenants/{id}, a JSON merge
// patch: absent fields stay as they are.
type UpdateTenantRequest struct {
	Name    *string `json:"name,omitempty"`
	Edition *string `json:"edition,omitempty"`
	HIPAA   *bool   `json:"hipaa,omitempty"`
	Quota   *Quota  `json:"quota,omitempty"`
}

// TenantList is the answer of GET /api/v1/tenants.
type TenantList struct {
	Data  []Tenant `json:"data"`
	Links Links    `json:"links"`
}

// Links points to further pages.
type Links struct {
	Next string `json:"next,omitempty"`
}

// EncryptRequest is one item of POST /api/v1/encryption/encrypt.
type EncryptRequest struct {
	Plaintext string            `json:"plaintext"` // base64
	Context   map[string]string `json:"context,omitempty"`
}

// EncryptResponse answers an EncryptRequest.
type EncryptResponse struct {
	Ciphertext string `json:"ciphertext"`
}

// DecryptRequest is one item of POST /api/v1/encryption/decrypt.
type DecryptRequest struct {
	Ciphertext string            `json:"ciphertext"`
	Context    map[string]string `json:"context,omitempty"`
}

// DecryptResponse answers a DecryptRequest.
type DecryptResponse struct {
	Plaintext string `json:"plaintext"` // base64
}

// RewrapRequest is one item of POST /api/v1/encryption/rewrap.
type RewrapRequest = DecryptRequest

// RewrapResponse answers a RewrapRequest.
type RewrapResponse = EncryptResponse

// DataKeyRequest is one item of POST /api/v1/encryption/datakeys.
type DataKeyRequest struct {
	Context map[string]string `json:"context,omitempty"`
}

// DataKeyResponse carries a fresh data key: its plaintext (base64; the
// caller must keep it in memory only) and the handle that resolves to it.
type DataKeyResponse struct {
	Plaintext string `json:"plaintext"`
	Handle    string `json:"handle"`
}

// DataKeyDecryptRequest is one item of POST
// /api/v1/encryption/datakeys/decrypt.
type DataKeyDecryptRequest struct {
	Handle  string            `json:"handle"`
	Context map[string]string `json:"context,omitempty"`
}

// DataKeyDecryptResponse carries a data key's plaintext (base64).
type DataKeyDecryptResponse struct {
	Plaintext string `json:"plaintext"`
}

// BatchRequest is the batch form of every data-plane request.
type BatchRequest[T any] struct {
	Items []T `json:"items"`
}

// BatchResponse answers a BatchRequest item by item, in order: each item is
// either the single answer or {"error": {...}}.
type BatchResponse[T any] struct {
	Items []BatchItem[T] `json:"items"`
}

// BatchItem is one answer of a batch: the result's fields, or Error.
type BatchItem[T any] struct {
	Result *T
	Error  *Error
}

// MaxBatchItems bounds the items of one batch request.
const MaxBatchItems = 1000

// EncryptionStatus is the answer of GET /api/v1/encryption/status.
type EncryptionStatus struct {
	TenantID string `json:"tenantId"`
	// State is the tenant's lifecycle state: active, key-unavailable,
	// locked or destroyed.
	State string `json:"state"`
	// StateReason says why the tenant is in State (what was found of its
	// key, where); StateChangedAt is when it entered State. Both are
	// absent for a tenant that never left active.
	StateReason    string     `json:"stateReason,omitempty"`
	StateChangedAt *time.Time `json:"stateChangedAt,omitempty"`
	// Degraded is set while the key's own region could not be checked
	// (KMS unreachable or throttling): the tenant stays active and serves
	// from cached data keys until their TTL; DegradedReason says why.
	Degraded       bool   `json:"degraded"`
	DegradedReason string `json:"degradedReason,omitempty"`
	// Provider is the key provider that wraps new data keys.
	Provider StatusProvider `json:"currentProvider"`
	// KeyState is the state of the provider's key as last seen in its own
	// region (Enabled, Disabled, PendingDeletion, ...; Unknown when it
	// could not be described).
	KeyState string `json:"keyState"`
	// LastCheck is the last check of a customer managed key: its time and
	// result in the key's own region, and every region's in Regions.
	LastCheck *KeyCheck `json:"lastCheck,omitempty"`
	// KeyCheckInterval is how often the key is checked, as a Go duration
	// string; absent for the internal KMS.
	KeyCheckInterval string `json:"keyCheckInterval,omitempty"`
	// DRCompliant and ComplianceError are the current provider's DR
	// compliance (as in its KeyProvider document); absent for the internal
	// KMS.
	DRCompliant     *bool            `json:"drCompliant,omitempty"`
	ComplianceError *ComplianceError `json:"complianceError,omitempty"`
	// Failover is present while the key's own region is unreachable and
	// its calls go to the replica in the DR region.
	Failover *Failover `json:"failover,omitempty"`
	// RevocationBound is how long at most a revoked key's data keys stay
	// usable, as a Go duration string.
	RevocationBound string `json:"revocationBound"`
	// CipherKeys counts the tenant's stored data keys by provider.
	CipherKeys map[string]int `json:"cipherKeys"`
	// FIPS140 is the service's FIPS 140-3 mode: off, on or only
	// (docs/fips.md).
	FIPS140 string `json:"fips140"`
}

// Failover says that a multi-region key is served by its replica: calls
// fail over From the key's own region To the DR region, Since then.
type Failover struct {
	From  string    `json:"from"`
	To    string    `json:"to"`
	Since time.Time `json:"since"`
}

// StatusProvider names a key provider in EncryptionStatus.
type StatusProvider struct {
	KeyProvider    string `json:"keyprovider"`
	ARN            string `json:"arn"`
	ARNFingerPrint string `json:"arnFingerPrint"`
	Prefix         string `json:"prefix"`
}

// KeyCheck is the result of checking a key in a region: ok, disabled,
// pending-deletion, not-found, access-denied, throttled, unavailable or
// error.
type KeyCheck struct {
	Time     time.Time `json:"time"`
	Result   string    `json:"result"`
	Region   string    `json:"region,omitempty"`
	ARN      string    `json:"arn,omitempty"`
	KeyState string    `json:"keyState,omitempty"`
	Detail   string    `json:"detail,omitempty"`
	// Regions is every region's check, the key's own region first.
	Regions []KeyCheck `json:"regions,omitempty"`
}

// Health is the body of /livez and /readyz.
type Health struct {
	Status string            `json:"status"` // "ok" or "unavailable"
	Checks map[string]string `json:"checks,omitempty"`
}
