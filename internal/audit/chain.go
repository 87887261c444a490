package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"time"
)

// ErrExists is returned by Store.PutCheckpoint for a checkpoint that exists.
var ErrExists = errors.New("audit: already exists")

// GenesisHash is the PrevHash of a chain's first event: a hash of the
// chain's id, so that one chain's events cannot pass for another's.
func GenesisHash(chainID string) []byte {
	h := sha256.New()
	h.Write([]byte("tenantcrypt audit genesis v1\x00"))
	h.Write([]byte(chainID))
	return h.Sum(nil)
}

// Seal sets e.Hash: SHA-256 over a version tag, e.PrevHash and the
// canonical encoding of every other field, so that changing, removing,
// inserting or reordering any event breaks every later hash.
func Seal(e *Event) { e.Hash = eventHash(e) }

func eventHash(e *Event) []byte {
	h := sha256.New()
	h.Write([]byte("tenantcrypt audit event v1\x00"))
	h.Write(e.PrevHash)
	h.Write(canonical(e))
	return h.Sum(nil)
}

// canonical encodes an event's fields but its hashes, each
// length-prefixed, details sorted by key: an unambiguous byte string.
func canonical(e *Event) []byte {
	var b bytes.Buffer
	put := func(s string) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		b.Write(n[:])
		b.WriteString(s)
	}
	put(e.ChainID)
	put(strconv.FormatInt(e.Seq, 10))
	put(e.Time.UTC().Format(time.RFC3339Nano))
	put(e.TenantID)
	put(e.Principal)
	put(e.TokenID)
	put(e.SourceAddr)
	put(e.RequestID)
	put(e.Action)
	put(e.Target)
	put(e.Result)
	put(e.ErrorCode)
	keys := make([]string, 0, len(e.Details))
	for k := range e.Details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	put(strconv.Itoa(len(keys)))
	for _, k := range keys {
		put(k)
		put(e.Details[k])
	}
	return b.Bytes()
}
