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
// So RotateKey rotates out of band, in local-kms's own database, and leaves
// the rest (which backing key Encrypt uses, which one Decrypt uses) to
// local-kms.

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsmithuk/local-kms/src/cmk"
	"github.com/nsmithuk/local-kms/src/data"
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
// stops the process, adds the backing key in local-kms's database with
// local-kms's own code, and starts the process again on the same address
// and data. While it does, calls to s fail as if its Region were down (for
// well under a second, more on a loaded machine).
func (s *Server) RotateKey(t testing.TB, keyID string) int {
	t.Helper()
	addr, ok := strings.CutPrefix(s.URL, "http://")
	if !ok || s.cmd == nil {
		t.Fatalf("testkms: RotateKey on a server that is not running (URL %q)", s.URL)
	}
	dir := filepath.Dir(s.logPath)

	s.halt(t)
	version, err := addBackingKey(filepath.Join(dir, "data"), s.ARN(keyID), keyID)
	if err != nil {
		t.Fatalf("testkms: rotating %s in %s: %v", keyID, s.Region, err)
	}
	s.restart(t, addr)
	if s.URL != "http://"+addr {
		t.Fatalf("testkms: local-kms (%s) came back at %s, not at %s", s.Region, s.URL, addr)
	}
	return version
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

// addBackingKey appends the next backing key to the symmetric key arn in
// the local-kms database in dir, which no process may have open.
func addBackingKey(dir, arn, keyID string) (index int, err error) {
	defer func() {
		// data.NewDatabase panics when the database does not open.
		if r := recover(); r != nil {
			err = fmt.Errorf("opening the key database: %v", r)
		}
	}()
	db := data.NewDatabase(dir)
	defer db.Close()
	k, err := db.LoadKey(arn)
	if err != nil {
		return 0, err
	}
	aes, ok := k.(*cmk.AesKey)
	switch {
	case !ok:
		return 0, fmt.Errorf("%s is not a symmetric key", arn)
	case aes.GetMetadata().Origin == cmk.KeyOriginExternal:
		return 0, fmt.Errorf("%s has imported key material, which AWS KMS does not rotate", arn)
	case len(aes.BackingKeys) == 0:
		return 0, fmt.Errorf("%s has no key material", arn)
	}
	index = len(aes.BackingKeys)
	aes.BackingKeys = append(aes.BackingKeys, backingKeyMaterial(keyID, index))
	if err := db.SaveKey(aes); err != nil {
		return 0, err
	}
	return index, nil
}

// halt stops the process, as stop does, but keeps the server for restart.
func (s *Server) halt(t testing.TB) {
	t.Helper()
	select {
	case <-s.exited:
		t.Fatalf("testkms: local-kms (%s) exited during the test: %v: %s", s.Region, s.waitErr, s.logTail())
	default:
	}
	s.stdin.Close()
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		t.Fatalf("testkms: local-kms (%s) did not stop within 10s for a restart: %s", s.Region, s.logTail())
	}
	if s.waitErr != nil {
		t.Fatalf("testkms: local-kms (%s) did not stop cleanly: %v: %s", s.Region, s.waitErr, s.logTail())
	}
}

// restart starts the process again with the arguments it had, on addr, and
// waits until it answers. The cleanup that spawn registered stops the new
// process.
func (s *Server) restart(t testing.TB, addr string) {
	t.Helper()
	args := slices.Clone(s.cmd.Args[1:])
	i := slices.Index(args, "-addr")
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("testkms: cannot restart local-kms: no -addr in %q", args)
	}
	args[i+1] = addr

	logFile, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdinR.Close()
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		stdinW.Close()
		t.Fatal(err)
	}
	defer stdoutW.Close()

	cmd := exec.Command(s.cmd.Path, args...)
	cmd.Stdin = stdinR
	cmd.Stdout = stdoutW
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		stdinW.Close()
		stdoutR.Close()
		t.Fatalf("testkms: restarting local-kms: %v", err)
	}
	// The old process has exited and its goroutine is done with these.
	exited := make(chan struct{})
	s.cmd, s.stdin, s.stdout, s.exited, s.waitErr = cmd, stdinW, stdoutR, exited, nil
	go func() {
		err := cmd.Wait()
		s.waitErr = err
		close(exited)
	}()
	s.waitReady(t)
}
