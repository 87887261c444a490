package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
)

func TestErrorSentinels(t *testing.T) {
	all := []error{ErrKeyRevoked, ErrTenantLocked, ErrTenantDestroyed, ErrTenantNotFound, ErrRetryLater,
		ErrDecryptionFailed, ErrUnauthenticated, ErrForbidden, ErrNotFound}
	for _, tc := range []struct {
		status int
		code   api.Code
		want   []error
	}{
		{403, api.CodeKeyUnavailable, []error{ErrKeyRevoked}},
		{423, api.CodeTenantLocked, []error{ErrTenantLocked}},
		{410, api.CodeTenantDestroyed, []error{ErrTenantDestroyed}},
		{404, api.CodeTenantNotFound, []error{ErrTenantNotFound, ErrNotFound}},
		{404, api.CodeNotFound, []error{ErrNotFound}},
		{404, api.CodeNoMigration, []error{ErrNotFound}},
		{503, api.CodeUnavailable, []error{ErrRetryLater}},
		{503, api.CodeKMSThrottled, []error{ErrRetryLater}},
		{503, api.CodeAuditUnavailable, []error{ErrRetryLater}},
		{429, api.CodeRateLimited, []error{ErrRetryLater}},
		{502, "", []error{ErrRetryLater}},
		{400, api.CodeDecryptionFailed, []error{ErrDecryptionFailed}},
		{401, api.CodeUnauthenticated, []error{ErrUnauthenticated}},
		{403, api.CodeForbidden, []error{ErrForbidden}},
		{400, api.CodeBadRequest, nil},
		{500, api.CodeInternal, nil},
	} {
		t.Run(fmt.Sprintf("%d %s", tc.status, tc.code), func(t *testing.T) {
			var err error = fmt.Errorf("wrapped: %w", &Error{StatusCode: tc.status, Code: tc.code})
			for _, s := range all {
				want := false
				for _, w := range tc.want {
					want = want || w == s
				}
				if got := errors.Is(err, s); got != want {
					t.Errorf("errors.Is(%v) = %v, want %v", s, got, want)
				}
			}
		})
	}
}

func TestItemError(t *testing.T) {
	if ItemError(nil) != nil {
		t.Error("ItemError(nil) is not nil")
	}
	err := ItemError(&api.Error{Code: api.CodeKeyUnavailable, Title: "Key unavailable", Status: "403"})
	var e *Error
	if !errors.As(err, &e) || e.StatusCode != 403 || !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("ItemError: %#v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"5":                             5 * time.Second,
		"0":                             0,
		"-3":                            0,
		"x":                             0,
		"99999999":                      24 * time.Hour,
		"Thu, 01 Jan 2026 12:00:30 GMT": 30 * time.Second,
		"Thu, 01 Jan 2026 11:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestErrorsLeakNoKeys: a data-key answer the client cannot use does not
// show up in the error.
func TestErrorsLeakNoKeys(t *testing.T) {
	s := newFake(t)
	const secret = "c2VjcmV0LWtleS1tYXRlcmlhbC1kby1ub3QtbGVhayE="
	s.Route("POST "+dataKeysPath, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"plaintext":"%s","handle":"not a handle"}`, secret)
	})
	s.Route("POST "+resolvePath, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"plaintext":"%s", broken`, secret)
	})
	c, _ := newTestClient(t, s, "acme")
	ctx := context.Background()
	_, err1 := c.Envelope().Encrypt(ctx, []byte("x"), nil)
	_, err2 := c.DecryptDataKey(ctx, "h", nil)
	for _, err := range []error{err1, err2} {
		if err == nil {
			t.Fatal("a broken answer was accepted")
		}
		if strings.Contains(err.Error(), secret[:12]) || strings.Contains(err.Error(), "secret-key") {
			t.Errorf("error %q shows the key", err)
		}
	}
}
