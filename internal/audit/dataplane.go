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
	// ChainID is the chain the use goes to: empty for the tenant's own,
	// PlatformChain when the tenant does not exist (a deleted tenant's
	// tokens, say), so that no chain is started under a name that is not a
	// tenant's.
	ChainID string
	// Operation is the data-plane operation ("encrypt", "decrypt",
	// "rewrap", "datakeys", "datakeys.decrypt").
	Operation string
	// Outcomes counts the request's items by outcome: one item for a
	// single request, each item of a batch on its own (a batch whose items
	// all fail is as many failures). Empty counts as one success.
	Outcomes []Outcome
}

// Outcome is how many of a request's items ended one way.
type Outcome struct {
	// ErrorCode is empty on success, else the API's error code.
	ErrorCode string
	Items     int
}

// countKey is what a per-minute count is kept by.
type countKey struct {
	chain, tenant, principal, op, code string
}

type countShard struct {
	mu sync.Mutex
	m  map[countKey]int64
}

const countShards = 64

var countSeed = maphash.MakeSeed()

// DataPlane records a data-plane request: as its own event in per-request
// mode, with its items counted by outcome (Errors: ErrUnavailable when
// the queue is full: the request must be refused), else its items as more
// in their minute's counts by outcome, which costs a map increment under
// one of 64 locks per outcome and never fails.
func (l *Log) DataPlane(u Use) error {
	outcomes := u.Outcomes
	if len(outcomes) == 0 {
		outcomes = []Outcome{{Items: 1}}
	}
	if l.cfg.PerRequest {
		return l.Record(requestEvent(u, outcomes))
	}
	for _, o := range outcomes {
		k := countKey{u.ChainID, u.TenantID, u.Principal, u.Operation, o.ErrorCode}
		s := &l.shards[maphash.Comparable(countSeed, k)%countShards]
		s.mu.Lock()
		if s.m == nil {
			s.m = map[countKey]int64{}
		}
		s.m[k] += int64(max(o.Items, 1))
		s.mu.Unlock()
	}
	return nil
}

// requestEvent is a data-plane request's event in per-request mode. A
// request of one outcome is a success or a failure with its error code; a
// batch of mixed outcomes is a failure whose details count the items of
// each ("succeeded", "failed:CODE"), with the error code when the
// failures share one.
func requestEvent(u Use, outcomes []Outcome) Event {
	e := Event{ChainID: u.ChainID, TenantID: u.TenantID, Principal: u.Principal, TokenID: u.TokenID, SourceAddr: u.SourceAddr,
		RequestID: u.RequestID, Action: "dataplane." + u.Operation, Target: u.TenantID}
	if len(outcomes) == 1 {
		o := outcomes[0]
		e.ErrorCode, e.Result = o.ErrorCode, resultOf(o.ErrorCode)
		if o.Items > 1 {
			e.Details = map[string]string{"items": strconv.Itoa(o.Items)}
		}
		return e
	}
	e.Result = resultOf("")
	e.Details = map[string]string{}
	items, codes := 0, 0
	for _, o := range outcomes {
		items += o.Items
		if o.ErrorCode == "" {
			e.Details["succeeded"] = strconv.Itoa(o.Items)
			continue
		}
		e.Result = resultOf(o.ErrorCode)
		e.Details["failed:"+o.ErrorCode] = strconv.Itoa(o.Items)
		if codes++; codes == 1 {
			e.ErrorCode = o.ErrorCode
		} else {
			e.ErrorCode = ""
		}
	}
	e.Details["items"] = strconv.Itoa(items)
	return e
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
			e := Event{Time: end, ChainID: k.chain, TenantID: k.tenant, Principal: k.principal, Action: "dataplane." + k.op,
				Target: k.tenant, Result: resultOf(k.code), ErrorCode: k.code,
				Details: map[string]string{"count": strconv.FormatInt(n, 10), "per": "minute"}}
			if err := l.Record(e); err != nil {
				l.cfg.Logger.Error("the audit queue is full; a data-plane count is lost", "tenant", k.tenant, "operation", k.op, "count", n)
			}
		}
	}
}
