package rowcodec

import (
	"fmt"

	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
)

// Count is a row of a "SELECT key, COUNT(*) … GROUP BY key" query.
type Count[K comparable] struct {
	Key K
	N   int
}

// CountMap returns counts as a map; an empty map if there are none.
func CountMap[K comparable](counts []Count[K]) map[K]int {
	m := make(map[K]int, len(counts))
	for _, c := range counts {
		m[c.Key] = c.N
	}
	return m
}

// The Scan…Count functions read a row of a key and a count. Their errors do
// not name the store: the stores wrap them with what they were counting.

// ScanCount reads a key as it is stored.
func ScanCount[K comparable](sc Scanner) (Count[K], error) {
	var c Count[K]
	var n int64
	if err := sc.Scan(&c.Key, &n); err != nil {
		return Count[K]{}, err
	}
	c.N = int(n)
	return c, nil
}

// ScanTenantStateCount reads a tenant state (its String form) and a count.
func ScanTenantStateCount(sc Scanner) (Count[keyring.TenantState], error) {
	stored, err := ScanCount[string](sc)
	if err != nil {
		return Count[keyring.TenantState]{}, err
	}
	state, err := keyring.ParseTenantState(stored.Key)
	if err != nil {
		return Count[keyring.TenantState]{}, fmt.Errorf("stored state: %w", err)
	}
	return Count[keyring.TenantState]{Key: state, N: stored.N}, nil
}

// ScanRootVersionCount reads a root key version (a bigint) and a count.
func ScanRootVersionCount(sc Scanner) (Count[uint32], error) {
	stored, err := ScanCount[int64](sc)
	if err != nil {
		return Count[uint32]{}, err
	}
	if stored.Key < 0 || stored.Key > 1<<32-1 {
		return Count[uint32]{}, fmt.Errorf("root version %d out of range", stored.Key)
	}
	return Count[uint32]{Key: uint32(stored.Key), N: stored.N}, nil
}
