package internalkms

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// RootKeys is the versioned set of 256-bit root keys that seal tenants' KEKs.
// One version is current and seals new and rewrapped KEKs; the others are
// kept only so that KEKs sealed before a rotation still open, until
// RewrapKEKs has moved them all to the current version.
//
// Root keys come from a key file (LoadOrCreateRootKeyFile) or an environment
// value (ParseRootKeys), never from the database that holds the sealed KEKs.
// A RootKeys is immutable and safe for concurrent use; it prints only its
// version numbers.
type RootKeys struct {
	current  uint32
	versions []rootVersion // ascending by version, no duplicates
}

type rootVersion struct {
	version   uint32
	key       *secret.Bytes
	createdAt time.Time
}

// Current is the version that seals new KEKs; 0 for an empty RootKeys.
func (r *RootKeys) Current() uint32 {
	if r == nil {
		return 0
	}
	return r.current
}

// Versions lists the loaded versions in ascending order, for an operator to
// check which ones KEKs can still be opened with.
func (r *RootKeys) Versions() []uint32 {
	if r == nil {
		return nil
	}
	vs := make([]uint32, len(r.versions))
	for i, v := range r.versions {
		vs[i] = v.version
	}
	return vs
}

// Destroy zeroes every key. A Service using r fails (with kms.ErrUnavailable)
// from then on, so call it only at shutdown.
func (r *RootKeys) Destroy() {
	if r == nil {
		return
	}
	for _, v := range r.versions {
		v.key.Destroy()
	}
}

// key returns version v's key, or nil if it is not loaded.
func (r *RootKeys) key(v uint32) *secret.Bytes {
	if r == nil {
		return nil
	}
	i, ok := slices.BinarySearchFunc(r.versions, v, func(rv rootVersion, v uint32) int {
		return cmpUint32(rv.version, v)
	})
	if !ok {
		return nil
	}
	return r.versions[i].key
}

func cmpUint32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// String describes r by its versions only.
//
// String and Format have value receivers so that a dereferenced RootKeys
// prints safely too: without them fmt dumps the struct by reflection, and
// for %s or %q that dump reaches into a *secret.Bytes' raw bytes.
func (r RootKeys) String() string {
	return fmt.Sprintf("internalkms.RootKeys{current: %d, versions: %v}", r.Current(), r.Versions())
}

// Format prints String for every verb, so that no formatting path, %#v and
// %x included, can reach the keys through reflection.
func (r RootKeys) Format(f fmt.State, _ rune) {
	_, _ = io.WriteString(f, r.String())
}

// newRootKeys validates versions and takes ownership of their keys; on error
// it destroys them, so that a rejected configuration leaves nothing behind.
func newRootKeys(versions []rootVersion, current uint32) (_ *RootKeys, err error) {
	defer func() {
		if err != nil {
			for _, v := range versions {
				v.key.Destroy()
			}
		}
	}()
	if len(versions) == 0 {
		return nil, errors.New("no root key versions")
	}
	versions = slices.Clone(versions)
	slices.SortFunc(versions, func(a, b rootVersion) int { return cmpUint32(a.version, b.version) })
	for i, v := range versions {
		if v.version == 0 {
			return nil, errors.New("root key version 0: versions start at 1")
		}
		if i > 0 && versions[i-1].version == v.version {
			return nil, fmt.Errorf("root key version %d appears twice", v.version)
		}
		if n := v.key.Len(); n != keySize {
			return nil, fmt.Errorf("root key version %d: key is %d bytes, want %d", v.version, n, keySize)
		}
		if subtle.ConstantTimeCompare(v.key.Reveal(), make([]byte, keySize)) == 1 {
			return nil, fmt.Errorf("root key version %d: key is all zeros", v.version)
		}
	}
	r := &RootKeys{current: current, versions: versions}
	if r.key(current) == nil {
		return nil, fmt.Errorf("current root key version %d is not among the versions %v", current, r.Versions())
	}
	return r, nil
}

// ParseRootKeys reads root keys in the form of TENANTCRYPT_ROOT_KEYS:
// comma-separated "version:key" entries, each key the standard (padded)
// base64 of 32 random bytes, for example "1:<base64>,2:<base64>". The highest
// version is current, so rotating means appending an entry.
//
// Errors name the offending entry by position and version, never by its
// key. The Go string s itself cannot be zeroed; callers should drop it
// promptly (and unset the variable if they can).
func ParseRootKeys(s string) (*RootKeys, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("internalkms: root keys: empty value; want \"1:<base64 of 32 bytes>[,2:...]\"")
	}
	var versions []rootVersion
	fail := func(err error) (*RootKeys, error) {
		for _, v := range versions {
			v.key.Destroy()
		}
		return nil, fmt.Errorf("internalkms: root keys: %w", err)
	}
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			return fail(fmt.Errorf("entry %d is empty", i+1))
		}
		vs, b64, ok := strings.Cut(entry, ":")
		if !ok {
			return fail(fmt.Errorf("entry %d has no \"version:\" prefix", i+1))
		}
		v, err := strconv.ParseUint(strings.TrimSpace(vs), 10, 32)
		if err != nil || v == 0 {
			return fail(fmt.Errorf("entry %d: version is not an integer from 1 to %d", i+1, uint32(1<<32-1)))
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil {
			clear(raw)
			// The decoder's error gives an offset only, never the input.
			return fail(fmt.Errorf("entry %d (version %d): key is not standard base64: %w", i+1, v, err))
		}
		versions = append(versions, rootVersion{version: uint32(v), key: secret.New(raw)})
	}
	current := uint32(0)
	for _, v := range versions {
		current = max(current, v.version)
	}
	r, err := newRootKeys(versions, current)
	if err != nil {
		// newRootKeys has destroyed the keys already.
		return nil, fmt.Errorf("internalkms: root keys: %w", err)
	}
	return r, nil
}
