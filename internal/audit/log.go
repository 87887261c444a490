// Package audit is tenantcrypt's audit log: every admin action, lifecycle
// change and call to an external KMS, and the use of the data plane, as
// events in one hash chain per tenant (and one for the platform), with
// periodic checkpoints signed by a key outside the database, so that a
// tenant admin can prove offline that their exported log is complete and
// unaltered up to the last checkpoint.
//
// Events are written off the request path: Record queues, a writer appends
// batches. RecordSync waits until its event is stored (admin actions fail
// closed on it). Close writes everything still queued.
package audit

import (
	"container/heap"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrUnavailable: the audit log cannot be written now (the store fails, or
// the queue is full). Callers that must not act unaudited refuse.
var ErrUnavailable = errors.New("audit log unavailable")

// Defaults of Config.
const (
	DefaultBatchSize          = 256
	DefaultFlushInterval      = 100 * time.Millisecond
	DefaultQueueSize          = 100_000
	DefaultCheckpointEvery    = 1000
	DefaultCheckpointInterval = time.Minute
)

// Config configures a Log. Store and Signer are required.
type Config struct {
	Store  Store
	Signer *Signer
	// BatchSize and FlushInterval: the writer appends when BatchSize
	// events are queued or FlushInterval has passed.
	BatchSize     int
	FlushInterval time.Duration
	// QueueSize bounds the events waiting to be written; beyond it Record
	// fails (ErrUnavailable) instead of growing memory without bound.
	QueueSize int
	// CheckpointEvery and CheckpointInterval: a chain this process
	// appended to is checkpointed after that many events, or that long
	// after its last checkpoint if it has new events.
	CheckpointEvery    int
	CheckpointInterval time.Duration
	// Retention, if set, prunes events older than that, at a checkpoint
	// boundary (the checkpoint stays and anchors what remains).
	Retention time.Duration
	// PerRequest records every data-plane request as an event instead of
	// a count per minute.
	PerRequest bool

	Logger *slog.Logger
	Now    func() time.Time
}

// Log is the audit log's writer. Start it; Close flushes and stops it.
type Log struct {
	cfg Config

	queue   chan queued
	pending atomic.Int64 // events queued, for the bound
	healthy atomic.Bool  // the last append worked

	// For Stats: events written, and refusals by cause.
	written, refusedFull, refusedUnwritable atomic.Uint64

	shards [countShards]countShard // the data plane's counts of the minute

	mu    sync.Mutex
	marks map[string]*mark // chain → what this process knows of its checkpoints
	// dirty are the marks with events since their last checkpoint, and
	// dueAt orders them by when CheckpointInterval makes them due: with a
	// chain per tenant, marks grows with every tenant this process wrote
	// for, and an append must not walk them all.
	dirty map[string]*mark
	dueAt dueHeap

	stop      chan struct{}
	startOnce sync.Once
	stopOnce  sync.Once
	wg        sync.WaitGroup
}

type queued struct {
	e    Event
	done chan error // nil for Record
}

// mark is a chain's last checkpoint as this process knows it, and the
// events appended since.
type mark struct {
	at    time.Time // of the last checkpoint
	since int       // events appended since
	head  Head
}

// New returns a Log.
func New(cfg Config) (*Log, error) {
	if cfg.Store == nil || cfg.Signer == nil {
		return nil, errors.New("audit: Store and Signer are required")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = DefaultCheckpointEvery
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = DefaultCheckpointInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Log{cfg: cfg, queue: make(chan queued, cfg.QueueSize), marks: map[string]*mark{}, dirty: map[string]*mark{}, stop: make(chan struct{})}
	l.healthy.Store(true)
	return l, nil
}

// Start starts the writer.
func (l *Log) Start() {
	l.startOnce.Do(func() {
		l.wg.Add(1)
		go l.writeLoop()
	})
}

// Close writes the data plane's counts and every queued event, checkpoints
// what it appended, and stops. Events recorded after Close are lost.
func (l *Log) Close() {
	l.stopOnce.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// Stats is what the writer has done so far, for metrics.
type Stats struct {
	// Queued is the events waiting to be written.
	Queued int64
	// Written is the events stored since the start.
	Written uint64
	// RefusedQueueFull counts events and actions refused because the queue
	// was full; RefusedUnwritable those refused because the store failed
	// (or a caller's wait for it ended).
	RefusedQueueFull, RefusedUnwritable uint64
	// Writable is whether the last append worked.
	Writable bool
}

// Stats returns the writer's counts.
func (l *Log) Stats() Stats {
	return Stats{Queued: l.pending.Load(), Written: l.written.Load(), RefusedQueueFull: l.refusedFull.Load(),
		RefusedUnwritable: l.refusedUnwritable.Load(), Writable: l.healthy.Load()}
}

// PerRequest reports whether every data-plane request is an event.
func (l *Log) PerRequest() bool { return l.cfg.PerRequest }

// Record queues e. Errors: ErrUnavailable when the queue is full.
func (l *Log) Record(e Event) error {
	return l.enqueue(queued{e: l.complete(e)})
}

// RecordSync queues e and waits until it is stored. Errors:
// ErrUnavailable (the store failed, the queue is full, or ctx ended first;
// the event stays queued and is written when the store recovers).
func (l *Log) RecordSync(ctx context.Context, e Event) error {
	q := queued{e: l.complete(e), done: make(chan error, 1)}
	if err := l.enqueue(q); err != nil {
		return err
	}
	select {
	case err := <-q.done:
		if err != nil {
			l.refusedUnwritable.Add(1)
		}
		return err
	case <-ctx.Done():
		l.refusedUnwritable.Add(1)
		return ErrUnavailable
	}
}

// Ready reports whether the log is writable as far as this process knows:
// its last append worked and its queue has room. Admin actions check it
// before they act.
func (l *Log) Ready() error {
	if !l.healthy.Load() {
		l.refusedUnwritable.Add(1)
		return ErrUnavailable
	}
	if l.pending.Load() >= int64(l.cfg.QueueSize) {
		l.refusedFull.Add(1)
		return ErrUnavailable
	}
	return nil
}

func (l *Log) complete(e Event) Event {
	// The stores refuse text that is not valid UTF-8 or holds NULs (a JWT
	// subject, say): such an event would block every later one, so it is
	// cleaned here, before it is sealed.
	for _, f := range []*string{&e.ChainID, &e.TenantID, &e.Principal, &e.TokenID, &e.SourceAddr, &e.RequestID,
		&e.Action, &e.Target, &e.Result, &e.ErrorCode} {
		*f = clean(*f)
	}
	if len(e.Details) > 0 {
		d := make(map[string]string, len(e.Details))
		for k, v := range e.Details {
			d[clean(k)] = clean(v)
		}
		e.Details = d
	}
	if e.Time.IsZero() {
		e.Time = l.cfg.Now()
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	if e.ChainID == "" {
		e.ChainID = e.TenantID
		if e.ChainID == "" {
			e.ChainID = PlatformChain
		}
	}
	if e.Result == "" {
		e.Result = "success"
	}
	return e
}

// clean makes s valid UTF-8 without NULs.
func clean(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

func (l *Log) enqueue(q queued) error {
	if l.pending.Add(1) > int64(l.cfg.QueueSize) {
		l.pending.Add(-1)
		l.refusedFull.Add(1)
		return ErrUnavailable
	}
	select {
	case l.queue <- q:
		return nil
	default:
		l.pending.Add(-1)
		l.refusedFull.Add(1)
		return ErrUnavailable
	}
}

func (l *Log) writeLoop() {
	defer l.wg.Done()
	flush := time.NewTicker(l.cfg.FlushInterval)
	defer flush.Stop()
	minute := time.NewTicker(time.Minute)
	defer minute.Stop()
	checkpoint := time.NewTicker(l.cfg.CheckpointInterval / 2)
	defer checkpoint.Stop()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	ctx := context.Background()
	var batch []queued
	for {
		select {
		case q := <-l.queue:
			batch = append(batch, q)
			switch {
			case q.done != nil:
				// A caller waits (an admin action): write now, with
				// whatever else is queued by then (group commit), rather
				// than at the next flush. Callers that queue while this
				// append runs go together in the next one.
				batch = l.append(ctx, l.drain(batch))
			case len(batch) >= l.cfg.BatchSize:
				batch = l.append(ctx, batch)
			}
		case <-flush.C:
			batch = l.append(ctx, batch)
		case <-minute.C:
			l.flushCounts()
		case <-checkpoint.C:
			l.checkpointDue(ctx, false)
		case <-prune.C:
			l.prune(ctx)
		case <-l.stop:
			// Graceful shutdown: nothing queued is lost while the store
			// works; a store that keeps failing is given a bounded time.
			l.flushCounts()
			deadline := time.Now().Add(30 * time.Second)
			for {
				for drained := false; !drained; {
					select {
					case q := <-l.queue:
						batch = append(batch, q)
					default:
						drained = true
					}
				}
				batch = l.append(ctx, batch)
				if len(batch) == 0 && len(l.queue) == 0 {
					break
				}
				if time.Now().After(deadline) {
					l.cfg.Logger.Error("audit events could not be written before shutdown and are lost", "events", len(batch)+len(l.queue))
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			l.checkpointDue(ctx, true)
			return
		}
	}
}

// drain adds to batch what is queued now, up to BatchSize, without waiting.
func (l *Log) drain(batch []queued) []queued {
	for len(batch) < l.cfg.BatchSize {
		select {
		case q := <-l.queue:
			batch = append(batch, q)
		default:
			return batch
		}
	}
	return batch
}

// append writes batch; it returns what is still to write (all of it when
// the store failed: it is retried at the next flush).
func (l *Log) append(ctx context.Context, batch []queued) []queued {
	if len(batch) == 0 {
		return batch
	}
	events := make([]Event, len(batch))
	for i, q := range batch {
		events[i] = q.e
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	stored, err := l.cfg.Store.AppendEvents(actx, events, Seal)
	cancel()
	if err != nil {
		if l.healthy.Swap(false) {
			l.cfg.Logger.Error("writing the audit log failed; admin actions are refused until it works again", "events", len(batch), "error", err.Error())
		}
		for i, q := range batch {
			if q.done != nil {
				q.done <- ErrUnavailable
				batch[i].done = nil // told once; the event itself stays queued
			}
		}
		return batch
	}
	if !l.healthy.Swap(true) {
		l.cfg.Logger.Info("the audit log is writable again")
	}
	l.pending.Add(-int64(len(batch)))
	l.written.Add(uint64(len(batch)))
	// The time of the append, read before anyone is told: the checkpoints
	// it makes due are of this moment, whatever the callers do next.
	now := l.cfg.Now()
	for _, q := range batch {
		if q.done != nil {
			q.done <- nil
		}
	}
	l.noteAppended(ctx, stored, now)
	return batch[:0]
}

// noteAppended moves the chains' marks and checkpoints those due: the
// appended chains that reached CheckpointEvery events, and the chains
// whose CheckpointInterval has passed. It walks neither every chain nor
// every chain with new events.
func (l *Log) noteAppended(ctx context.Context, stored []Event, now time.Time) {
	l.mu.Lock()
	for _, e := range stored {
		m := l.marks[e.ChainID]
		if m == nil {
			m = &mark{at: now}
			l.marks[e.ChainID] = m
		}
		if m.since == 0 {
			l.dirty[e.ChainID] = m
			heap.Push(&l.dueAt, dueEntry{chain: e.ChainID, at: m.at.Add(l.cfg.CheckpointInterval)})
		}
		m.since++
		m.head = Head{ChainID: e.ChainID, Seq: e.Seq, Hash: e.Hash}
	}
	due := map[string]Head{}
	for _, e := range stored {
		if m := l.marks[e.ChainID]; m.since >= l.cfg.CheckpointEvery {
			due[e.ChainID] = m.head
		}
	}
	l.popDue(now, due)
	l.mu.Unlock()
	l.checkpoint(ctx, due, now)
}

// popDue adds to due the chains whose CheckpointInterval has passed.
// l.mu is held.
func (l *Log) popDue(now time.Time, due map[string]Head) {
	for len(l.dueAt) > 0 && !l.dueAt[0].at.After(now) {
		d := heap.Pop(&l.dueAt).(dueEntry)
		// A chain checkpointed since it was queued has a later entry, or
		// none if it has no new events.
		if m := l.marks[d.chain]; m != nil && m.since > 0 && m.at.Add(l.cfg.CheckpointInterval).Equal(d.at) {
			due[d.chain] = m.head
		}
	}
}

// checkpointDue signs the heads of the chains this process appended to
// whose checkpoint is due (all of them with new events, when final).
func (l *Log) checkpointDue(ctx context.Context, final bool) {
	now := l.cfg.Now()
	due := map[string]Head{}
	l.mu.Lock()
	if final {
		for id, m := range l.dirty {
			due[id] = m.head
		}
	} else {
		l.popDue(now, due)
	}
	l.mu.Unlock()
	l.checkpoint(ctx, due, now)
}

// checkpoint signs and stores the heads due.
func (l *Log) checkpoint(ctx context.Context, due map[string]Head, now time.Time) {
	for _, h := range due {
		c := l.cfg.Signer.Sign(h.ChainID, h.Seq, h.Hash, now)
		err := l.cfg.Store.PutCheckpoint(ctx, c)
		failed := err != nil && !errors.Is(err, ErrExists)
		if failed {
			l.cfg.Logger.Warn("storing an audit checkpoint failed; retried later", "chain", h.ChainID, "error", err.Error())
		}
		l.mu.Lock()
		if m := l.marks[h.ChainID]; m != nil {
			if !failed {
				m.since, m.at = int(m.head.Seq-h.Seq), now
			}
			if m.since == 0 {
				delete(l.dirty, h.ChainID)
			} else {
				// Events came meanwhile, or the store failed: due
				// again an interval after this checkpoint, or now.
				heap.Push(&l.dueAt, dueEntry{chain: h.ChainID, at: m.at.Add(l.cfg.CheckpointInterval)})
			}
		}
		l.mu.Unlock()
	}
}

// dueEntry is when a chain with new events is due for a checkpoint by
// CheckpointInterval.
type dueEntry struct {
	chain string
	at    time.Time
}

// dueHeap is a min-heap of dueEntry by time (container/heap).
type dueHeap []dueEntry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueEntry)) }
func (h *dueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// prune removes, in every chain, the events older than the retention,
// up to the newest checkpoint older than it (which stays).
func (l *Log) prune(ctx context.Context) {
	if l.cfg.Retention <= 0 {
		return
	}
	n, err := Prune(ctx, l.cfg.Store, l.cfg.Now().Add(-l.cfg.Retention))
	if err != nil {
		l.cfg.Logger.Warn("pruning the audit log failed; retried in an hour", "error", err.Error())
	} else if n > 0 {
		l.cfg.Logger.Info("audit events past the retention pruned", "events", n)
	}
}

// Prune removes every chain's events up to its newest checkpoint made
// before cutoff; it returns how many events it removed.
func Prune(ctx context.Context, st Store, cutoff time.Time) (int, error) {
	total, after := 0, ""
	for {
		chains, err := st.Chains(ctx, after, 500)
		if err != nil {
			return total, err
		}
		for _, chain := range chains {
			var last *Checkpoint
			for seq := int64(0); ; {
				cs, err := st.Checkpoints(ctx, chain, seq, 500)
				if err != nil {
					return total, err
				}
				for i := range cs {
					if cs[i].Time.Before(cutoff) {
						last = &cs[i]
					}
				}
				if len(cs) < 500 {
					break
				}
				seq = cs[len(cs)-1].Seq
			}
			if last == nil {
				continue
			}
			n, err := st.Prune(ctx, *last)
			if err != nil {
				return total, err
			}
			total += n
		}
		if len(chains) < 500 {
			return total, nil
		}
		after = chains[len(chains)-1]
	}
}
