package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// TestErrorMapping pins the one mapping from errors to what clients see.
func TestErrorMapping(t *testing.T) {
	secretCause := errors.New("pq: connection to 10.0.0.5 refused, password=hunter2")
	tests := []struct {
		name       string
		err        error
		status     int
		code       api.Code
		retryAfter bool
	}{
		{"unauthenticated", fmt.Errorf("x: %w", auth.ErrUnauthenticated), 401, api.CodeUnauthenticated, false},
		{"tenant not found", keyring.ErrTenantNotFound, 404, api.CodeTenantNotFound, false},
		{"tenant exists", keyring.ErrTenantExists, 409, api.CodeTenantExists, false},
		{"decrypt", keyring.ErrDecrypt, 400, api.CodeDecryptionFailed, false},
		{"input", &fault.InputError{Field: "id", Reason: "bad"}, 400, api.CodeBadRequest, false},
		{"hipaa", keyring.ErrHIPAARequiresCMK, 409, api.CodeConflict, false},
		{"business cmk", keyring.ErrEditionForbidsCMK, 409, api.CodeConflict, false},
		{"key unavailable state", &keyring.TenantStateError{State: keyring.StateKeyUnavailable}, 403, api.CodeKeyUnavailable, false},
		{"locked state", &keyring.TenantStateError{State: keyring.StateLocked}, 423, api.CodeTenantLocked, false},
		{"destroyed state", &keyring.TenantStateError{State: keyring.StateDestroyed}, 410, api.CodeTenantDestroyed, false},
		{"kms disabled", &kms.Error{Op: "Unwrap", Kind: kms.ErrKeyDisabled}, 403, api.CodeKeyUnavailable, false},
		{"kms access denied", &kms.Error{Op: "Unwrap", Kind: kms.ErrAccessDenied}, 403, api.CodeKeyUnavailable, false},
		{"kms pending deletion", &kms.Error{Op: "Unwrap", Kind: kms.ErrKeyPendingDeletion}, 423, api.CodeTenantLocked, false},
		// A key not found on use is unavailable until the key monitor,
		// asking the key's own region, declares the tenant destroyed.
		{"kms not found", &kms.Error{Op: "Unwrap", Kind: kms.ErrKeyNotFound}, 403, api.CodeKeyUnavailable, false},
		{"kms throttled", &kms.Error{Op: "Unwrap", Kind: kms.ErrThrottled}, 503, api.CodeKMSThrottled, true},
		{"kms unavailable", &kms.Error{Op: "Unwrap", Kind: kms.ErrUnavailable, Err: secretCause}, 503, api.CodeUnavailable, true},
		{"database down", &fault.StoreError{Op: "reading tenant", Err: secretCause}, 503, api.CodeUnavailable, true},
		{"deadline", context.DeadlineExceeded, 503, api.CodeUnavailable, true},
		{"anything else", secretCause, 500, api.CodeInternal, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			he := toHTTPError(tt.err)
			if he.status != tt.status || he.code != tt.code {
				t.Errorf("got %d %s, want %d %s", he.status, he.code, tt.status, tt.code)
			}
			if got := he.retryAfter > 0; got != tt.retryAfter {
				t.Errorf("Retry-After set = %v, want %v", got, tt.retryAfter)
			}
			ae := he.apiError()
			if ae.Title == "" || ae.Detail == "" {
				t.Errorf("title %q, detail %q: both must tell the client something", ae.Title, ae.Detail)
			}
			for _, leak := range []string{"hunter2", "10.0.0.5"} {
				if s := fmt.Sprint(*ae); strings.Contains(s, leak) {
					t.Errorf("the client sees the internal cause: %s", s)
				}
			}
		})
	}
}
