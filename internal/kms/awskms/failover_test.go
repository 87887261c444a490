package awskms

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sdkkms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/testkms"
)

// failoverEnv is newDREnv with a client that reports region events and
// probes a failed region every 50 ms.
type failoverEnv struct {
	drEnv
	ps     *testkms.Server
	mu     sync.Mutex
	events []RegionEvent
}

func newFailoverEnv(t *testing.T) *failoverEnv {
	t.Helper()
	ps, ds := testkms.StartPair(t, primaryRegion, drRegion)
	pp, dp := testkms.NewProxy(t, ps), testkms.NewProxy(t, ds)
	e := &failoverEnv{ps: ps}
	cfg := testConfig(t, map[string]string{primaryRegion: pp.URL, drRegion: dp.URL})
	cfg.CallTimeout = 500 * time.Millisecond
	cfg.ProbeInterval = 50 * time.Millisecond
	cfg.OnRegionEvent = func(ev RegionEvent) {
		e.mu.Lock()
		e.events = append(e.events, ev)
		e.mu.Unlock()
	}
	e.drEnv = drEnv{primary: pp, dr: dp, c: newTestClient(t, cfg), mrk: mustARN(t, ps.ARN(testkms.MultiRegionKeyID))}
	return e
}

func (e *failoverEnv) eventsSoFar() []RegionEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]RegionEvent(nil), e.events...)
}

// TestFailover: with the primary region down, a multi-region key's calls
// go to its replica without an error; the region's breaker then sends them
// there at once, and a probe brings them back when the region returns.
func TestFailover(t *testing.T) {
	e := newFailoverEnv(t)
	ctx := t.Context()
	b := binding("t1")
	p := e.c.Provider(kms.MustCMKRef("mrk"), e.mrk, drRegion)
	dk, before, err := p.GenerateDataKey(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer dk.Destroy()

	for _, down := range []struct {
		name  string
		fault func() (restore func())
	}{
		{"connection refused", func() func() { e.primary.Down(); return e.primary.Up }},
		{"timeout", func() func() { return e.primary.Inject(testkms.Fault{Latency: 2 * time.Second}) }},
		{"KMSInternalException", func() func() { return e.primary.Inject(testkms.Fault{AWSError: "KMSInternalException"}) }},
	} {
		t.Run(down.name, func(t *testing.T) {
			restore := down.fault()
			e.dr.ResetCalls()
			// Old data unwraps and new data keys come from the replica.
			got, err := p.Unwrap(ctx, before, b)
			if err != nil {
				t.Fatalf("Unwrap with %s down: %v", primaryRegion, err)
			}
			if !bytes.Equal(got.Reveal(), dk.Reveal()) {
				t.Error("the replica unwrapped another key")
			}
			got.Destroy()
			if h := e.c.RegionHealth(primaryRegion); h.Healthy || h.Since.IsZero() {
				t.Errorf("RegionHealth(%s) = %+v after an outage, want unhealthy", primaryRegion, h)
			}
			e.primary.ResetCalls()
			dk2, during, err := p.GenerateDataKey(ctx, b)
			if err != nil {
				t.Fatalf("GenerateDataKey with %s down: %v", primaryRegion, err)
			}
			if during.KeyVersion != e.mrk.InRegion(drRegion).String() {
				t.Errorf("KeyVersion = %s, want the replica's ARN", during.KeyVersion)
			}
			if e.dr.Calls("Decrypt") != 1 || e.dr.Calls("GenerateDataKey") != 1 {
				t.Errorf("replica calls: %d Decrypt, %d GenerateDataKey; want 1 each", e.dr.Calls("Decrypt"), e.dr.Calls("GenerateDataKey"))
			}
			if n := e.primary.Calls("GenerateDataKey"); n != 0 {
				t.Errorf("with the breaker open, %d GenerateDataKey calls still went to %s", n, primaryRegion)
			}

			// The region comes back: a probe closes the breaker and calls
			// return to it; what the replica wrapped unwraps there.
			restore()
			deadline := time.Now().Add(10 * time.Second)
			for !e.c.RegionHealth(primaryRegion).Healthy {
				if time.Now().After(deadline) {
					t.Fatalf("%s never failed back", primaryRegion)
				}
				if _, err := p.Unwrap(ctx, before, b); err != nil { // traffic starts the probes
					t.Fatal(err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			e.primary.ResetCalls()
			e.dr.ResetCalls()
			got, err = p.Unwrap(ctx, during, b)
			if err != nil {
				t.Fatalf("Unwrap in %s of what the replica wrapped: %v", primaryRegion, err)
			}
			if !bytes.Equal(got.Reveal(), dk2.Reveal()) {
				t.Error("unwrapped another key")
			}
			got.Destroy()
			dk2.Destroy()
			if e.primary.Calls("Decrypt") != 1 || e.dr.Calls("") != 0 {
				t.Errorf("after failback: %d Decrypt in %s, %d calls in %s; want 1 and 0",
					e.primary.Calls("Decrypt"), primaryRegion, e.dr.Calls(""), drRegion)
			}
		})
	}
	evs := e.eventsSoFar()
	if len(evs) != 6 {
		t.Fatalf("region events %+v, want a failover and a failback per outage", evs)
	}
	for i, ev := range evs {
		if ev.Region != primaryRegion || ev.Healthy != (i%2 == 1) || (ev.Cause == nil) == (i%2 == 0) || ev.Since.IsZero() {
			t.Errorf("event %d = %+v", i, ev)
		}
	}
}

// TestNoFailoverOnRefusal: an answer about the key from its own region
// (disabled, here) is not an outage; nor is throttling, which is retried
// in the region. Neither goes to the replica nor opens the breaker.
func TestNoFailoverOnRefusal(t *testing.T) {
	e := newFailoverEnv(t)
	ctx := t.Context()
	b := binding("t1")
	p := e.c.Provider(kms.MustCMKRef("mrk"), e.mrk, drRegion)
	_, w, err := p.GenerateDataKey(ctx, b)
	if err != nil {
		t.Fatal(err)
	}

	remove := e.primary.Inject(testkms.Fault{Action: "Decrypt", AWSError: "ThrottlingException", Times: 2})
	got, err := p.Unwrap(ctx, w, b)
	if err != nil {
		t.Fatalf("Unwrap after two throttled attempts: %v", err)
	}
	got.Destroy()
	remove()

	if _, err := e.ps.Client(t).DisableKey(ctx, &sdkkms.DisableKeyInput{KeyId: aws.String(testkms.MultiRegionKeyID)}); err != nil {
		t.Fatal(err)
	}
	_, err = p.Unwrap(ctx, w, b)
	wantKind(t, "Unwrap of a key disabled in its own region", err, kms.ErrKeyDisabled)
	if n := e.dr.Calls(""); n != 0 {
		t.Errorf("%d calls went to the replica", n)
	}
	if !e.c.RegionHealth(primaryRegion).Healthy || len(e.eventsSoFar()) != 0 {
		t.Errorf("a refusal or throttling opened the breaker: %+v", e.eventsSoFar())
	}
}

// TestFailoverBothDown: with both regions down the call fails as
// unavailable (the caller answers 503 and retries later).
func TestFailoverBothDown(t *testing.T) {
	e := newFailoverEnv(t)
	ctx := t.Context()
	b := binding("t1")
	p := e.c.Provider(kms.MustCMKRef("mrk"), e.mrk, drRegion)
	_, w, err := p.GenerateDataKey(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	e.primary.Down()
	e.dr.Down()
	_, err = p.Unwrap(context.Background(), w, b)
	wantKind(t, "Unwrap with both regions down", err, kms.ErrUnavailable)
}

// TestSingleRegionKeyDoesNotFailOver: replicas only apply to multi-region
// keys.
func TestSingleRegionKeyDoesNotFailOver(t *testing.T) {
	e := newFailoverEnv(t)
	key := mustARN(t, e.ps.ARN(testkms.SymmetricKeyID))
	p := e.c.Provider(kms.MustCMKRef("single"), key, drRegion)
	e.primary.Down()
	_, _, err := p.GenerateDataKey(t.Context(), binding("t1"))
	wantKind(t, "GenerateDataKey of a single-region key with its region down", err, kms.ErrUnavailable)
	if n := e.dr.Calls(""); n != 0 {
		t.Errorf("%d calls went to %s", n, drRegion)
	}
}

// TestDescribeKeyFailsBack: an answer to DescribeKey (the key monitor's
// check) shows that the region serves, and fails it back without waiting
// for traffic to probe it.
func TestDescribeKeyFailsBack(t *testing.T) {
	e := newFailoverEnv(t)
	e.c.cfg.ProbeInterval = time.Hour // no probe would come
	p := e.c.Provider(kms.MustCMKRef("mrk"), e.mrk, drRegion)
	e.primary.Down()
	if _, _, err := p.GenerateDataKey(t.Context(), binding("t1")); err != nil {
		t.Fatal(err)
	}
	if e.c.RegionHealth(primaryRegion).Healthy {
		t.Fatal("no failover")
	}
	if _, err := e.c.DescribeKey(t.Context(), e.mrk); err == nil {
		t.Fatal("DescribeKey answered with the region down")
	}
	if e.c.RegionHealth(primaryRegion).Healthy {
		t.Error("a failed DescribeKey failed back")
	}
	e.primary.Up()
	if _, err := e.c.DescribeKey(t.Context(), e.mrk); err != nil {
		t.Fatal(err)
	}
	if !e.c.RegionHealth(primaryRegion).Healthy {
		t.Error("the region answered DescribeKey but did not fail back")
	}
	if evs := e.eventsSoFar(); len(evs) != 2 || !evs[1].Healthy {
		t.Errorf("events %+v, want a failover and a failback", evs)
	}
}
