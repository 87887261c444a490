package rotation

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// blockingTask runs until release is closed (or the job closes), counting
// rewrapped keys as told.
func blockingTask(kind Kind, started chan<- struct{}, release <-chan struct{}) Task {
	return Task{
		Kind: kind, Trigger: "test",
		Prepare: func(context.Context) (uint32, error) { return 7, nil },
		Run: func(ctx context.Context, target uint32, p *Progress) error {
			p.Add(3, 1, 0)
			close(started)
			select {
			case <-release:
				p.Add(2, 0, 1)
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	}
}

func waitStatus(t *testing.T, j *Job) Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	st, err := j.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait: %v (status %+v)", err, st)
	}
	return st
}

func TestJobRunsOneTaskAtATime(t *testing.T) {
	j := NewJob(nil, nil)
	t.Cleanup(j.Close)
	if st := j.Status(); st.State != StateIdle || st.ID != "" {
		t.Fatalf("new job: %+v, want idle without id", st)
	}
	started, release := make(chan struct{}), make(chan struct{})
	st, err := j.Start(t.Context(), blockingTask(KindRewrapKEKs, started, release))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if st.State != StateRunning || st.Target != 7 || st.Kind != KindRewrapKEKs || len(st.ID) != 24 || st.StartedAt.IsZero() {
		t.Errorf("Start returned %+v, want running toward 7 with an id and a start time", st)
	}
	<-started

	_, err = j.Start(t.Context(), Task{Kind: KindRewrapCipherKeys, Run: func(context.Context, uint32, *Progress) error {
		t.Error("a second task ran while the first one runs")
		return nil
	}})
	var busy *BusyError
	if !errors.Is(err, ErrBusy) || !errors.As(err, &busy) || busy.Running.ID != st.ID {
		t.Fatalf("second Start = %v, want a BusyError naming run %s", err, st.ID)
	}
	if msg := err.Error(); !strings.Contains(msg, "rewrap-keks") || !strings.Contains(msg, "rewrapped 3 so far") {
		t.Errorf("busy error %q, want it to say what runs and how far it is", msg)
	}
	if got := j.Status(); got.State != StateRunning || got.Rewrapped != 3 || got.Skipped != 1 {
		t.Errorf("status while running: %+v, want running with 3 rewrapped, 1 skipped", got)
	}

	close(release)
	got := waitStatus(t, j)
	if got.State != StateCompleted || got.Rewrapped != 5 || got.Skipped != 1 || got.Failed != 1 || got.Error != "" ||
		got.ID != st.ID || got.FinishedAt.Before(got.StartedAt) {
		t.Errorf("after the run: %+v, want completed with 5 rewrapped, 1 skipped, 1 failed", got)
	}

	// The job is free again; a new run starts from zero.
	next, err := j.Start(t.Context(), Task{Kind: KindRewrapCipherKeys, TenantID: "acme", Trigger: "rotate-key",
		Run: func(context.Context, uint32, *Progress) error { return nil }})
	if err != nil {
		t.Fatalf("Start after the first run: %v", err)
	}
	if next.ID == st.ID || next.Rewrapped != 0 || next.TenantID != "acme" {
		t.Errorf("second run %+v, want a new id, zero counts, tenant acme", next)
	}
	if got := waitStatus(t, j); got.State != StateCompleted {
		t.Errorf("second run: %+v, want completed", got)
	}
}

func TestJobPrepare(t *testing.T) {
	j := NewJob(nil, nil)
	t.Cleanup(j.Close)
	if _, err := j.Start(t.Context(), Task{Kind: KindRewrapKEKs, Run: func(context.Context, uint32, *Progress) error { return nil }}); err != nil {
		t.Fatal(err)
	}
	before := waitStatus(t, j)

	// A failing Prepare: its error, nothing runs, the status stays.
	boom := errors.New("boom")
	_, err := j.Start(t.Context(), Task{Kind: KindRewrapKEKs,
		Prepare: func(context.Context) (uint32, error) { return 0, boom },
		Run: func(context.Context, uint32, *Progress) error {
			t.Error("Run ran after Prepare failed")
			return nil
		}})
	if !errors.Is(err, boom) {
		t.Errorf("Start with a failing Prepare = %v, want its error", err)
	}
	if got := j.Status(); got != before {
		t.Errorf("status after a failed Prepare: %+v, want unchanged %+v", got, before)
	}

	// A panicking Prepare (a bug) frees the job too.
	func() {
		defer func() { _ = recover() }()
		_, _ = j.Start(t.Context(), Task{Kind: KindRewrapKEKs,
			Prepare: func(context.Context) (uint32, error) { panic("bug") },
			Run:     func(context.Context, uint32, *Progress) error { return nil }})
	}()
	if got := j.Status(); got != before {
		t.Errorf("status after a panicking Prepare: %+v, want unchanged %+v", got, before)
	}

	// While one Prepare runs, another Start is refused.
	inPrepare, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_, err := j.Start(context.Background(), Task{Kind: KindRewrapKEKs,
			Prepare: func(context.Context) (uint32, error) { close(inPrepare); <-release; return 1, nil },
			Run:     func(context.Context, uint32, *Progress) error { return nil }})
		if err != nil {
			t.Errorf("Start: %v", err)
		}
	})
	<-inPrepare
	_, err = j.Start(t.Context(), Task{Kind: KindRewrapKEKs, Run: func(context.Context, uint32, *Progress) error { return nil }})
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "starting") {
		t.Errorf("Start during another's Prepare = %v, want ErrBusy saying another is starting", err)
	}
	close(release)
	wg.Wait()
	waitStatus(t, j)
}

func TestJobFailures(t *testing.T) {
	tests := []struct {
		name    string
		run     func(context.Context, uint32, *Progress) error
		wantErr string
	}{
		{"error", func(_ context.Context, _ uint32, p *Progress) error {
			p.Add(4, 0, 0)
			return errors.New("store unavailable")
		}, "store unavailable"},
		{"panic", func(context.Context, uint32, *Progress) error { panic("bug") }, "internal error; see the server log"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := NewJob(nil, nil)
			t.Cleanup(j.Close)
			if _, err := j.Start(t.Context(), Task{Kind: KindRewrapKEKs, Run: tt.run}); err != nil {
				t.Fatal(err)
			}
			got := waitStatus(t, j)
			if got.State != StateFailed || got.Error != tt.wantErr || got.FinishedAt.IsZero() {
				t.Errorf("status %+v, want failed with error %q", got, tt.wantErr)
			}
			// A failed run frees the job.
			if _, err := j.Start(t.Context(), Task{Kind: KindRewrapKEKs, Run: func(context.Context, uint32, *Progress) error { return nil }}); err != nil {
				t.Errorf("Start after a failure: %v", err)
			}
			waitStatus(t, j)
		})
	}
}

func TestJobCloseStopsTheRun(t *testing.T) {
	j := NewJob(nil, nil)
	started := make(chan struct{})
	if _, err := j.Start(t.Context(), blockingTask(KindRewrapKEKs, started, nil)); err != nil {
		t.Fatal(err)
	}
	<-started
	j.Close() // returns only once the run has ended
	got := j.Status()
	if got.State != StateFailed || !strings.Contains(got.Error, "shutting down") || got.Rewrapped != 3 {
		t.Errorf("status after Close: %+v, want failed by shutdown, keeping its count", got)
	}
	if _, err := j.Start(t.Context(), blockingTask(KindRewrapKEKs, make(chan struct{}), nil)); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
	j.Close() // idempotent
}

func TestEnumsHaveInvalidZero(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{State(0).String(), "unknown"}, {StateIdle.String(), "idle"}, {StateRunning.String(), "running"},
		{StateCompleted.String(), "completed"}, {StateFailed.String(), "failed"},
		{Kind(0).String(), "unknown"}, {KindRewrapKEKs.String(), "rewrap-keks"}, {KindRewrapCipherKeys.String(), "rewrap-cipherkeys"},
		{Source(0).String(), "unknown"}, {SourceFile.String(), "file"}, {SourceEnvironment.String(), "environment"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
