package internalkms

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
)

// Device is a Root held in an HSM (package internalkms/pkcs11): each
// version is a key object inside the device that never leaves it, and which
// version is current is recorded in the database (RootRecordStore), so that
// every process sharing the device and the database agrees on it.
type Device interface {
	Root
	// Token and KeyLabel name where the versions are, for the record and
	// for error messages.
	Token() string
	KeyLabel() string
	// ListVersions searches the device for every version's key object.
	ListVersions(ctx context.Context) ([]uint32, error)
	// CreateVersion generates version v inside the device. Errors:
	// ErrRootVersionExists.
	CreateVersion(ctx context.Context, v uint32) error
	// SetCurrent makes v, which must exist in the device, the version that
	// seals. Errors: ErrRootVersionMissing.
	SetCurrent(ctx context.Context, v uint32) error
}

// Errors of the device functions.
var (
	// ErrRootVersionExists: the device already has a key object for that
	// version.
	ErrRootVersionExists = errors.New("root key version exists already")
	// ErrRootInDevice: the database records that its root key is in an
	// HSM, and the process was started without one.
	ErrRootInDevice = errors.New("the internal KMS root key of this database is in an HSM")
	// ErrRootNotInDevice: the database's KEKs are sealed by a root key
	// file (or TENANTCRYPT_ROOT_KEYS), and the process was started with an
	// HSM; `tenantcrypt rootkey migrate` moves them.
	ErrRootNotInDevice = errors.New("the internal KMS root key of this database is not in an HSM")
)

// rootRecordKEKStore is what the device functions need of a store.
type rootRecordKEKStore interface {
	RootRecordStore
	CountKEKsByRootVersion(ctx context.Context) (map[uint32]int, error)
}

// CheckFileRoot is the check a process that loads file root keys (or
// TENANTCRYPT_ROOT_KEYS) makes at start, before it loads or creates them:
// a database whose root key is in an HSM refuses it (ErrRootInDevice, with
// the token and key label to give), so that such a start changes nothing.
func CheckFileRoot(ctx context.Context, st RootRecordStore) error {
	rec, err := st.RootRecord(ctx)
	if err != nil {
		return err
	}
	if rec.Source == RootSourcePKCS11 {
		return fmt.Errorf("%w (PKCS#11 token %q, key label %q, current version %d); start with --pkcs11-module, --pkcs11-token, "+
			"--pkcs11-key-label and --pkcs11-pin-file (or TENANTCRYPT_PKCS11_PIN), or move it back to a key file with "+
			"`tenantcrypt rootkey migrate --to file`", ErrRootInDevice, rec.Token, rec.KeyLabel, rec.Current)
	}
	return nil
}

// OpenDevice prepares dev as the root key of the database behind st, at
// start. If the database records an HSM root key, dev must be that one
// (same key label, the current version present), and its recorded version
// becomes current. On the very first start (nothing recorded, no KEK yet)
// it creates version 1 in the device, or adopts a version 1 that is there
// already, and records it; the database's lock makes replicas that start
// together create it once. A database whose KEKs a root key file seals is
// refused with ErrRootNotInDevice: migrate it first. A refused start
// changes nothing.
func OpenDevice(ctx context.Context, dev Device, st rootRecordKEKStore) (RootRecord, error) {
	rec, err := st.RootRecord(ctx)
	if err != nil {
		return RootRecord{}, err
	}
	if rec.Source == RootSourcePKCS11 {
		return rec, useRecorded(ctx, dev, rec)
	}
	counts, err := st.CountKEKsByRootVersion(ctx)
	if err != nil {
		return RootRecord{}, err
	}
	if n := total(counts); n > 0 {
		return RootRecord{}, fmt.Errorf("%w: %d tenant KEK(s) are sealed by a root key file or TENANTCRYPT_ROOT_KEYS (versions %v); "+
			"move them into the HSM with `tenantcrypt rootkey migrate --to pkcs11` (see docs/operations.md) before starting with the HSM",
			ErrRootNotInDevice, n, slices.Sorted(maps.Keys(counts)))
	}
	return st.UpdateRootRecord(ctx, func(rec RootRecord) (RootRecord, error) {
		if rec.Source == RootSourcePKCS11 {
			// Another replica won the race.
			return rec, useRecorded(ctx, dev, rec)
		}
		err := dev.CreateVersion(ctx, 1)
		if err != nil && !errors.Is(err, ErrRootVersionExists) {
			return rec, err
		}
		if err := dev.SetCurrent(ctx, 1); err != nil {
			return rec, err
		}
		return RootRecord{Source: RootSourcePKCS11, Current: 1, Token: dev.Token(), KeyLabel: dev.KeyLabel()}, nil
	})
}

func useRecorded(ctx context.Context, dev Device, rec RootRecord) error {
	if rec.KeyLabel != dev.KeyLabel() {
		return fmt.Errorf("the database's root key is the HSM key labelled %q (token %q), not %q: check --pkcs11-key-label",
			rec.KeyLabel, rec.Token, dev.KeyLabel())
	}
	if err := dev.SetCurrent(ctx, rec.Current); err != nil {
		return fmt.Errorf("the database's current root key version %d is not usable in HSM token %q (is this the right token?): %w",
			rec.Current, dev.Token(), err)
	}
	return nil
}

// ReloadDevice makes the version the database records current in dev, for
// a process after another one (or `tenantcrypt rootkey rotate`) rotated the
// root key. Errors: ErrRootNotInDevice if the database records no HSM.
func ReloadDevice(ctx context.Context, dev Device, st RootRecordStore) (RootRecord, error) {
	rec, err := st.RootRecord(ctx)
	if err != nil {
		return RootRecord{}, err
	}
	if rec.Source != RootSourcePKCS11 {
		return RootRecord{}, fmt.Errorf("%w: the database records no HSM root key", ErrRootNotInDevice)
	}
	return rec, useRecorded(ctx, dev, rec)
}

// RotateDevice creates the next root key version in dev, makes it current
// and records it, under the database's lock, so that two rotations at once
// make two versions one after the other. Then RewrapKEKs moves every KEK
// to it, and other processes pick it up with ReloadDevice (until then they
// keep sealing with the previous version, which stays valid, and open
// every version, since all of them are in the shared device).
func RotateDevice(ctx context.Context, dev Device, st RootRecordStore) (uint32, error) {
	rec, err := st.UpdateRootRecord(ctx, func(rec RootRecord) (RootRecord, error) {
		if rec.Source != RootSourcePKCS11 {
			return rec, fmt.Errorf("%w: the database records no HSM root key", ErrRootNotInDevice)
		}
		if err := useRecorded(ctx, dev, rec); err != nil {
			return rec, err
		}
		if rec.Current == math.MaxUint32 {
			return rec, fmt.Errorf("no root key version left after %d", rec.Current)
		}
		next := rec.Current + 1
		// A version left by a rotation that crashed before recording it is
		// taken over: the device made it, nothing sealed with it yet.
		if err := dev.CreateVersion(ctx, next); err != nil && !errors.Is(err, ErrRootVersionExists) {
			return rec, err
		}
		if err := dev.SetCurrent(ctx, next); err != nil {
			return rec, err
		}
		rec.Current = next
		return rec, nil
	})
	if err != nil {
		return 0, err
	}
	return rec.Current, nil
}

func total(counts map[uint32]int) int {
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}
