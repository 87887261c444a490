package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
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

// kindSamples is one error of every kind, as the code raises it, with an
// internal cause wherever the kind may carry one.
func kindSamples() map[kind]error {
	cause := errors.New("dial tcp 10.0.0.5:5432: password=hunter2")
	kmsErr := func(k error) error {
		return &kms.Error{Op: "Decrypt", Region: "eu-west-1", Kind: k, Err: cause}
	}
	return map[kind]error{
		kindUnknown:                 cause,
		kindBadRequest:              badRequest(`field "arn" is required`, map[string]any{"field": "arn"}),
		kindBodyTimeout:             &requestError{kind: kindBodyTimeout},
		kindBodyTooLarge:            bodyTooLarge(1 << 20),
		kindUnsupportedMediaType:    &requestError{kind: kindUnsupportedMediaType, detail: "send the body as application/json"},
		kindRouteNotFound:           errRouteNotFound,
		kindMethodNotAllowed:        errMethodNotAllowed,
		kindFingerprintTooLong:      &requestError{kind: kindFingerprintTooLong},
		kindNoInternalKMS:           errNoInternalKMS,
		kindForbidden:               forbidden("this operation needs the role platform-admin"),
		kindRateLimited:             rateLimited(1500 * time.Millisecond),
		kindOverloaded:              errOverloaded,
		kindAuditRefused:            errAuditUnavailable(false),
		kindAuditLate:               errAuditUnavailable(true),
		kindUnauthenticated:         fmt.Errorf("verify: %w", auth.ErrUnauthenticated),
		kindInput:                   &fault.InputError{Field: "name", Reason: "is required"},
		kindTenantNotFound:          keyring.ErrTenantNotFound,
		kindTenantExists:            keyring.ErrTenantExists,
		kindTenantRetired:           keyring.ErrTenantRetired,
		kindTenantPolicy:            keyring.ErrHIPAARequiresCMK,
		kindQuota:                   &keyring.RateLimitError{TenantID: "acme", Quota: keyring.Quota{Rate: 10, Burst: 1000}, RetryAfter: 2 * time.Second},
		kindKeyUnavailable:          &keyring.TenantStateError{TenantID: "acme", State: keyring.StateKeyUnavailable, Reason: "the key is disabled"},
		kindTenantLocked:            &keyring.TenantStateError{TenantID: "acme", State: keyring.StateLocked},
		kindTenantDestroyed:         &keyring.TenantStateError{TenantID: "acme", State: keyring.StateDestroyed},
		kindDecrypt:                 keyring.ErrDecrypt,
		kindKMSKeyUnusable:          kmsErr(kms.ErrKeyDisabled),
		kindKMSKeyPendingDeletion:   kmsErr(kms.ErrKeyPendingDeletion),
		kindKMSAccessDenied:         kmsErr(kms.ErrAccessDenied),
		kindKMSNotConfigured:        kmsErr(kms.ErrNotConfigured),
		kindKMSThrottled:            kmsErr(kms.ErrThrottled),
		kindKMSUnavailable:          kmsErr(kms.ErrUnavailable),
		kindProviderNotFound:        keyprovider.ErrNotFound,
		kindProviderExists:          keyprovider.ErrExists,
		kindMalformedARN:            keyprovider.ErrMalformedARN,
		kindProviderInUse:           keyprovider.ErrInUse,
		kindKeyRefused:              &keyprovider.RefusedError{Reason: "the key is asymmetric"},
		kindMigrationRunning:        migration.ErrRunning,
		kindMigrationNotStarted:     &migration.NotStartedError{Reason: "this key provider is the tenant's current one already"},
		kindMigrationNotPrepared:    &migration.PrepareError{Err: fmt.Errorf("the current key provider does not answer: %w", kmsErr(kms.ErrUnavailable))},
		kindNotFound:                fmt.Errorf("latest migration: %w", fault.ErrNotFound),
		kindRotationBusy:            &rotation.BusyError{},
		kindRootKeysFromEnvironment: rotation.ErrRootKeysFromEnvironment,
		kindRootKeysRefused:         fmt.Errorf("internalkms: %w: the new root keys lack version 1", rotation.ErrRootKeysRefused),
		kindRootKeyFile:             &rotation.KeyFileError{Op: "loading", Path: "/keys.json", Err: errors.New("has mode 0644")},
		kindNotInternal:             rotation.ErrNotInternal,
		kindRotationClosed:          rotation.ErrClosed,
		kindStoreUnavailable:        &fault.StoreError{Op: "reading key providers", Err: cause},
		kindDeadline:                fmt.Errorf("describe: %w", context.DeadlineExceeded),
	}
}

func TestKindOf(t *testing.T) {
	samples := kindSamples()
	for k := range numKinds {
		if k.String() == "" {
			t.Errorf("kind %d has no name in kindNames", k)
		}
		err, ok := samples[k]
		if !ok {
			t.Errorf("kind %s has no sample error", k)
			continue
		}
		if got := kindOf(err); got != k {
			t.Errorf("kindOf(%v) = %s, want %s", err, got, k)
		}
		// An operation's wrapper changes nothing of the kind.
		if got := kindOf(&opError{op: opMigrate, err: err}); got != k {
			t.Errorf("kindOf(opError(%v)) = %s, want %s", err, got, k)
		}
	}
	// Wrappers are looked at before their causes.
	for _, tt := range []struct {
		name string
		err  error
		want kind
	}{
		{"prepare error wrapping a missing tenant", &migration.PrepareError{Err: keyring.ErrTenantNotFound}, kindMigrationNotPrepared},
		{"kms unavailable wrapping a deadline", &kms.Error{Op: "Decrypt", Kind: kms.ErrUnavailable, Err: context.DeadlineExceeded}, kindKMSUnavailable},
		{"store error wrapping a deadline", &fault.StoreError{Op: "reading", Err: context.DeadlineExceeded}, kindStoreUnavailable},
		{"kms not found", &kms.Error{Op: "Unwrap", Kind: kms.ErrKeyNotFound}, kindKMSKeyUnusable},
		{"active tenant state", &keyring.TenantStateError{State: keyring.StateActive}, kindUnknown},
	} {
		if got := kindOf(tt.err); got != tt.want {
			t.Errorf("%s: kindOf = %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestErrorTable pins the answer of every kind in every operation: the
// cases of one kind split the operations between them.
func TestErrorTable(t *testing.T) {
	others := anyOp &^ keyProviderOps
	tests := []struct {
		kind   kind
		ops    opSet
		status int
		code   api.Code
	}{
		{kindUnknown, anyOp, 500, api.CodeInternal},
		{kindBadRequest, anyOp, 400, api.CodeBadRequest},
		{kindBodyTimeout, anyOp, 408, api.CodeBadRequest},
		{kindBodyTooLarge, anyOp, 413, api.CodeBodyTooLarge},
		{kindUnsupportedMediaType, anyOp, 415, api.CodeUnsupportedMediaType},
		{kindRouteNotFound, anyOp, 404, api.CodeNotFound},
		{kindMethodNotAllowed, anyOp, 405, api.CodeMethodNotAllowed},
		{kindFingerprintTooLong, anyOp, 414, api.CodeFingerprintTooLong},
		{kindNoInternalKMS, anyOp, 404, api.CodeNotFound},
		{kindForbidden, anyOp, 403, api.CodeForbidden},
		{kindRateLimited, anyOp, 429, api.CodeRateLimited},
		{kindOverloaded, anyOp, 503, api.CodeUnavailable},
		{kindAuditRefused, anyOp, 503, api.CodeAuditUnavailable},
		{kindAuditLate, anyOp, 503, api.CodeAuditUnavailable},
		{kindUnauthenticated, anyOp, 401, api.CodeUnauthenticated},
		{kindInput, anyOp, 400, api.CodeBadRequest},
		{kindTenantNotFound, anyOp, 404, api.CodeTenantNotFound},
		{kindTenantExists, anyOp, 409, api.CodeTenantExists},
		{kindTenantRetired, anyOp, 409, api.CodeTenantIDRetired},
		{kindTenantPolicy, anyOp, 409, api.CodeConflict},
		{kindQuota, anyOp, 429, api.CodeRateLimited},
		{kindKeyUnavailable, anyOp, 403, api.CodeKeyUnavailable},
		{kindTenantLocked, anyOp, 423, api.CodeTenantLocked},
		{kindTenantDestroyed, anyOp, 410, api.CodeTenantDestroyed},
		{kindDecrypt, anyOp, 400, api.CodeDecryptionFailed},
		// On use, a KMS refusal is the tenant's state; registering or
		// testing a key, the key's answer (QLIK-API.md).
		{kindKMSKeyUnusable, others, 403, api.CodeKeyUnavailable},
		{kindKMSKeyUnusable, keyProviderOps, 406, api.CodeKeyRefused},
		{kindKMSKeyPendingDeletion, others, 423, api.CodeTenantLocked},
		{kindKMSKeyPendingDeletion, keyProviderOps, 406, api.CodeKeyRefused},
		{kindKMSAccessDenied, others, 403, api.CodeKeyUnavailable},
		{kindKMSAccessDenied, keyProviderOps, 403, api.CodeKeyNotAccessible},
		// Missing credentials: the operator's configuration, everywhere.
		{kindKMSNotConfigured, anyOp, 503, api.CodeKMSNotConfigured},
		// A KMS that does not answer: 408 in the key-provider API.
		{kindKMSThrottled, others, 503, api.CodeKMSThrottled},
		{kindKMSThrottled, keyProviderOps, 408, api.CodeKMSTimeout},
		{kindKMSUnavailable, others, 503, api.CodeUnavailable},
		{kindKMSUnavailable, keyProviderOps, 408, api.CodeKMSTimeout},
		{kindDeadline, others, 503, api.CodeUnavailable},
		{kindDeadline, keyProviderOps, 408, api.CodeKMSTimeout},
		{kindProviderNotFound, anyOp, 404, api.CodeKeyProviderNotFound},
		{kindProviderExists, anyOp, 409, api.CodeKeyProviderExists},
		{kindMalformedARN, anyOp, 417, api.CodeMalformedARN},
		{kindProviderInUse, anyOp, 424, api.CodeKeyProviderInUse},
		{kindKeyRefused, anyOp, 406, api.CodeKeyRefused},
		// A second migrate is 428, a reset while one runs 406.
		{kindMigrationRunning, anyOp &^ ops(opResetToDefault), 428, api.CodeMigrationNotStarted},
		{kindMigrationRunning, ops(opResetToDefault), 406, api.CodeMigrationNotStarted},
		{kindMigrationNotStarted, anyOp, 412, api.CodeMigrationNotStarted},
		// The current provider does not answer: 424.
		{kindMigrationNotPrepared, anyOp, 424, api.CodeMigrationNotStarted},
		{kindNotFound, ops(opMigrate, opResetToDefault, opMigrationDetails), 404, api.CodeNoMigration},
		{kindNotFound, anyOp &^ ops(opMigrate, opResetToDefault, opMigrationDetails), 500, api.CodeInternal},
		{kindRotationBusy, anyOp, 409, api.CodeConflict},
		{kindRootKeysFromEnvironment, anyOp, 409, api.CodeConflict},
		{kindRootKeysRefused, anyOp, 409, api.CodeConflict},
		{kindRootKeyFile, anyOp, 409, api.CodeConflict},
		{kindNotInternal, anyOp, 409, api.CodeConflict},
		{kindRotationClosed, anyOp, 503, api.CodeUnavailable},
		// A failed database: Qlik's 417 where key providers are read.
		{kindStoreUnavailable, anyOp &^ loadingOps, 503, api.CodeUnavailable},
		{kindStoreUnavailable, loadingOps, 417, api.CodeCouldNotLoad},
	}
	covered := map[kind]opSet{}
	samples := kindSamples()
	for _, tt := range tests {
		if covered[tt.kind]&tt.ops != 0 {
			t.Errorf("kind %s: operations %b are pinned twice", tt.kind, covered[tt.kind]&tt.ops)
		}
		covered[tt.kind] |= tt.ops
		for op := range numOperations {
			if !tt.ops.has(op) {
				continue
			}
			t.Run(fmt.Sprintf("%s/%s", op, tt.kind), func(t *testing.T) {
				he := toHTTPError(&opError{op: op, err: samples[tt.kind]})
				if he.status != tt.status || he.code != tt.code {
					t.Errorf("got %d %s, want %d %s", he.status, he.code, tt.status, tt.code)
				}
			})
		}
	}
	for k := range numKinds {
		if covered[k] != anyOp {
			t.Errorf("kind %s: operations %b are not pinned", k, anyOp&^covered[k])
		}
	}
}

// TestErrorTableAnswers checks what every cell of the table tells the
// client: a title and a detail, Retry-After exactly on 429 and 503, the
// tenant's state in meta on state refusals, and never an internal cause.
func TestErrorTableAnswers(t *testing.T) {
	samples := kindSamples()
	for op := range numOperations {
		for k := range numKinds {
			he := toHTTPError(&opError{op: op, err: samples[k]})
			name := fmt.Sprintf("%s/%s", op, k)
			ae := he.apiError()
			if ae.Title == "" || ae.Detail == "" || ae.Code == "" {
				t.Errorf("%s: code %q, title %q, detail %q: all must tell the client something", name, ae.Code, ae.Title, ae.Detail)
			}
			if he.status < 400 || he.status > 599 {
				t.Errorf("%s: status %d is not an error", name, he.status)
			}
			wantRetry := he.status == 429 || he.status == 503
			if got := he.retryAfter > 0; got != wantRetry {
				t.Errorf("%s: status %d with Retry-After %d", name, he.status, he.retryAfter)
			}
			for _, leak := range []string{"hunter2", "10.0.0.5"} {
				if s := fmt.Sprint(*ae); strings.Contains(s, leak) && !quotesKMS(op, k) {
					t.Errorf("%s: the client sees the internal cause: %s", name, s)
				}
			}
			switch he.code {
			case api.CodeKeyUnavailable, api.CodeTenantLocked, api.CodeTenantDestroyed:
				if he.meta["state"] == nil {
					t.Errorf("%s: a state refusal without meta.state: %v", name, he.meta)
				}
			}
		}
	}
}

// quotesKMS reports the answers whose detail quotes the KMS's own error on
// purpose: the key's owner needs what AWS KMS refused and why (access
// denied to which principal; the current provider's failure).
func quotesKMS(op operation, k kind) bool {
	return k == kindMigrationNotPrepared || k == kindKMSAccessDenied && keyProviderOps.has(op)
}

// TestErrorTableRows checks the table itself: each row answers in at least
// one operation (none is shadowed), and no two rows claim the same
// operation and kind at the same level of detail.
func TestErrorTableRows(t *testing.T) {
	used := map[*row]bool{}
	for op := range numOperations {
		for k := range numKinds {
			used[lookup(op, k)] = true
		}
	}
	for i := range errorTable {
		r := &errorTable[i]
		if !used[r] {
			t.Errorf("row %d (kind %s, %s) answers in no operation", i, r.kind, r.title)
		}
		for j := range i {
			o := &errorTable[j]
			if o.kind == r.kind && o.ops&r.ops != 0 && (o.ops == anyOp) == (r.ops == anyOp) {
				t.Errorf("rows %d and %d both answer kind %s in operations %b", j, i, r.kind, o.ops&r.ops)
			}
		}
	}
}

func TestErrorTableDetails(t *testing.T) {
	samples := kindSamples()
	tests := []struct {
		op   operation
		kind kind
		want string
	}{
		{opOther, kindKeyUnavailable, "the tenant's customer managed key is disabled or its key policy denies this service (the key is disabled); the data stays unreadable"},
		{opOther, kindKMSKeyUnusable, "(the key management service in eu-west-1 refused it: the key is disabled (on Decrypt))"},
		{opRegisterKeyProvider, kindKMSKeyUnusable, "the key is not usable ("},
		{opRegisterKeyProvider, kindKeyRefused, "the key is asymmetric"},
		{opMigrate, kindMigrationNotPrepared, "the current key provider does not answer"},
		{opOther, kindQuota, "(10 operations per second, burst 1000; a batch counts each item)"},
		{opOther, kindRotationBusy, "wait until it has finished (GET /api/v1/internal-kms shows it)"},
		{opOther, kindBadRequest, `field "arn" is required`},
		{opOther, kindInput, "invalid name: is required"},
	}
	for _, tt := range tests {
		he := toHTTPError(&opError{op: tt.op, err: samples[tt.kind]})
		if !strings.Contains(he.detail, tt.want) {
			t.Errorf("%s/%s: detail %q, want it to say %q", tt.op, tt.kind, he.detail, tt.want)
		}
	}
	he := toHTTPError(samples[kindKMSKeyPendingDeletion])
	if got, want := he.meta["state"], "locked"; got != want {
		t.Errorf("pending deletion on use: meta.state %v, want %v", got, want)
	}
	if he := toHTTPError(samples[kindQuota]); he.retryAfter != 2 {
		t.Errorf("quota: Retry-After %d, want the error's 2", he.retryAfter)
	}
	if he := toHTTPError(samples[kindInput]); he.meta["field"] != "name" {
		t.Errorf("input: meta %v, want field name", he.meta)
	}
}
