package audit

import (
	"bytes"
	"fmt"
)

// Report is the outcome of verifying a chain.
type Report struct {
	ChainID string
	// Valid is set when every event links to the one before, every hash
	// is right, every checkpoint's signature verifies and names an event
	// that is there with its hash.
	Valid bool
	// Events and Checkpoints count what was verified; FirstSeq and
	// LastSeq bound the events (FirstSeq > 1 after pruning).
	Events, Checkpoints int
	FirstSeq, LastSeq   int64
	// LastCheckpointSeq is the newest signed checkpoint; events after it
	// (UnsignedTail of them) are chained but not yet signed, so their
	// removal from the end could not be told from their absence.
	LastCheckpointSeq int64
	UnsignedTail      int64
	// Problem names the first thing wrong, when not Valid.
	Problem *Problem
}

// Problem is where and why a verification failed.
type Problem struct {
	Seq    int64
	Reason string
}

// Verifier checks a chain's checkpoints, all given first, and then its
// events in Seq order, without holding the events in memory.
type Verifier struct {
	keys    Keys
	r       Report
	prev    []byte // the previous event's hash
	started bool
	pending map[int64]Checkpoint // checkpoints whose event is still to come
}

// NewVerifier verifies chainID's log against the published keys.
func NewVerifier(chainID string, keys Keys) *Verifier {
	return &Verifier{keys: keys, r: Report{ChainID: chainID}, pending: map[int64]Checkpoint{}}
}

func (v *Verifier) fail(seq int64, format string, a ...any) {
	if v.r.Problem == nil {
		v.r.Problem = &Problem{Seq: seq, Reason: fmt.Sprintf(format, a...)}
	}
}

// Checkpoint adds a checkpoint of the chain; all come before the first
// Event. A checkpoint of the event just before the first (a pruned prefix)
// anchors the first event's PrevHash.
func (v *Verifier) Checkpoint(c Checkpoint) {
	if v.r.Problem != nil {
		return
	}
	if v.started {
		v.fail(c.Seq, "checkpoints must come before the events")
		return
	}
	if c.ChainID != v.r.ChainID {
		v.fail(c.Seq, "checkpoint of chain %q in the log of %q", c.ChainID, v.r.ChainID)
		return
	}
	if err := v.keys.VerifyCheckpoint(c); err != nil {
		v.fail(c.Seq, "%v", err)
		return
	}
	if _, dup := v.pending[c.Seq]; dup {
		v.fail(c.Seq, "two checkpoints of seq %d", c.Seq)
		return
	}
	v.r.Checkpoints++
	v.r.LastCheckpointSeq = max(v.r.LastCheckpointSeq, c.Seq)
	v.pending[c.Seq] = c
}

// Event adds the chain's next event.
func (v *Verifier) Event(e Event) {
	if v.r.Problem != nil {
		return
	}
	switch {
	case e.ChainID != v.r.ChainID:
		v.fail(e.Seq, "event of chain %q in the log of %q", e.ChainID, v.r.ChainID)
		return
	case !v.started:
		v.started = true
		v.r.FirstSeq = e.Seq
		switch {
		case e.Seq == 1:
			if !bytes.Equal(e.PrevHash, GenesisHash(v.r.ChainID)) {
				v.fail(e.Seq, "the first event does not start the chain (its previous hash is not the chain's genesis)")
				return
			}
		case e.Seq > 1:
			// A pruned prefix: the checkpoint of the event before vouches
			// for where the log starts.
			c, ok := v.pending[e.Seq-1]
			if !ok {
				v.fail(e.Seq, "the log starts at seq %d without a signed checkpoint of seq %d: events were removed from its start", e.Seq, e.Seq-1)
				return
			}
			if !bytes.Equal(c.Hash, e.PrevHash) {
				v.fail(e.Seq, "the first event does not follow the signed checkpoint of seq %d", e.Seq-1)
				return
			}
			delete(v.pending, e.Seq-1)
		default:
			v.fail(e.Seq, "event with seq %d", e.Seq)
			return
		}
	case e.Seq != v.r.LastSeq+1:
		if e.Seq <= v.r.LastSeq {
			v.fail(e.Seq, "event seq %d comes after seq %d: events were reordered or duplicated", e.Seq, v.r.LastSeq)
		} else {
			v.fail(v.r.LastSeq+1, "events %d to %d are missing: removed from the log", v.r.LastSeq+1, e.Seq-1)
		}
		return
	case !bytes.Equal(e.PrevHash, v.prev):
		v.fail(e.Seq, "event %d does not link to event %d: events were altered, replaced or reordered", e.Seq, v.r.LastSeq)
		return
	}
	want := eventHash(&e)
	if !bytes.Equal(want, e.Hash) {
		v.fail(e.Seq, "event %d was altered: its content does not match its hash", e.Seq)
		return
	}
	v.prev = e.Hash
	v.r.LastSeq = e.Seq
	v.r.Events++
	if c, ok := v.pending[e.Seq]; ok {
		if !bytes.Equal(c.Hash, e.Hash) {
			v.fail(e.Seq, "the signed checkpoint at seq %d names another hash than the log's event: an event up to it was altered", e.Seq)
		}
		delete(v.pending, e.Seq)
	}
}

// Finish returns the report.
func (v *Verifier) Finish() Report {
	if !v.started && len(v.pending) == 1 && v.r.Problem == nil {
		// Every event was pruned: the one checkpoint left anchors an
		// empty log.
		for seq := range v.pending {
			v.r.FirstSeq, v.r.LastSeq = seq+1, seq
			delete(v.pending, seq)
		}
	}
	for seq := range v.pending {
		if seq < v.r.FirstSeq-1 {
			// Pruning removes the checkpoints before the one it keeps:
			// an older one left means events were removed, not pruned.
			v.fail(seq+1, "the log starts at seq %d, but a signed checkpoint of the earlier seq %d remains: events were removed from its start", v.r.FirstSeq, seq)
		} else if seq > v.r.LastSeq {
			v.fail(seq, "a signed checkpoint names seq %d, but the log ends at seq %d: events were removed from its end", seq, v.r.LastSeq)
		} else if seq >= v.r.FirstSeq && v.r.Problem == nil {
			v.fail(seq, "a signed checkpoint names seq %d, which the log does not hold", seq)
		}
	}
	if v.r.LastCheckpointSeq < v.r.LastSeq {
		v.r.UnsignedTail = v.r.LastSeq - max(v.r.LastCheckpointSeq, v.r.FirstSeq-1)
	}
	v.r.Valid = v.r.Problem == nil
	return v.r
}
