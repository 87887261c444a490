package testkms

// Rotation of a key's material, as AWS KMS rotates a customer managed key.
//
// What local-kms (the version in go.mod) does about rotation, read from its
// source (src/cmk/aes_key.go, aes_encryption.go, src/data/database_key.go,
// src/handler):
//
//   - A symmetric key holds a list of backing keys (a seed file's
//     BackingKeys may give any number). Encrypt and GenerateDataKey use the
//     last one and write its index into the blob, as 4 bytes (little-endian)
//     after the key ARN; Decrypt uses the backing key the blob names. So a
//     blob made before a rotation decrypts after it, as in AWS, whose blobs
//     name their backing key too.
//   - EnableKeyRotation, DisableKeyRotation and GetKeyRotationStatus work
//     for symmetric keys. Enabling sets the key's next rotation one year
//     ahead (RotationPeriodInDays is ignored); GetKeyRotationStatus answers
//     KeyRotationEnabled only.
//   - Automatic rotation is real but slow: the first time a key is loaded
//     after its next rotation date, local-kms appends a random backing key.
//     Its random material also differs in each Region's server, where AWS
//     rotates a multi-Region key's primary and replicas together.
//   - RotateKeyOnDemand and ListKeyRotations are not implemented: HTTP 501
//     (TestUnimplemented pins RotateKeyOnDemand).
//
// So RotateKey rotates out of band: the wrapper (./localkms) appends the
// backing key in local-kms's own database while the server runs, and
// leaves the rest (which backing key Encrypt uses, which one Decrypt uses)
// to local-kms.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// RotateKey rotates the symmetric key keyID of s the way AWS KMS rotates a
// key on its automatic rotation date or on RotateKeyOnDemand: the key gets
// a new backing key, which every later Encrypt and GenerateDataKey uses,
// and keeps its id, ARN, state and all its older backing keys, which
// Decrypt goes on using for the blobs they made. It returns the index of
// the new backing key, the one BlobBackingKey reads from new blobs (the
// seeded material is 0).
//
// The new material is fixed by keyID and the index, so rotating every
// Region's server of a multi-Region key (StartPair's) keeps their material
// equal, as AWS does for a multi-Region key's primary and replicas.
//
// local-kms has no RotateKeyOnDemand, and its automatic rotation comes a
// year after EnableKeyRotation (see the top of this file); so RotateKey
// asks the running server to add the backing key to its database (an
// action of the wrapper, TestKMS.AddBackingKey). The calls in progress
// finish first and the next ones wait for it: as in AWS, no call fails
// because of the rotation, and every call sees the key wholly before or
// wholly after it.
func (s *Server) RotateKey(t testing.TB, keyID string) int {
	t.Helper()
	if s.URL == "" {
		t.Fatalf("testkms: RotateKey on a server that is not running")
	}
	arn := s.ARN(keyID)
	// The first call (Index -1) learns how many backing keys the key has.
	index := -1
	for range 2 {
		m := backingKeyMaterial(keyID, max(index, 0))
		status, body, err := s.addBackingKey(arn, index, m)
		if err != nil {
			t.Fatalf("testkms: rotating %s in %s: %v", keyID, s.Region, err)
		}
		var answer struct{ Index, BackingKeys int }
		if err := json.Unmarshal(body, &answer); err != nil {
			t.Fatalf("testkms: rotating %s in %s: %d %s", keyID, s.Region, status, body)
		}
		switch {
		case status == http.StatusOK:
			return answer.Index
		case status == http.StatusConflict && index < 0:
			index = answer.BackingKeys
		default:
			t.Fatalf("testkms: rotating %s in %s: %d %s", keyID, s.Region, status, body)
		}
	}
	t.Fatalf("testkms: rotating %s in %s: another rotation came in between", keyID, s.Region)
	return 0
}

// addBackingKey sends the wrapper's TestKMS.AddBackingKey action.
func (s *Server) addBackingKey(arn string, index int, material [32]byte) (int, []byte, error) {
	body, err := json.Marshal(map[string]any{"KeyArn": arn, "Index": index, "Material": hex.EncodeToString(material[:])})
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequest(http.MethodPost, s.URL+"/", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "TestKMS.AddBackingKey")
	c := &http.Client{Timeout: startTimeout, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// BlobBackingKey returns the index of the backing key that made a
// local-kms ciphertext blob of a symmetric key (0 for the seeded material,
// then one more per RotateKey), and the key ARN the blob names. A blob is
// [1-byte ARN length][ARN][4-byte little-endian backing key index][GCM
// nonce, ciphertext and tag]. AWS KMS blobs are opaque; this is local-kms's
// own format, for tests that want to see which backing key was used.
func BlobBackingKey(blob []byte) (index int, keyARN string, err error) {
	if len(blob) < 1 {
		return 0, "", errors.New("testkms: empty blob")
	}
	n := int(blob[0])
	if len(blob) < 1+n+4+12+16 {
		return 0, "", fmt.Errorf("testkms: a %d-byte blob is too short for a local-kms symmetric key's", len(blob))
	}
	keyARN = string(blob[1 : 1+n])
	if !strings.HasPrefix(keyARN, "arn:") {
		return 0, "", fmt.Errorf("testkms: blob names %q, not a key ARN", keyARN)
	}
	v := blob[1+n : 1+n+4]
	return int(uint32(v[0]) | uint32(v[1])<<8 | uint32(v[2])<<16 | uint32(v[3])<<24), keyARN, nil
}

// backingKeyMaterial is the fixed material of backing key index of a key:
// the seeded material for 0, a derivation of it for later ones.
func backingKeyMaterial(keyID string, index int) [32]byte {
	if index == 0 {
		return keyMaterial(keyID)
	}
	return sha256.Sum256([]byte("tenantcrypt/internal/testkms rotated key material\x00" + keyID + "\x00" + strconv.Itoa(index)))
}
