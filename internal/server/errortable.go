package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
	"github.com/tenantcrypt/tenantcrypt/internal/rotation"
)

// This file is the one place where errors become statuses: an error has a
// kind (kindOf), the route that failed has an operation, and errorTable
// maps the pair to the status, the error code, the title and the public
// detail. The same error may answer differently in two operations: the
// key-provider API keeps the statuses Qlik's clients expect (QLIK-API.md),
// e.g. 408 where the data plane answers 503 for a KMS that does not answer.

// operation is what a route does, as far as the error table tells
// operations apart. Routes without rows of their own are opOther.
type operation uint8

const (
	opOther operation = iota
	opListKeyProviders
	opGetKeyProvider
	opRegisterKeyProvider
	opUpdateKeyProvider
	opDeleteKeyProvider
	opTestKeyProvider
	opMigrate
	opResetToDefault
	opMigrationDetails
	numOperations // not an operation: the number of them
)

var operationNames = [numOperations]string{"other", "list key providers", "get key provider",
	"register key provider", "update key provider", "delete key provider", "test key provider",
	"migrate", "reset to default provider", "migration details"}

func (op operation) String() string {
	if op < numOperations {
		return operationNames[op]
	}
	return "operation " + strconv.Itoa(int(op))
}

// opSet is a set of operations, one bit each.
type opSet uint32

func ops(list ...operation) opSet {
	var s opSet
	for _, op := range list {
		s |= 1 << op
	}
	return s
}

func (s opSet) has(op operation) bool { return s&(1<<op) != 0 }

// The operations that share rows.
var (
	anyOp = opSet(1<<numOperations - 1)
	// keyProviderOps is the key-provider API, migrations included: the
	// statuses of QLIK-API.md.
	keyProviderOps = ops(opListKeyProviders, opGetKeyProvider, opRegisterKeyProvider, opUpdateKeyProvider,
		opDeleteKeyProvider, opTestKeyProvider, opMigrate, opResetToDefault, opMigrationDetails)
	// loadingOps read key providers: a failed store is Qlik's 417 "could
	// not load" there.
	loadingOps = ops(opListKeyProviders, opGetKeyProvider)
)

// opError carries the operation of the route that returned err to the
// table. It is transparent to errors.Is and errors.As.
type opError struct {
	op  operation
	err error
}

func (e *opError) Error() string { return e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// as makes h's errors answer as op's.
func as(op operation, h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := h(w, r); err != nil {
			return &opError{op: op, err: err}
		}
		return nil
	}
}

// kind is what the error table tells apart of an error (see kindOf).
type kind uint8

const (
	kindUnknown kind = iota // nothing the table knows: a 500

	// Found by the server in the request itself (a *requestError).
	kindBadRequest
	kindBodyTimeout
	kindBodyTooLarge
	kindUnsupportedMediaType
	kindRouteNotFound
	kindMethodNotAllowed
	kindFingerprintTooLong
	kindNoInternalKMS
	kindForbidden
	kindRateLimited
	kindOverloaded
	kindAuditRefused // the audit log is not writable: refused before acting
	kindAuditLate    // carried out, but its audit event was not written in time

	// The caller and its tenant.
	kindUnauthenticated
	kindInput
	kindTenantNotFound
	kindTenantExists
	kindTenantRetired
	kindTenantPolicy // hipaa needs a CMK, the edition forbids one
	kindQuota
	kindKeyUnavailable // the tenant's states
	kindTenantLocked
	kindTenantDestroyed
	kindDecrypt

	// The KMS.
	kindKMSKeyUnusable // disabled, or not found
	kindKMSKeyPendingDeletion
	kindKMSAccessDenied
	kindKMSNotConfigured
	kindKMSThrottled
	kindKMSUnavailable

	// Key providers and migrations.
	kindProviderNotFound
	kindProviderExists
	kindMalformedARN
	kindProviderInUse
	kindKeyRefused
	kindMigrationRunning
	kindMigrationNotStarted
	kindMigrationNotPrepared
	kindNotFound // a record that is not there, e.g. a migration never made

	// The internal KMS's rotations.
	kindRotationBusy
	kindRootKeysFromEnvironment
	kindRootKeysRefused
	kindRootKeyFile
	kindNotInternal
	kindRotationClosed

	// The service's own resources.
	kindStoreUnavailable
	kindDeadline

	numKinds // not a kind: the number of them
)

// kindNames are the kinds' names, for tests and logs.
var kindNames = [numKinds]string{
	"unknown", "bad request", "body timeout", "body too large", "unsupported media type",
	"route not found", "method not allowed", "fingerprint too long", "no internal kms",
	"forbidden", "rate limited", "overloaded", "audit refused", "audit late",
	"unauthenticated", "input", "tenant not found", "tenant exists", "tenant retired",
	"tenant policy", "quota", "key unavailable", "tenant locked", "tenant destroyed",
	"decrypt", "kms key unusable", "kms key pending deletion", "kms access denied",
	"kms not configured", "kms throttled", "kms unavailable", "provider not found",
	"provider exists", "malformed arn", "provider in use", "key refused",
	"migration running", "migration not started", "migration not prepared", "not found",
	"rotation busy", "root keys from environment", "root keys refused", "root key file",
	"not internal", "rotation closed", "store unavailable", "deadline",
}

func (k kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "kind " + strconv.Itoa(int(k))
}

// kindOf classifies err. Wrappers that carry a cause (a migration that
// could not be prepared, a root key file) are looked at before their
// cause; the KMS before the store before a deadline, as a KMS error may
// wrap a deadline.
func kindOf(err error) kind {
	var (
		re *requestError
		ie *fault.InputError
		se *keyring.TenantStateError
		rl *keyring.RateLimitError
		pe *migration.PrepareError
		ns *migration.NotStartedError
		rf *keyprovider.RefusedError
		bz *rotation.BusyError
		kf *rotation.KeyFileError
	)
	switch {
	case errors.As(err, &re):
		return re.kind
	case errors.As(err, &pe):
		return kindMigrationNotPrepared
	case errors.As(err, &ns):
		return kindMigrationNotStarted
	case errors.As(err, &kf):
		return kindRootKeyFile
	case errors.As(err, &bz):
		return kindRotationBusy
	case errors.As(err, &ie):
		return kindInput
	case errors.As(err, &se):
		return stateKind(se.State)
	case errors.As(err, &rl):
		return kindQuota
	case errors.As(err, &rf):
		return kindKeyRefused
	case errors.Is(err, auth.ErrUnauthenticated):
		return kindUnauthenticated
	case errors.Is(err, keyring.ErrTenantNotFound):
		return kindTenantNotFound
	case errors.Is(err, keyring.ErrTenantExists):
		return kindTenantExists
	case errors.Is(err, keyring.ErrTenantRetired):
		return kindTenantRetired
	case errors.Is(err, keyring.ErrDecrypt):
		return kindDecrypt
	case errors.Is(err, keyring.ErrHIPAARequiresCMK), errors.Is(err, keyring.ErrEditionForbidsCMK):
		return kindTenantPolicy
	case errors.Is(err, keyprovider.ErrNotFound):
		return kindProviderNotFound
	case errors.Is(err, keyprovider.ErrExists):
		return kindProviderExists
	case errors.Is(err, keyprovider.ErrMalformedARN):
		return kindMalformedARN
	case errors.Is(err, keyprovider.ErrInUse):
		return kindProviderInUse
	case errors.Is(err, migration.ErrRunning):
		return kindMigrationRunning
	case errors.Is(err, rotation.ErrRootKeysFromEnvironment):
		return kindRootKeysFromEnvironment
	case errors.Is(err, rotation.ErrRootKeysRefused):
		return kindRootKeysRefused
	case errors.Is(err, rotation.ErrNotInternal):
		return kindNotInternal
	case errors.Is(err, rotation.ErrClosed):
		return kindRotationClosed
	case errors.Is(err, kms.ErrKeyDisabled), errors.Is(err, kms.ErrKeyNotFound):
		return kindKMSKeyUnusable
	case errors.Is(err, kms.ErrKeyPendingDeletion):
		return kindKMSKeyPendingDeletion
	case errors.Is(err, kms.ErrAccessDenied):
		return kindKMSAccessDenied
	case errors.Is(err, kms.ErrNotConfigured):
		return kindKMSNotConfigured
	case errors.Is(err, kms.ErrThrottled):
		return kindKMSThrottled
	case errors.Is(err, kms.ErrUnavailable):
		return kindKMSUnavailable
	case errors.Is(err, fault.ErrStoreUnavailable):
		return kindStoreUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return kindDeadline
	case errors.Is(err, fault.ErrNotFound):
		return kindNotFound
	}
	return kindUnknown
}

// stateKind is the kind of a refusal for the tenant's state; a refusal in
// any other state is a bug (kindUnknown).
func stateKind(state keyring.TenantState) kind {
	switch state {
	case keyring.StateKeyUnavailable:
		return kindKeyUnavailable
	case keyring.StateLocked:
		return kindTenantLocked
	case keyring.StateDestroyed:
		return kindTenantDestroyed
	}
	return kindUnknown
}

// row is one line of the error table: what kind answers in ops.
type row struct {
	kind   kind
	ops    opSet
	status int
	code   api.Code
	title  string
	// detail is the public message: what happened and what to do. It never
	// holds an internal cause.
	detail func(err error) string
	// retryAfter is the Retry-After in seconds (0: none); an error that
	// knows its own delay (a rate limit) overrides it.
	retryAfter int
	// state, if set, is the tenant's state the answer reports in meta,
	// with why and since when.
	state keyring.TenantState
}

// says is a fixed detail.
func says(detail string) func(error) string { return func(error) string { return detail } }

// ownDetail is the detail a *requestError was raised with, or an
// InputError's text.
func ownDetail(err error) string {
	var re *requestError
	if errors.As(err, &re) {
		return re.detail
	}
	return err.Error()
}

// errText is the error's own text: the errors of these kinds are written
// for the caller (a key policy, a hipaa rule), and carry no internal cause.
func errText(err error) string { return err.Error() }

const keyMustBeUsable = "; the data stays unreadable until the key's owner enables it or restores access, after which the tenant is active again without any other action"

// errorTable is every answer an error can get. For an operation and a
// kind, the row listing the operation wins over the row for anyOp (see
// lookup); a kind without a row is a 500.
var errorTable = []row{
	// The request itself.
	{kind: kindBadRequest, ops: anyOp, status: 400, code: api.CodeBadRequest, title: "Bad request", detail: ownDetail},
	{kind: kindInput, ops: anyOp, status: 400, code: api.CodeBadRequest, title: "Bad request", detail: ownDetail},
	{kind: kindBodyTimeout, ops: anyOp, status: 408, code: api.CodeBadRequest, title: "Request timeout",
		detail: says("the request body did not arrive in time")},
	{kind: kindBodyTooLarge, ops: anyOp, status: 413, code: api.CodeBodyTooLarge, title: "Body too large", detail: ownDetail},
	{kind: kindUnsupportedMediaType, ops: anyOp, status: 415, code: api.CodeUnsupportedMediaType, title: "Unsupported media type", detail: ownDetail},
	{kind: kindRouteNotFound, ops: anyOp, status: 404, code: api.CodeNotFound, title: "Not found",
		detail: says("no such endpoint; see /api/v1/openapi.json")},
	{kind: kindMethodNotAllowed, ops: anyOp, status: 405, code: api.CodeMethodNotAllowed, title: "Method not allowed",
		detail: says("see the Allow header for the methods of this endpoint")},
	{kind: kindFingerprintTooLong, ops: anyOp, status: 414, code: api.CodeFingerprintTooLong, title: "Fingerprint too long",
		detail: says(fmt.Sprintf("a key provider fingerprint has at most %d characters", maxFingerprint))},
	{kind: kindNoInternalKMS, ops: anyOp, status: 404, code: api.CodeNotFound, title: "Not found",
		detail: says("this server does not manage the internal KMS")},
	{kind: kindForbidden, ops: anyOp, status: 403, code: api.CodeForbidden, title: "Forbidden", detail: ownDetail},
	{kind: kindRateLimited, ops: anyOp, status: 429, code: api.CodeRateLimited, title: "Too many requests", retryAfter: 1,
		detail: says("this tenant's rate limit for this kind of request is reached; retry after the Retry-After delay")},
	{kind: kindOverloaded, ops: anyOp, status: 503, code: api.CodeUnavailable, title: "Service unavailable", retryAfter: 1,
		detail: says("the server has too many requests in progress; retry after the Retry-After delay")},
	{kind: kindAuditRefused, ops: anyOp, status: 503, code: api.CodeAuditUnavailable, title: "Audit log unavailable", retryAfter: 5,
		detail: says("the audit log cannot be written, so the action was refused before it was carried out; retry after the Retry-After delay")},
	{kind: kindAuditLate, ops: anyOp, status: 503, code: api.CodeAuditUnavailable, title: "Audit log unavailable", retryAfter: 5,
		detail: says("the action was carried out, but its audit event could not be written in time (it stays queued and is written when the audit log is writable again, unless the queue is full or the service stops first); check the outcome before retrying")},

	// The caller and its tenant.
	{kind: kindUnauthenticated, ops: anyOp, status: 401, code: api.CodeUnauthenticated, title: "Unauthorized", detail: authDetail},
	{kind: kindTenantNotFound, ops: anyOp, status: 404, code: api.CodeTenantNotFound, title: "Tenant not found",
		detail: says("no tenant with this id")},
	{kind: kindTenantExists, ops: anyOp, status: 409, code: api.CodeTenantExists, title: "Tenant exists",
		detail: says("a tenant with this id exists already")},
	{kind: kindTenantRetired, ops: anyOp, status: 409, code: api.CodeTenantIDRetired, title: "Tenant id retired",
		detail: says("this id belonged to a deleted tenant; tenant ids are never reused, so choose another id")},
	{kind: kindTenantPolicy, ops: anyOp, status: 409, code: api.CodeConflict, title: "Conflict", detail: errText},
	{kind: kindQuota, ops: anyOp, status: 429, code: api.CodeRateLimited, title: "Too many requests", retryAfter: 1, detail: quotaDetail},
	{kind: kindKeyUnavailable, ops: anyOp, status: 403, code: api.CodeKeyUnavailable, title: "Key unavailable", state: keyring.StateKeyUnavailable,
		detail: because("the tenant's customer managed key is disabled or its key policy denies this service", keyMustBeUsable)},
	{kind: kindTenantLocked, ops: anyOp, status: 423, code: api.CodeTenantLocked, title: "Tenant locked", state: keyring.StateLocked,
		detail: because("the tenant's customer managed key is scheduled for deletion", "; the tenant is locked until the key's owner cancels the deletion and enables the key")},
	{kind: kindTenantDestroyed, ops: anyOp, status: 410, code: api.CodeTenantDestroyed, title: "Tenant destroyed", state: keyring.StateDestroyed,
		detail: because("the tenant's customer managed key no longer exists", "; its encrypted data cannot be recovered")},
	{kind: kindDecrypt, ops: anyOp, status: 400, code: api.CodeDecryptionFailed, title: "Decryption failed",
		detail: says("the ciphertext or handle does not decrypt for this tenant and context")},

	// The KMS. On use, a refusal is the tenant's state, which this request
	// met first; registering or testing a key, it is the key's answer.
	{kind: kindKMSKeyUnusable, ops: anyOp, status: 403, code: api.CodeKeyUnavailable, title: "Key unavailable", state: keyring.StateKeyUnavailable,
		detail: because("the tenant's customer managed key is disabled or its key policy denies this service", keyMustBeUsable)},
	{kind: kindKMSKeyUnusable, ops: keyProviderOps, status: 406, code: api.CodeKeyRefused, title: "Key cannot be registered", detail: keyNotUsable},
	{kind: kindKMSKeyPendingDeletion, ops: anyOp, status: 423, code: api.CodeTenantLocked, title: "Tenant locked", state: keyring.StateLocked,
		detail: because("the tenant's customer managed key is scheduled for deletion", "; the tenant is locked until the key's owner cancels the deletion and enables the key")},
	{kind: kindKMSKeyPendingDeletion, ops: keyProviderOps, status: 406, code: api.CodeKeyRefused, title: "Key cannot be registered", detail: keyNotUsable},
	{kind: kindKMSAccessDenied, ops: anyOp, status: 403, code: api.CodeKeyUnavailable, title: "Key unavailable", state: keyring.StateKeyUnavailable,
		detail: because("the tenant's customer managed key is disabled or its key policy denies this service", keyMustBeUsable)},
	{kind: kindKMSAccessDenied, ops: keyProviderOps, status: 403, code: api.CodeKeyNotAccessible, title: "Key not accessible",
		detail: func(err error) string {
			return "AWS KMS refused this service access to the key (" + err.Error() + "): grant it kms:DescribeKey, kms:GenerateDataKey, kms:Encrypt and kms:Decrypt in the key policy"
		}},
	// Missing credentials are the operator's configuration, in every
	// operation.
	{kind: kindKMSNotConfigured, ops: anyOp, status: 503, code: api.CodeKMSNotConfigured, title: "KMS not configured", retryAfter: 60,
		detail: says("tenantcrypt has no AWS credentials, so it cannot call AWS KMS: the platform operator must configure them " +
			"for the service (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a shared credentials file or profile, " +
			"or an instance, task or web-identity role)")},
	{kind: kindKMSThrottled, ops: anyOp, status: 503, code: api.CodeKMSThrottled, title: "KMS throttled", retryAfter: 1,
		detail: says("the key management service is throttling requests; retry after the Retry-After delay")},
	{kind: kindKMSThrottled, ops: keyProviderOps, status: 408, code: api.CodeKMSTimeout, title: "KMS did not answer", detail: kmsTimeout},
	{kind: kindKMSUnavailable, ops: anyOp, status: 503, code: api.CodeUnavailable, title: "Service unavailable", retryAfter: 5,
		detail: says("the key management service did not answer; retry after the Retry-After delay")},
	{kind: kindKMSUnavailable, ops: keyProviderOps, status: 408, code: api.CodeKMSTimeout, title: "KMS did not answer", detail: kmsTimeout},

	// Key providers and migrations.
	{kind: kindProviderNotFound, ops: anyOp, status: 404, code: api.CodeKeyProviderNotFound, title: "Key provider not found",
		detail: says("no key provider with this fingerprint for your tenant")},
	{kind: kindProviderExists, ops: anyOp, status: 409, code: api.CodeKeyProviderExists, title: "Key provider exists", detail: errText},
	{kind: kindMalformedARN, ops: anyOp, status: 417, code: api.CodeMalformedARN, title: "Malformed ARN", detail: errText},
	{kind: kindProviderInUse, ops: anyOp, status: 424, code: api.CodeKeyProviderInUse, title: "Key provider in use", detail: errText},
	{kind: kindKeyRefused, ops: anyOp, status: 406, code: api.CodeKeyRefused, title: "Key cannot be registered",
		detail: func(err error) string {
			var rf *keyprovider.RefusedError
			errors.As(err, &rf)
			return rf.Reason
		}},
	{kind: kindMigrationRunning, ops: anyOp, status: 428, code: api.CodeMigrationNotStarted, title: "A migration is already running", detail: waitForMigration},
	{kind: kindMigrationRunning, ops: ops(opResetToDefault), status: 406, code: api.CodeMigrationNotStarted, title: "A migration is already running", detail: waitForMigration},
	{kind: kindMigrationNotStarted, ops: anyOp, status: 412, code: api.CodeMigrationNotStarted, title: "Migration could not start",
		detail: func(err error) string {
			var ns *migration.NotStartedError
			errors.As(err, &ns)
			return ns.Reason
		}},
	// The current provider does not answer (Qlik's 424), or another change
	// of the tenant came first.
	{kind: kindMigrationNotPrepared, ops: anyOp, status: 424, code: api.CodeMigrationNotStarted, title: "Migration could not be prepared",
		detail: func(err error) string {
			var pe *migration.PrepareError
			errors.As(err, &pe)
			return pe.Error()
		}},
	{kind: kindNotFound, ops: ops(opMigrate, opResetToDefault, opMigrationDetails), status: 404, code: api.CodeNoMigration, title: "No migration",
		detail: says("this tenant never had a key-provider migration")},

	// The internal KMS's rotations.
	{kind: kindRotationBusy, ops: anyOp, status: 409, code: api.CodeConflict, title: "Rotation running",
		detail: func(err error) string {
			var bz *rotation.BusyError
			errors.As(err, &bz)
			return bz.Error() + "; wait until it has finished (" + api.RouteInternalKMS.String() + " shows it) and try again"
		}},
	{kind: kindRootKeysFromEnvironment, ops: anyOp, status: 409, code: api.CodeConflict, title: "Root keys come from the environment", detail: errText},
	{kind: kindRootKeysRefused, ops: anyOp, status: 409, code: api.CodeConflict, title: "Root keys refused",
		detail: func(err error) string { return err.Error() + "; the server keeps the root keys it has" }},
	{kind: kindRootKeyFile, ops: anyOp, status: 409, code: api.CodeConflict, title: "Root key file not usable",
		detail: func(err error) string {
			var kf *rotation.KeyFileError
			errors.As(err, &kf)
			return kf.Error() + "; the server keeps the root keys it has"
		}},
	{kind: kindNotInternal, ops: anyOp, status: 409, code: api.CodeConflict, title: "Conflict", detail: errText},
	{kind: kindRotationClosed, ops: anyOp, status: 503, code: api.CodeUnavailable, title: "Service unavailable", retryAfter: 5,
		detail: says("the server is shutting down; retry after the Retry-After delay")},

	// The service's own resources.
	{kind: kindStoreUnavailable, ops: anyOp, status: 503, code: api.CodeUnavailable, title: "Service unavailable", retryAfter: 2,
		detail: says("the service's database is unavailable; retry after the Retry-After delay")},
	{kind: kindStoreUnavailable, ops: loadingOps, status: 417, code: api.CodeCouldNotLoad, title: "Could not load key providers",
		detail: says("the key providers could not be loaded; try again")},
	{kind: kindDeadline, ops: anyOp, status: 503, code: api.CodeUnavailable, title: "Service unavailable", retryAfter: 1,
		detail: says("the request timed out; retry after the Retry-After delay")},
	{kind: kindDeadline, ops: keyProviderOps, status: 408, code: api.CodeKMSTimeout, title: "KMS did not answer", detail: kmsTimeout},
}

// internalRow answers what the table does not know.
var internalRow = row{kind: kindUnknown, ops: anyOp, status: 500, code: api.CodeInternal, title: "Internal error",
	detail: says("the server failed; quote the request id to the operator")}

// rowIndex[op][kind] is the row errorTable gives the pair.
var rowIndex = func() (ix [numOperations][numKinds]*row) {
	for i := range errorTable {
		r := &errorTable[i]
		for op := range numOperations {
			if !r.ops.has(op) {
				continue
			}
			// A row naming fewer operations is the more specific one.
			if cur := ix[op][r.kind]; cur == nil || cur.ops == anyOp {
				ix[op][r.kind] = r
			}
		}
	}
	return ix
}()

// lookup returns the row for op and k.
func lookup(op operation, k kind) *row {
	if op < numOperations && k < numKinds {
		if r := rowIndex[op][k]; r != nil {
			return r
		}
	}
	return &internalRow
}

func keyNotUsable(err error) string {
	return "the key is not usable (" + kms.Outcome(err) + "): enable it in AWS KMS first"
}

func kmsTimeout(error) string { return "AWS KMS did not answer in time; try again" }

func waitForMigration(error) string {
	return "wait for the running migration to complete (see " + api.RouteMigrationDetails.Path + ")"
}

func quotaDetail(err error) string {
	var rl *keyring.RateLimitError
	errors.As(err, &rl)
	return fmt.Sprintf("the tenant's data-plane quota (%g operations per second, burst %d; a batch counts each item) is used up; retry after the Retry-After delay", rl.Quota.Rate, rl.Quota.Burst)
}

// because words a state refusal: what, why (if known), what to do.
func because(what, then string) func(error) string {
	return func(err error) string {
		if reason := stateReason(err); reason != "" {
			return what + " (" + reason + ")" + then
		}
		return what + then
	}
}

// stateReason is why the tenant is in its state: what a TenantStateError
// says, or the KMS refusal this request met.
func stateReason(err error) string {
	var se *keyring.TenantStateError
	if errors.As(err, &se) {
		return se.Reason
	}
	return keyring.KeyRefusal(err)
}

// authDetail is the verifier's public reason, which names what was wrong
// with the token but never echoes it.
func authDetail(err error) string {
	if reason := auth.Reason(err); reason != "" {
		return reason + "; a valid bearer token is required"
	}
	return "a valid bearer token is required"
}

// toHTTPError is what the client sees of err: its row for the operation
// err was raised in (opOther if none), filled from err.
func toHTTPError(err error) *httpError {
	op := opOther
	var oe *opError
	if errors.As(err, &oe) {
		op = oe.op
	}
	k := kindOf(err)
	r := lookup(op, k)
	he := &httpError{status: r.status, code: r.code, title: r.title, detail: r.detail(err), retryAfter: r.retryAfter}
	if r == &internalRow {
		return he
	}
	var re *requestError
	var ie *fault.InputError
	var rl *keyring.RateLimitError
	switch {
	case errors.As(err, &re):
		he.meta = re.meta
		if re.retryAfter > 0 {
			he.retryAfter = retrySeconds(re.retryAfter)
		}
	case errors.As(err, &ie):
		he.meta = map[string]any{"field": ie.Field}
	case errors.As(err, &rl):
		he.retryAfter = retrySeconds(rl.RetryAfter)
	}
	if r.state != keyring.StateUnknown {
		he.meta = stateMeta(r.state, err)
	}
	// A provider kind may word its key manager's answer itself (what a
	// KMIP server refused, and what the customer should change there)
	// where the key-provider API reports it.
	var pd publicDetailer
	if keyProviderOps.has(op) && errors.As(err, &pd) {
		he.detail = pd.PublicDetail()
	}
	return he
}

// publicDetailer is a failure that words its own public detail: a
// provider kind's explanation of its key manager's answer, never secret.
type publicDetailer interface {
	error
	PublicDetail() string
}

// stateMeta is the meta of a state refusal: the state, why and since when.
func stateMeta(state keyring.TenantState, err error) map[string]any {
	meta := map[string]any{"state": state.String()}
	if reason := stateReason(err); reason != "" {
		meta["reason"] = reason
	}
	var se *keyring.TenantStateError
	if errors.As(err, &se) && !se.Since.IsZero() {
		meta["since"] = se.Since.UTC().Format(time.RFC3339)
	}
	return meta
}

func retrySeconds(d time.Duration) int {
	return max(int(math.Ceil(d.Seconds())), 1)
}
