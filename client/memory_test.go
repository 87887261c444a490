package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"
)

// streamMemory is what a stream cost in memory.
type streamMemory struct {
	allocated uint64 // bytes allocated during the stream (TotalAlloc)
	peakHeap  uint64 // the largest HeapInuse seen, sampled every 10 ms
}

// streamThrough encrypts size bytes through an encrypt writer into a pipe
// and decrypts them from it through a decrypt reader, checking every byte,
// and measures the memory taken.
func streamThrough(e *Envelope, size int64) (streamMemory, error) {
	ctx := context.Background()
	block := pattern(1<<20, 10)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	peak := before.HeapInuse
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapInuse)
			}
		}
	})

	pr, pw := io.Pipe()
	werr := make(chan error, 1)
	go func() {
		w, err := e.NewEncryptWriter(ctx, pw, nil)
		if err == nil {
			for left := size; left > 0 && err == nil; left -= int64(len(block)) {
				_, err = w.Write(block[:min(left, int64(len(block)))])
			}
			if err == nil {
				err = w.Close()
			}
		}
		pw.CloseWithError(err)
		werr <- err
	}()
	r, err := e.NewDecryptReader(ctx, pr, nil)
	var n int64
	if err == nil {
		check := &patternChecker{block: block}
		n, err = io.Copy(check, r)
		if err == nil && check.err != nil {
			err = check.err
		}
	}
	pr.CloseWithError(errors.New("reader done"))
	err = errors.Join(err, <-werr)
	close(stop)
	sampler.Wait()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if err == nil && n != size {
		err = fmt.Errorf("decrypted %d bytes, want %d", n, size)
	}
	return streamMemory{allocated: after.TotalAlloc - before.TotalAlloc, peakHeap: peak}, err
}

// patternChecker checks that what is written to it is block, repeated.
type patternChecker struct {
	block []byte
	pos   int
	err   error
}

func (c *patternChecker) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && c.err == nil {
		k := min(len(p), len(c.block)-c.pos)
		if !bytes.Equal(p[:k], c.block[c.pos:c.pos+k]) {
			c.err = errors.New("decrypted bytes differ from the plaintext")
		}
		p, c.pos = p[k:], (c.pos+k)%len(c.block)
	}
	return n, nil
}

// TestStreamBoundedMemory: a stream of 1 GiB (64 MiB under -race or
// -short) is encrypted and decrypted with a few hundred KiB of
// allocations, not in proportion to its size. BenchmarkStream1GiB reports
// the figures for 1 GiB.
func TestStreamBoundedMemory(t *testing.T) {
	size := int64(1 << 30)
	if testing.Short() || raceEnabled {
		size = 64 << 20
	}
	s := newFake(t)
	c, _ := newTestClient(t, s, "acme")
	e := c.Envelope()
	if _, err := e.Encrypt(context.Background(), nil, nil); err != nil {
		t.Fatal(err) // the data key is cached before measuring
	}
	m, err := streamThrough(e, size)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d MiB streamed: %d KiB allocated, peak heap in use %d KiB", size>>20, m.allocated>>10, m.peakHeap>>10)
	// The writer and the reader hold one segment each (64 KiB + 17
	// bytes); the rest is the test's own 1 MiB block, the pipe and the
	// runtime. A leak per segment would be at least size/64 KiB objects.
	if limit := uint64(4 << 20); m.allocated > limit {
		t.Errorf("streaming %d MiB allocated %d KiB, want at most %d KiB", size>>20, m.allocated>>10, limit>>10)
	}
}
