package internalkms

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// migrationStore is what moving KEKs between root keys needs of a store.
type migrationStore interface {
	Store
	RootRecordStore
}

// MigrateToDevice moves the root key of the database behind st from root
// key file versions (file) into the HSM dev: it creates a device version
// above every file version (or takes over the one a crashed earlier run
// created), reseals every KEK under it, and only then records the HSM as
// the database's root key. Run it while no server uses the database
// (`tenantcrypt rootkey migrate --to pkcs11`); if it stops half way, run
// it again: KEKs are resealed one by one, each under either root, and the
// file keeps opening those not moved yet. It returns the device version
// and how many KEKs it resealed. The file is not changed; once this
// returns, it protects nothing and may be destroyed.
func MigrateToDevice(ctx context.Context, file *RootKeys, dev Device, st migrationStore) (uint32, int, error) {
	rec, err := st.RootRecord(ctx)
	if err != nil {
		return 0, 0, err
	}
	if rec.Source == RootSourcePKCS11 {
		return 0, 0, fmt.Errorf("the database's root key is already in the HSM (token %q, key label %q, version %d)", rec.Token, rec.KeyLabel, rec.Current)
	}
	counts, err := st.CountKEKsByRootVersion(ctx)
	if err != nil {
		return 0, 0, err
	}
	fileTop := slices.Max(file.Versions())
	onDevice, err := dev.ListVersions(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, v := range file.Versions() {
		if slices.Contains(onDevice, v) {
			return 0, 0, fmt.Errorf("root key version %d is both in the file and in the HSM (token %q, key label %q); "+
				"use another --pkcs11-key-label", v, dev.Token(), dev.KeyLabel())
		}
	}
	var target uint32
	if len(onDevice) > 0 && slices.Max(onDevice) > fileTop {
		// An earlier run made it; KEKs may be sealed by it already.
		target = slices.Max(onDevice)
	} else {
		target = max(fileTop, maxKey(counts), slices.Max(append(onDevice, 0))) + 1
		if err := dev.CreateVersion(ctx, target); err != nil {
			return 0, 0, err
		}
	}
	for v, n := range counts {
		if v != target && !slices.Contains(file.Versions(), v) {
			return 0, 0, fmt.Errorf("%d tenant KEK(s) are sealed by root key version %d, which the root key file lacks (it has %v): "+
				"is this the right file?", n, v, file.Versions())
		}
	}
	if err := dev.SetCurrent(ctx, target); err != nil {
		return 0, 0, err
	}
	n, err := rewrapAll(ctx, file, dev, st, target)
	if err != nil {
		return target, n, err
	}
	_, err = st.UpdateRootRecord(ctx, func(old RootRecord) (RootRecord, error) {
		if old.Source == RootSourcePKCS11 && (old.KeyLabel != dev.KeyLabel() || old.Current != target) {
			return old, errors.New("another migration recorded a different HSM root key meanwhile")
		}
		return RootRecord{Source: RootSourcePKCS11, Current: target, Token: dev.Token(), KeyLabel: dev.KeyLabel()}, nil
	})
	return target, n, err
}

// MigrateToFile moves the root key of the database behind st out of the
// HSM dev into root key file versions (file), whose current version must
// be above every version of the HSM's: it reseals every KEK under the
// file's current version and then records that the database's root key is
// a file again. Like MigrateToDevice it runs while no server uses the
// database and can be run again after a stop. The HSM's key objects stay;
// remove them once a backup of the database from before no longer
// matters.
func MigrateToFile(ctx context.Context, dev Device, file *RootKeys, st migrationStore) (int, error) {
	rec, err := st.RootRecord(ctx)
	if err != nil {
		return 0, err
	}
	if rec.Source != RootSourcePKCS11 {
		return 0, fmt.Errorf("%w: the database records no HSM root key, so there is nothing to move out of one", ErrRootNotInDevice)
	}
	if err := useRecorded(ctx, dev, rec); err != nil {
		return 0, err
	}
	counts, err := st.CountKEKsByRootVersion(ctx)
	if err != nil {
		return 0, err
	}
	onDevice, err := dev.ListVersions(ctx)
	if err != nil {
		return 0, err
	}
	target := file.Current()
	if top := max(rec.Current, slices.Max(append(onDevice, 0))); target <= top {
		return 0, fmt.Errorf("the root key file's current version %d must be above every HSM version (up to %d)", target, top)
	}
	for v, n := range counts {
		if v != target && !slices.Contains(onDevice, v) {
			return 0, fmt.Errorf("%d tenant KEK(s) are sealed by root key version %d, which is neither in the HSM nor the file's current version", n, v)
		}
	}
	for _, v := range file.Versions() {
		if v != target && slices.Contains(onDevice, v) {
			return 0, fmt.Errorf("root key version %d is both in the file and in the HSM; use a file without it", v)
		}
	}
	n, err := rewrapAll(ctx, dev, file, st, target)
	if err != nil {
		return n, err
	}
	_, err = st.UpdateRootRecord(ctx, func(old RootRecord) (RootRecord, error) {
		if old.Source != RootSourcePKCS11 {
			return old, errors.New("another migration changed the root key record meanwhile")
		}
		return RootRecord{Source: RootSourceFile, Current: target}, nil
	})
	return n, err
}

// rewrapAll reseals every KEK under target with a Service whose root opens
// prev's and next's versions and seals with next, then checks that no KEK
// is left under another version.
func rewrapAll(ctx context.Context, prev, next Root, st Store, target uint32) (int, error) {
	both := &CombinedRoot{prev: prev, next: next}
	svc := New(both, st, WithKEKCacheSize(0))
	defer svc.Close()
	n, err := svc.RewrapKEKs(ctx)
	if err != nil {
		return n, err
	}
	counts, err := st.CountKEKsByRootVersion(ctx)
	if err != nil {
		return n, err
	}
	delete(counts, target)
	if len(counts) > 0 {
		return n, fmt.Errorf("KEKs are still sealed by root key versions %v; run the migration again", slices.Sorted(maps.Keys(counts)))
	}
	return n, nil
}

func maxKey(m map[uint32]int) uint32 {
	var top uint32
	for k := range m {
		top = max(top, k)
	}
	return top
}
