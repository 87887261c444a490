package rowcodec

import (
	"fmt"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// Key provider refs are stored as their text form (kms.Ref's String); the
// stores read and write that form only through the functions here.

// InternalRefLiteral is the internal KMS's Ref as an SQL string literal,
// for a condition that must be spelled as the partial index tenants_watched
// is (a literal, not a parameter, so that the planner can use the index).
var InternalRefLiteral = "'" + kms.InternalRef().String() + "'"

// Ref is ref's stored form, the argument of a query that matches a provider
// column (the zero Ref's, "", matches none).
func Ref(ref kms.Ref) string { return ref.String() }

// RefArg is Ref for a column to write: it refuses the zero Ref, which would
// not read back. what names the row, for the error.
func (c Codec) RefArg(what string, ref kms.Ref) (string, error) {
	if ref.IsZero() {
		return "", c.errorf("%s: no key provider", what)
	}
	return ref.String(), nil
}

// ParseRef reads a stored ref. what names the row, for the error.
func (c Codec) ParseRef(what, stored string) (kms.Ref, error) {
	ref, err := kms.ParseRef(stored)
	if err != nil {
		return kms.Ref{}, c.errorf("%s: stored provider: %w", what, err)
	}
	return ref, nil
}

// ScanRef reads a row of one stored ref; a failed scan's error as it is
// (sql.ErrNoRows, pgx.ErrNoRows). what names the row, for the error.
func (c Codec) ScanRef(what string, sc Scanner) (kms.Ref, error) {
	stored, err := Value[string](sc)
	if err != nil {
		return kms.Ref{}, err
	}
	return c.ParseRef(what, stored)
}

// ScanRefCount reads a stored ref and a count.
func ScanRefCount(sc Scanner) (Count[kms.Ref], error) {
	stored, err := ScanCount[string](sc)
	if err != nil {
		return Count[kms.Ref]{}, err
	}
	ref, err := kms.ParseRef(stored.Key)
	if err != nil {
		return Count[kms.Ref]{}, fmt.Errorf("stored provider: %w", err)
	}
	return Count[kms.Ref]{Key: ref, N: stored.N}, nil
}
