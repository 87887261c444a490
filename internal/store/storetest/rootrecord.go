package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
)

// The record of where the internal KMS's root key is (an HSM's key label
// and current version), which replicas share through the database.

func testRootRecord(t *testing.T, s Store) {
	ctx := t.Context()
	got, err := s.RootRecord(ctx)
	if err != nil {
		t.Fatalf("RootRecord(empty): %v", err)
	}
	if got != (internalkms.RootRecord{}) {
		t.Fatalf("RootRecord(empty) = %+v, want the zero record", got)
	}
	want := internalkms.RootRecord{Source: internalkms.RootSourcePKCS11, Current: 1, Token: "tok", KeyLabel: "root"}
	stored, err := s.UpdateRootRecord(ctx, func(old internalkms.RootRecord) (internalkms.RootRecord, error) {
		if old != (internalkms.RootRecord{}) {
			t.Errorf("UpdateRootRecord(empty) called fn with %+v, want the zero record", old)
		}
		return want, nil
	})
	if err != nil {
		t.Fatalf("UpdateRootRecord: %v", err)
	}
	if stored.UpdatedAt.IsZero() {
		t.Errorf("UpdateRootRecord returned no UpdatedAt")
	}
	got, err = s.RootRecord(ctx)
	if err != nil {
		t.Fatalf("RootRecord: %v", err)
	}
	if got != stored {
		t.Fatalf("RootRecord = %+v, want %+v", got, stored)
	}

	boom := errors.New("boom")
	if _, err := s.UpdateRootRecord(ctx, func(old internalkms.RootRecord) (internalkms.RootRecord, error) {
		old.Current = 9
		return old, boom
	}); !errors.Is(err, boom) {
		t.Fatalf("UpdateRootRecord(fn fails) = %v, want fn's error", err)
	}
	if got, _ := s.RootRecord(ctx); got != stored {
		t.Fatalf("after a failed update RootRecord = %+v, want it unchanged %+v", got, stored)
	}
	same, err := s.UpdateRootRecord(ctx, func(old internalkms.RootRecord) (internalkms.RootRecord, error) { return old, nil })
	if err != nil || same != stored {
		t.Fatalf("UpdateRootRecord(unchanged) = %+v, %v; want %+v", same, err, stored)
	}
	next, err := s.UpdateRootRecord(ctx, func(old internalkms.RootRecord) (internalkms.RootRecord, error) {
		old.Current, old.Source = 4294967295, internalkms.RootSourceFile
		return old, nil
	})
	if err != nil {
		t.Fatalf("UpdateRootRecord(max version): %v", err)
	}
	if got, _ := s.RootRecord(ctx); got != next || got.Current != 4294967295 || got.Source != internalkms.RootSourceFile || got.KeyLabel != "root" {
		t.Fatalf("RootRecord = %+v, want %+v", got, next)
	}
}

// testRootRecordSerialised: updaters run one after another, so that two
// replicas starting at once create the HSM's first root key version once.
func testRootRecordSerialised(t *testing.T, s Store) {
	ctx := t.Context()
	const n = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		inside  int
		overlap bool
	)
	for range n {
		wg.Go(func() {
			_, err := s.UpdateRootRecord(ctx, func(old internalkms.RootRecord) (internalkms.RootRecord, error) {
				mu.Lock()
				inside++
				overlap = overlap || inside > 1
				mu.Unlock()
				defer func() { mu.Lock(); inside--; mu.Unlock() }()
				old.Source, old.Current = internalkms.RootSourcePKCS11, old.Current+1
				return old, nil
			})
			if err != nil {
				t.Errorf("UpdateRootRecord: %v", err)
			}
		})
	}
	wg.Wait()
	if overlap {
		t.Errorf("two UpdateRootRecord callbacks ran at once")
	}
	got, err := s.RootRecord(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Current != n {
		t.Fatalf("after %d concurrent increments Current = %d, want %d (an update was lost)", n, got.Current, n)
	}
}

func (r *roundRobin) RootRecord(ctx context.Context) (internalkms.RootRecord, error) {
	return r.next().RootRecord(ctx)
}

func (r *roundRobin) UpdateRootRecord(ctx context.Context, fn func(internalkms.RootRecord) (internalkms.RootRecord, error)) (internalkms.RootRecord, error) {
	return r.next().UpdateRootRecord(ctx, fn)
}
