package audit

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestStats: the writer's counts for metrics: events queued while the
// store fails, refusals by cause, events written once it recovers.
func TestStats(t *testing.T) {
	st := newMemStore()
	st.fail = errors.New("database down")
	l, _ := newTestLog(t, st, func(c *Config) { c.QueueSize = 3 })
	if s := l.Stats(); !s.Writable || s.Queued != 0 || s.Written != 0 || s.RefusedQueueFull != 0 || s.RefusedUnwritable != 0 {
		t.Fatalf("a new log's stats: %+v", s)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := l.RecordSync(ctx, Event{TenantID: "acme", Action: "tenant.update"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("RecordSync with the store down: %v", err)
	}
	if err := l.Ready(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Ready with the store down: %v", err)
	}
	full := 0
	for range 5 {
		if l.Record(Event{TenantID: "acme", Action: "tenant.update"}) != nil {
			full++
		}
	}
	s := l.Stats()
	if s.Writable || s.Queued != 3 || s.RefusedUnwritable != 2 || s.RefusedQueueFull != uint64(full) || full != 3 || s.Written != 0 {
		t.Fatalf("stats with the store down and the queue full: %+v (%d refused as full)", s, full)
	}
	st.mu.Lock()
	st.fail = nil
	st.mu.Unlock()
	l.Close()
	if s := l.Stats(); !s.Writable || s.Queued != 0 || s.Written != 3 {
		t.Errorf("stats once written: %+v", s)
	}
}
