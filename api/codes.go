package api

// Code is a stable, machine-readable error code. Codes are never reused;
// docs/api.md lists them with their HTTP status and what a caller should do.
type Code string

// Error codes.
const (
	// CodeBadRequest: the body or a parameter is malformed (400).
	CodeBadRequest Code = "Encryption-01"
	// CodeUnauthenticated: no valid bearer token (401).
	CodeUnauthenticated Code = "Encryption-02"
	// CodeForbidden: the token's role or tenant does not allow this (403).
	CodeForbidden Code = "Encryption-03"
	// CodeNotFound: no such route or resource (404).
	CodeNotFound Code = "Encryption-04"
	// CodeMethodNotAllowed: the route exists with other methods (405).
	CodeMethodNotAllowed Code = "Encryption-05"
	// CodeBodyTooLarge: the request body exceeds the limit (413).
	CodeBodyTooLarge Code = "Encryption-06"
	// CodeTenantNotFound: no such tenant (404).
	CodeTenantNotFound Code = "Encryption-07"
	// CodeTenantExists: a tenant with that id exists (409).
	CodeTenantExists Code = "Encryption-08"
	// CodeDecryptionFailed: the ciphertext or handle does not open for this
	// tenant and context; deliberately says no more (400).
	CodeDecryptionFailed Code = "Encryption-09"
	// CodeInternal: an unexpected server error; details are in the server
	// log under the request id (500).
	CodeInternal Code = "Encryption-10"
	// CodeUnavailable: a dependency (database, KMS) is unavailable; retry
	// after the Retry-After header (503).
	CodeUnavailable Code = "Encryption-11"
	// CodeUnsupportedMediaType: the body is not application/json (415).
	CodeUnsupportedMediaType Code = "Encryption-12"
	// CodeRateLimited: too many requests; retry after Retry-After (429).
	CodeRateLimited Code = "Encryption-13"
	// CodeConflict: the request conflicts with the tenant's configuration,
	// e.g. hipaa without a customer managed key (409).
	CodeConflict Code = "Encryption-14"
	// CodeKMSNotConfigured: the service has no credentials for the key
	// management service (the operator's configuration); retry once the
	// operator has configured them (503).
	CodeKMSNotConfigured Code = "Encryption-15"
	// CodeTenantIDRetired: the id belonged to a deleted tenant; tenant ids
	// are never reused, so choose another (409).
	CodeTenantIDRetired Code = "Encryption-16"
	// CodeKeyUnavailable: the tenant's customer managed key is disabled or
	// access to it is denied; the key's owner must re-enable it (403).
	CodeKeyUnavailable Code = "Encryption-20"
	// CodeTenantLocked: the tenant's key is pending deletion (423).
	CodeTenantLocked Code = "Encryption-21"
	// CodeTenantDestroyed: the tenant's key is deleted; its data is gone (410).
	CodeTenantDestroyed Code = "Encryption-22"
	// CodeKMSThrottled: the KMS throttled the request; retry later (503).
	CodeKMSThrottled Code = "Encryption-23"
	// CodeAuditUnavailable: the audit log cannot be written, so the
	// action is refused (fail closed); retry later (503).
	CodeAuditUnavailable Code = "Encryption-24"
	// CodeNotCompliant: the key policy refuses a required action in a
	// region (used in complianceError).
	CodeNotCompliant Code = "Encryption-88"
)

// Error codes of the key-provider API.
const (
	// CodeKeyProviderNotFound: no key provider with that fingerprint (404).
	CodeKeyProviderNotFound Code = "Encryption-30"
	// CodeKeyNotAccessible: the key's policy refuses this service (403).
	CodeKeyNotAccessible Code = "Encryption-31"
	// CodeKMSTimeout: AWS KMS did not answer in time (408).
	CodeKMSTimeout Code = "Encryption-32"
	// CodeKeyRefused: the key cannot serve as a key provider: not enabled,
	// asymmetric, not multi-region, or the edition forbids it (406).
	CodeKeyRefused Code = "Encryption-33"
	// CodeKeyProviderExists: the key is registered already (409).
	CodeKeyProviderExists Code = "Encryption-34"
	// CodeMalformedARN: the ARN is not a KMS key ARN (417).
	CodeMalformedARN Code = "Encryption-35"
	// CodeKeyProviderInUse: the provider is current or still wraps data
	// keys (424).
	CodeKeyProviderInUse Code = "Encryption-36"
	// CodeFingerprintTooLong: the fingerprint in the path is too long (414).
	CodeFingerprintTooLong Code = "Encryption-37"
	// CodeMigrationNotStarted: the migration could not start, e.g. the
	// target is current already or fails its test (412).
	CodeMigrationNotStarted Code = "Encryption-38"
	// CodeNoMigration: the tenant never had a migration (404).
	CodeNoMigration Code = "Encryption-39"
	// CodeCouldNotLoad: key providers could not be loaded (417).
	CodeCouldNotLoad Code = "Encryption-40"
)
