package fault_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
)

func TestStoreError(t *testing.T) {
	cause := errors.New("connection refused")
	err := fmt.Errorf("creating tenant: %w", &fault.StoreError{Op: "inserting tenant", Err: cause})
	if !errors.Is(err, fault.ErrStoreUnavailable) {
		t.Errorf("errors.Is(%v, ErrStoreUnavailable) = false, want true", err)
	}
	if !errors.Is(err, cause) {
		t.Errorf("errors.Is(%v, cause) = false, want true", err)
	}
	if errors.Is(err, fault.ErrNotFound) {
		t.Errorf("errors.Is(%v, ErrNotFound) = true, want false", err)
	}
	var se *fault.StoreError
	if !errors.As(err, &se) || se.Op != "inserting tenant" {
		t.Errorf("errors.As: got %+v, want Op %q", se, "inserting tenant")
	}
}

func TestInputError(t *testing.T) {
	err := error(&fault.InputError{Field: "name", Reason: "is required"})
	if got, want := err.Error(), "invalid name: is required"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if errors.Is(err, fault.ErrStoreUnavailable) {
		t.Error("an InputError matches ErrStoreUnavailable")
	}
}
