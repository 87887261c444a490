package internalkms

import (
	"bytes"
	"cmp"
	"context"
	"slices"
	"sync"
)

// memStore is a Store in memory, for this package's tests only; the real
// stores live in internal/store and pass storetest.
type memStore struct {
	mu   sync.Mutex
	rows map[string][]KEK // by tenant, ascending version

	// Counters and a hook for tests, guarded by mu.
	reads, inserts, insertConflicts int
	// beforeRewrap runs (without mu) before RewrapKEK compares, so a test
	// can make another writer win the race.
	beforeRewrap func(tenantID string, version uint32)
}

var _ Store = (*memStore)(nil)

func newMemStore() *memStore { return &memStore{rows: make(map[string][]KEK)} }

func clone(k KEK) KEK {
	k.Wrapped = bytes.Clone(k.Wrapped)
	return k
}

func (m *memStore) KEKs(ctx context.Context, tenantID string) ([]KEK, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	out := []KEK{}
	for _, k := range m.rows[tenantID] {
		out = append(out, clone(k))
	}
	return out, nil
}

func (m *memStore) InsertKEK(ctx context.Context, k KEK) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rows := m.rows[k.TenantID]
	if slices.ContainsFunc(rows, func(r KEK) bool { return r.Version == k.Version }) {
		m.insertConflicts++
		return ErrKEKExists
	}
	m.inserts++
	rows = append(rows, clone(k))
	slices.SortFunc(rows, func(a, b KEK) int { return cmp.Compare(a.Version, b.Version) })
	m.rows[k.TenantID] = rows
	return nil
}

func (m *memStore) RewrapKEK(ctx context.Context, tenantID string, version, oldRoot, newRoot uint32, wrapped []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	hook := m.beforeRewrap
	m.mu.Unlock()
	if hook != nil {
		hook(tenantID, version)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, r := range m.rows[tenantID] {
		if r.Version == version {
			if r.RootVersion != oldRoot {
				return ErrKEKConflict
			}
			m.rows[tenantID][i].RootVersion = newRoot
			m.rows[tenantID][i].Wrapped = bytes.Clone(wrapped)
			return nil
		}
	}
	return ErrKEKConflict
}

func (m *memStore) KEKsNotWrappedBy(ctx context.Context, rootVersion uint32, limit int) ([]KEK, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	tenants := make([]string, 0, len(m.rows))
	for t := range m.rows {
		tenants = append(tenants, t)
	}
	slices.Sort(tenants)
	out := []KEK{}
	for _, t := range tenants {
		for _, k := range m.rows[t] {
			if len(out) == limit {
				return out, nil
			}
			if k.RootVersion != rootVersion {
				out = append(out, clone(k))
			}
		}
	}
	return out, nil
}

// deleteTenant is what the keyring's Store.DeleteTenant does to KEKs.
func (m *memStore) deleteTenant(tenantID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.rows, tenantID)
}

// all returns every row, for assertions.
func (m *memStore) all() []KEK {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []KEK
	for _, rows := range m.rows {
		for _, k := range rows {
			out = append(out, clone(k))
		}
	}
	return out
}

// set replaces a row, to simulate tampering or another writer.
func (m *memStore) set(k KEK) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, r := range m.rows[k.TenantID] {
		if r.Version == k.Version {
			m.rows[k.TenantID][i] = clone(k)
		}
	}
}

func (m *memStore) counts() (reads, inserts, conflicts int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reads, m.inserts, m.insertConflicts
}

func (m *memStore) CountKEKsByRootVersion(ctx context.Context) (map[uint32]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	counts := map[uint32]int{}
	for _, rows := range m.rows {
		for _, k := range rows {
			counts[k.RootVersion]++
		}
	}
	return counts, nil
}
