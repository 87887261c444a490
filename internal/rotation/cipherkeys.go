package rotation

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// maxStalledPasses is how many passes in a row a tenant's rewrap accepts in
// which every rewrap lost its compare-and-swap. A lost row was changed by
// another writer (a migration, another process's rewrap) and normally does
// not come back; rows that keep coming back mean something rewraps them
// back, which must stop the run instead of spinning.
const maxStalledPasses = 10

// rewrapGrace is how long a tenant's rewrap waits, once a pass found
// nothing left to move, before its last pass: time for a data key that a
// request wrapped under the old KEK version just before the rotation to be
// stored.
const rewrapGrace = time.Second

// rewrapCipherKeys moves the tenant's cipherkeys that the internal KMS
// wraps under a KEK version older than target to the tenant's newest
// version, in passes over the keys in id order: each batch is read, resealed
// (the data keys never leave the internal KMS) and stored in one transaction
// of compare-and-swaps, so that a key changed meanwhile by another writer is
// skipped, and seen as it is now by the next pass. It ends after a pass
// that finds nothing left to move, and one more rewrapGrace later.
func (s *Service) rewrapCipherKeys(ctx context.Context, tenantID string, target uint32, p *Progress) error {
	want := strconv.FormatUint(uint64(target), 10)
	unopenable := map[envelope.KeyID]bool{}
	stalled, graced := 0, false
	for {
		candidates, applied := 0, 0
		var after envelope.KeyID
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			keys, err := s.cfg.Store.CipherKeysWrappedByOtherVersion(ctx, tenantID, kms.InternalRef(), want, after, s.cfg.BatchSize)
			if err != nil {
				return &fault.StoreError{Op: "reading cipherkeys to rewrap", Err: err}
			}
			if len(keys) == 0 {
				break
			}
			after = keys[len(keys)-1].ID
			rs := make([]keyring.Rewrap, 0, len(keys))
			for _, ck := range keys {
				if unopenable[ck.ID] || newerThan(ck.KeyVersion, target) {
					// Newer: a later rotation's run moves it, if needed.
					continue
				}
				candidates++
				w, err := s.cfg.KMS.RewrapDataKey(ctx, tenantID, kms.Wrapped{KeyVersion: ck.KeyVersion, Blob: ck.Wrapped}, keyring.Binding(ck), target)
				switch {
				case errors.Is(err, kms.ErrInvalidCiphertext):
					// A damaged row: nothing it encrypted opens anyway. Leave
					// it for the operator rather than stop every other key.
					unopenable[ck.ID] = true
					p.Add(0, 0, 1)
					s.log.WarnContext(ctx, "internal KMS: a cipherkey does not open under its KEK; left as it is",
						"tenant", tenantID, "cipherkey", ck.ID.String(), "kek_version", ck.KeyVersion)
					continue
				case errors.Is(err, kms.ErrKeyNotFound):
					return fmt.Errorf("the tenant's keys were deleted during the rewrap: %w", err)
				case err != nil:
					return err
				}
				rs = append(rs, keyring.Rewrap{Old: ck, Provider: kms.InternalRef(), KeyVersion: w.KeyVersion, Wrapped: w.Blob})
			}
			if len(rs) == 0 {
				continue
			}
			n, err := s.cfg.Store.RewrapCipherKeys(ctx, rs)
			if err != nil {
				return &fault.StoreError{Op: "storing rewrapped cipherkeys", Err: err}
			}
			applied += n
			p.Add(n, len(rs)-n, 0)
		}
		if candidates == 0 {
			if graced {
				break
			}
			// A request in flight when the KEK rotated may have wrapped a
			// new key under the old version and store it after this pass:
			// one more pass after it had time to land.
			graced = true
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(rewrapGrace):
			}
			continue
		}
		if applied > 0 {
			stalled = 0
		} else if stalled++; stalled >= maxStalledPasses {
			return fmt.Errorf("%d passes in a row lost every rewrap to another writer; is another process rewrapping the tenant's keys back?", stalled)
		}
	}
	if n := len(unopenable); n > 0 {
		return fmt.Errorf("%d cipherkey(s) of the tenant do not open under their KEK (damaged rows; the server log names them) "+
			"and stay under their KEK version; every other cipherkey was moved to version %d", n, target)
	}
	return nil
}

// newerThan reports whether an internal KMS key version is above target. A
// version that does not parse is left to RewrapDataKey, which refuses it.
func newerThan(keyVersion string, target uint32) bool {
	v, err := strconv.ParseUint(keyVersion, 10, 32)
	return err == nil && uint32(v) > target
}
