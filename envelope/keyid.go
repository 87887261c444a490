package envelope

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// KeyIDSize is the length of a data key id.
const KeyIDSize = 16

// KeyID names one data key of a tenant. Ids are random, so they never
// collide across tenants or replicas and reveal nothing.
type KeyID [KeyIDSize]byte

// NewKeyID returns a random key id.
func NewKeyID() (KeyID, error) {
	var id KeyID
	if _, err := rand.Read(id[:]); err != nil {
		return KeyID{}, fmt.Errorf("envelope: reading random key id: %w", err)
	}
	return id, nil
}

// String is the id in lowercase hex.
func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// ParseKeyID parses the hex form produced by String.
func ParseKeyID(s string) (KeyID, error) {
	var id KeyID
	if len(s) != 2*KeyIDSize {
		return KeyID{}, fmt.Errorf("envelope: key id must be %d hex characters", 2*KeyIDSize)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return KeyID{}, fmt.Errorf("envelope: key id is not hex")
	}
	return id, nil
}
