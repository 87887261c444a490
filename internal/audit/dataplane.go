package audit

import (
	"hash/maphash"
	"strconv"
	"sync"
	"time"
)

// Use is one data-plane request, as the audit log counts it.
type Use struct {
	TenantID, Principal, TokenID string
	SourceAddr, RequestID        string
	// Operation is the data-plane operation ("encrypt", "decrypt",
	// "rewrap", "datakeys", "datakeys.decrypt"); Items how many items a
	// batch request had (1 for a single one).
	Operation string
	Items     int
	// ErrorCode is empty on success, else the API's error code.
	ErrorCode string
}

// countKey is what a per-minute count is kept by.
type countKey struct {
	tenant, principal, op, code string
}

type countShard struct {
	mu sync.Mutex
	m  map[countKey]int64
}

const countShards = 64

var countSeed = maphash.MakeSeed()

// DataPlane records a data-plane request: as its own event in per-request
// mode (Errors: ErrUnavailable when the queue is full: the request must be
// refused), else as one more in its minute's count, which costs a map
// increment under one of 64 locks and never fails.
func (l *Log) DataPlane(u Use) error {
	if l.cfg.PerRequest {
		e := Event{TenantID: u.TenantID, Principal: u.Principal, TokenID: u.TokenID, SourceAddr: u.SourceAddr,
			RequestID: u.RequestID, Action: "dataplane." + u.Operation, Target: u.TenantID, ErrorCode: u.ErrorCode}
		e.Result = resultOf(u.ErrorCode)
		if u.Items > 1 {
			e.Details = map[string]string{"items": strconv.Itoa(u.Items)}
		}
		return l.Record(e)
	}
	k := countKey{u.TenantID, u.Principal, u.Operation, u.ErrorCode}
	s := &l.shards[maphash.Comparable(countSeed, k)%countShards]
	s.mu.Lock()
	if s.m == nil {
		s.m = map[countKey]int64{}
	}
	s.m[k] += int64(max(u.Items, 1))
	s.mu.Unlock()
	return nil
}

func resultOf(code string) string {
	if code == "" {
		return "success"
	}
	return "failure"
}

// flushCounts turns the counts of the minute into events.
func (l *Log) flushCounts() {
	end := l.cfg.Now().UTC().Truncate(time.Microsecond)
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		m := s.m
		s.m = nil
		s.mu.Unlock()
		for k, n := range m {
			e := Event{Time: end, TenantID: k.tenant, Principal: k.principal, Action: "dataplane." + k.op,
				Target: k.tenant, Result: resultOf(k.code), ErrorCode: k.code,
				Details: map[string]string{"count": strconv.FormatInt(n, 10), "per": "minute"}}
			if err := l.Record(e); err != nil {
				l.cfg.Logger.Error("the audit queue is full; a data-plane count is lost", "tenant", k.tenant, "operation", k.op, "count", n)
			}
		}
	}
}
