package internalkms

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// RotateTenantKEK adds a new KEK version for tenantID and returns it; this
// process wraps new data keys with it at once, other processes once their
// cache entry expires (WithKEKCacheTTL). Older versions stay, so every
// existing blob still unwraps. A tenant without KEKs gets version 1.
//
// If another process rotates the same tenant at the same moment, that
// rotation satisfies this one: the newest version is returned and no second
// version is added.
func (s *Service) RotateTenantKEK(ctx context.Context, tenantID string) (newVersion uint32, err error) {
	const op = "RotateTenantKEK"
	if tenantID == "" {
		return 0, errNoTenant
	}
	if err := ctxError(ctx, op); err != nil {
		return 0, err
	}
	latest, err := s.latestKEKVersion(ctx, op, tenantID)
	if err != nil {
		return 0, err
	}
	if latest == ^uint32(0) {
		return 0, opError(op, kms.ErrUnavailable, fmt.Errorf("tenant %q has used every KEK version", tenantID))
	}
	newVersion = latest + 1
	err = s.insertKEK(ctx, op, tenantID, newVersion)
	if errors.Is(err, ErrKEKExists) {
		newVersion, err = s.latestKEKVersion(ctx, op, tenantID)
	}
	if err != nil {
		return 0, err
	}
	s.cache.forget(tenantID)
	return newVersion, nil
}

func (s *Service) latestKEKVersion(ctx context.Context, op, tenantID string) (uint32, error) {
	rows, err := s.store.KEKs(ctx, tenantID)
	if err != nil {
		return 0, opError(op, kms.ErrUnavailable, fmt.Errorf("reading KEKs of tenant %q: %w", tenantID, err))
	}
	latest := uint32(0)
	for _, r := range rows {
		latest = max(latest, r.Version)
	}
	return latest, nil
}

// maxStalledBatches is how many batches in a row RewrapKEKs accepts that
// rewrap nothing because every row conflicted. Conflicts normally mean a
// concurrent RewrapKEKs got there first, and those rows do not come back;
// rows that keep coming back mean processes disagree on the current root
// version, which must stop the job instead of spinning.
const maxStalledBatches = 10

// RewrapKEKs reseals every KEK, of every tenant, that is not sealed by the
// current root key version, and returns how many it resealed. Once it
// returns without error, no KEK needs an older root version, which can then
// be removed from the key file. The KEKs themselves do not change, so no
// data key is touched and cached KEKs stay valid.
//
// It is safe to run in several processes at once: each row is replaced only
// if still sealed by the version that was read (Store.RewrapKEK), and a row
// lost to another writer is skipped and, if still stale, picked up again by
// a later batch. On a context or store error it stops and returns the count
// so far; running it again resumes. It follows SetRootKeys: each batch seals
// under the version that is current when the batch starts.
func (s *Service) RewrapKEKs(ctx context.Context) (n int, err error) {
	return s.RewrapKEKsReporting(ctx, nil)
}

// RewrapKEKsReporting is RewrapKEKs telling progress, if not nil, after
// each batch how many KEKs the batch resealed and how many it lost to
// another writer, so that a background job can show its progress.
func (s *Service) RewrapKEKsReporting(ctx context.Context, progress func(rewrapped, lost int)) (n int, err error) {
	const op = "RewrapKEKs"
	stalled := 0
	for {
		if err := ctxError(ctx, op); err != nil {
			return n, err
		}
		cur, err := s.loadedCurrent(op)
		if err != nil {
			return n, err
		}
		rows, err := s.store.KEKsNotWrappedBy(ctx, cur, s.rewrapBatch)
		if err != nil {
			return n, opError(op, kms.ErrUnavailable, fmt.Errorf("listing KEKs to rewrap: %w", err))
		}
		if len(rows) == 0 {
			return n, nil
		}
		done := 0
		for _, row := range rows {
			ok, err := s.rewrapKEK(ctx, op, row, cur)
			if err != nil {
				if progress != nil {
					progress(done, 0)
				}
				return n, err
			}
			if ok {
				n++
				done++
			}
		}
		if progress != nil {
			progress(done, len(rows)-done)
		}
		if done > 0 {
			stalled = 0
		} else if stalled++; stalled >= maxStalledBatches {
			return n, opError(op, kms.ErrUnavailable, fmt.Errorf(
				"%d batches in a row were all rewritten concurrently to another root version than %d; do all processes load the same root keys?",
				stalled, cur))
		}
	}
}

// loadedCurrent returns the current root key version, if there is one.
func (s *Service) loadedCurrent(op string) (uint32, error) {
	var cur uint32
	err := s.root.with(func(r Root) error {
		cur = r.Current()
		if cur == 0 || !slices.Contains(r.Versions(), cur) {
			return opError(op, kms.ErrUnavailable, fmt.Errorf("current root key version %d is not loaded", cur))
		}
		return nil
	})
	return cur, err
}

// rewrapKEK reseals one row under root version cur; false means another
// writer changed the row first.
func (s *Service) rewrapKEK(ctx context.Context, op string, row KEK, cur uint32) (bool, error) {
	var sealed []byte
	err := s.root.with(func(r Root) error {
		kek, err := openKEKWith(ctx, r, row)
		if err != nil {
			return opError(op, kms.ErrUnavailable, kekOpenError(row, r, err))
		}
		defer kek.Destroy()
		if sealed, err = sealKEKWith(ctx, r, row.TenantID, row.Version, cur, kek); err != nil {
			return opError(op, kms.ErrUnavailable, fmt.Errorf("sealing KEK under root key version %d: %w", cur, err))
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	err = s.store.RewrapKEK(ctx, row.TenantID, row.Version, row.RootVersion, cur, sealed)
	if errors.Is(err, ErrKEKConflict) {
		return false, nil
	}
	if err != nil {
		return false, opError(op, kms.ErrUnavailable, fmt.Errorf("storing rewrapped KEK v%d of tenant %q: %w", row.Version, row.TenantID, err))
	}
	return true, nil
}

// RewrapDataKey reseals a data key that the internal KMS wrapped for
// tenantID (w, bound to b) under the tenant's newest KEK version, which must
// be minVersion or later: pass the version RotateTenantKEK returned, and a
// cached view of the tenant's KEKs older than that is reloaded first. The
// data key itself does not change and never leaves this package, so
// everything encrypted under it still opens.
//
// Errors: as Unwrap's (kms.ErrInvalidCiphertext for a blob that does not
// open, kms.ErrKeyNotFound for a tenant without KEKs), and kms.ErrUnavailable
// when the tenant has no KEK version minVersion or later.
func (s *Service) RewrapDataKey(ctx context.Context, tenantID string, w kms.Wrapped, b kms.Binding, minVersion uint32) (kms.Wrapped, error) {
	const op = "RewrapDataKey"
	if tenantID == "" {
		return kms.Wrapped{}, errNoTenant
	}
	if err := ctxError(ctx, op); err != nil {
		return kms.Wrapped{}, err
	}
	version, sealed, ok := parseBlob(w.Blob)
	if !ok || (w.KeyVersion != "" && w.KeyVersion != strconv.FormatUint(uint64(version), 10)) {
		return kms.Wrapped{}, invalidCiphertext(op)
	}
	set, err := s.kekSet(ctx, op, tenantID, false)
	if err != nil {
		return kms.Wrapped{}, err
	}
	if set.current < max(minVersion, version) {
		// A rotation this view missed (another process's, or a load that
		// raced RotateTenantKEK): reload once.
		s.cache.forgetIfSame(set)
		s.cache.release(set)
		if set, err = s.load(ctx, op, tenantID, false); err != nil {
			return kms.Wrapped{}, err
		}
	}
	defer s.cache.release(set)
	if set.current < minVersion {
		return kms.Wrapped{}, opError(op, kms.ErrUnavailable, fmt.Errorf("tenant %q has no KEK version %d or later", tenantID, minVersion))
	}
	kek := set.keys[version]
	if kek == nil {
		return kms.Wrapped{}, invalidCiphertext(op)
	}
	dk, ok := openDataKey(kek, tenantID, version, sealed, b)
	if !ok {
		return kms.Wrapped{}, invalidCiphertext(op)
	}
	defer dk.Destroy()
	blob, err := sealDataKey(set.keys[set.current], tenantID, set.current, dk, b)
	if err != nil {
		return kms.Wrapped{}, opError(op, kms.ErrUnavailable, fmt.Errorf("sealing data key: %w", err))
	}
	return kms.Wrapped{KeyVersion: strconv.FormatUint(uint64(set.current), 10), Blob: blob}, nil
}
