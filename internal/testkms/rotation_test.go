package testkms

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// TestRotateKeyWhileServing: RotateKey rotates a running server. Calls made
// all along it answer (none meets a server that is away), blobs made before
// it name backing key 0 and still decrypt, blobs made after it name the new
// backing key, and a second rotation makes the next one.
func TestRotateKeyWhileServing(t *testing.T) {
	s := Start(t, Options{})
	// No retries: a call that meets a server that is away fails.
	c := s.Client(t, func(o *kms.Options) { o.RetryMaxAttempts = 1 })
	ctx := ctxT(t)
	old, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(MultiRegionKeyID), NumberOfBytes: aws.Int32(32)})
	if err != nil {
		t.Fatal(err)
	}

	var (
		stop   atomic.Bool
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed []error
		calls  atomic.Int64
	)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				_, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(MultiRegionKeyID)})
				if err == nil {
					_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(MultiRegionKeyID), Plaintext: []byte("x")})
				}
				calls.Add(1)
				if err != nil {
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
				}
			}
		})
	}
	waitCalls := func(n int64) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); calls.Load() < n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d calls in 10s, want %d", calls.Load(), n)
			}
		}
	}
	waitCalls(20)
	first := s.RotateKey(t, MultiRegionKeyID)
	waitCalls(calls.Load() + 20)
	stop.Store(true)
	wg.Wait()
	if first != 1 {
		t.Errorf("first rotation made backing key %d, want 1", first)
	}
	for _, err := range failed[:min(len(failed), 5)] {
		t.Errorf("a call during the rotation failed: %v", err)
	}

	if got, _, err := BlobBackingKey(old.CiphertextBlob); err != nil || got != 0 {
		t.Errorf("blob made before the rotation names backing key %d (%v), want 0", got, err)
	}
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(MultiRegionKeyID), CiphertextBlob: old.CiphertextBlob})
	if err != nil || string(dec.Plaintext) != string(old.Plaintext) {
		t.Errorf("blob made before the rotation does not decrypt after it: %v", err)
	}
	enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(MultiRegionKeyID), Plaintext: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := BlobBackingKey(enc.CiphertextBlob); err != nil || got != 1 {
		t.Errorf("blob made after the rotation names backing key %d (%v), want 1", got, err)
	}
	if second := s.RotateKey(t, MultiRegionKeyID); second != 2 {
		t.Errorf("second rotation made backing key %d, want 2", second)
	}
}
