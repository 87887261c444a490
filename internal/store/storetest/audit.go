package storetest

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/audit"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
)

// auditTime is the fixtures' event time: not UTC, at microsecond precision,
// as callers seal it.
var auditTime = time.Date(2025, 4, 5, 6, 7, 8, 123456000, zone)

// newAuditEvent returns an event of the chain with every field set but the
// ones AppendEvents sets.
func newAuditEvent(chainID, action string) audit.Event {
	return audit.Event{
		ChainID:    chainID,
		Time:       auditTime,
		TenantID:   chainID,
		Principal:  "alice@example.com",
		TokenID:    "jti-42",
		SourceAddr: "192.0.2.7:51234",
		RequestID:  "req-" + action,
		Action:     action,
		Target:     "arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd",
		Result:     "success",
		ErrorCode:  "",
		Details:    map[string]string{"region": "eu-west-1", "count": "3", "quote\"": "ünïcödé\n"},
	}
}

func appendEvents(t *testing.T, s Store, events ...audit.Event) []audit.Event {
	t.Helper()
	stored, err := s.AppendEvents(t.Context(), events, audit.Seal)
	if err != nil {
		t.Fatalf("AppendEvents(%d events): %v", len(events), err)
	}
	if len(stored) != len(events) {
		t.Fatalf("AppendEvents(%d events): got %d back", len(events), len(stored))
	}
	return stored
}

// allEvents reads every event of the chain that f selects, paging by
// AfterSeq three at a time.
func allEvents(t *testing.T, s Store, chainID string, f audit.Filter) []audit.Event {
	t.Helper()
	var all []audit.Event
	for {
		page, err := s.Events(t.Context(), chainID, f, 3)
		if err != nil {
			t.Fatalf("Events(%q, %+v): %v", chainID, f, err)
		}
		all = append(all, page...)
		if len(page) < 3 {
			return all
		}
		f.AfterSeq = page[len(page)-1].Seq
	}
}

func seqs(es []audit.Event) []int64 {
	ss := []int64{}
	for _, e := range es {
		ss = append(ss, e.Seq)
	}
	return ss
}

// checkEvent compares every field; Details must be nil where want's are.
func checkEvent(t *testing.T, what string, got, want audit.Event) {
	t.Helper()
	if got.ChainID != want.ChainID || got.Seq != want.Seq || got.TenantID != want.TenantID ||
		got.Principal != want.Principal || got.TokenID != want.TokenID || got.SourceAddr != want.SourceAddr ||
		got.RequestID != want.RequestID || got.Action != want.Action || got.Target != want.Target ||
		got.Result != want.Result || got.ErrorCode != want.ErrorCode ||
		!maps.Equal(got.Details, want.Details) || (got.Details == nil) != (want.Details == nil) ||
		!bytes.Equal(got.PrevHash, want.PrevHash) || !bytes.Equal(got.Hash, want.Hash) {
		t.Errorf("%s:\ngot  %+v\nwant %+v", what, got, want)
	}
	if !got.Time.Equal(want.Time) || got.Time.Location() != time.UTC {
		t.Errorf("%s: got Time %v, want %v in UTC", what, got.Time, want.Time)
	}
}

// verifyChain checks that the chain holds exactly the events first…last,
// without gaps, each linked to the one before (the first of a whole chain to
// the genesis hash) and sealed as audit.Seal would, and that its head is the
// last.
func verifyChain(t *testing.T, s Store, chainID string, first, last int64) []audit.Event {
	t.Helper()
	es := allEvents(t, s, chainID, audit.Filter{AfterSeq: first - 1})
	if len(es) != int(last-first+1) {
		t.Fatalf("chain %q: got %d events (seqs %v), want %d…%d", chainID, len(es), seqs(es), first, last)
	}
	prev := audit.GenesisHash(chainID)
	for i, e := range es {
		if e.Seq != first+int64(i) {
			t.Fatalf("chain %q: got seqs %v, want %d…%d without gaps", chainID, seqs(es), first, last)
		}
		if i > 0 || first == 1 {
			if !bytes.Equal(e.PrevHash, prev) {
				t.Errorf("chain %q event %d: PrevHash is not the previous event's Hash", chainID, e.Seq)
			}
		}
		resealed := e
		resealed.Hash = nil
		audit.Seal(&resealed)
		if !bytes.Equal(resealed.Hash, e.Hash) {
			t.Errorf("chain %q event %d: stored Hash does not verify", chainID, e.Seq)
		}
		prev = e.Hash
	}
	h, err := s.ChainHead(t.Context(), chainID)
	if err != nil {
		t.Fatalf("ChainHead(%q): %v", chainID, err)
	}
	if h.ChainID != chainID || h.Seq != last || !bytes.Equal(h.Hash, prev) {
		t.Errorf("ChainHead(%q): got seq %d, want %d with the last event's hash", chainID, h.Seq, last)
	}
	return es
}

// testAuditRoundTrip: every field of an event reads back as AppendEvents
// returned it, and that is what was given plus Seq, PrevHash and Hash.
func testAuditRoundTrip(t *testing.T, s Store) {
	full := newAuditEvent("acme", "keyprovider.register")
	full.Result, full.ErrorCode = "failure", "KMS_ACCESS_DENIED"
	full.Details["nul\x00"] = "a\x00b" // JSON escapes it; only text columns refuse it
	empty := audit.Event{ChainID: "acme", Time: auditTime.Add(time.Second), Action: "tenant.state", Details: map[string]string{}}
	none := audit.Event{ChainID: "acme", Time: auditTime.Add(2 * time.Second), Action: "kms.Decrypt"}
	stored := appendEvents(t, s, full, empty, none)

	wants := []audit.Event{full, empty, none}
	wants[1].Details = nil // no details read back as nil, however given
	prev := audit.GenesisHash("acme")
	for i := range wants {
		wants[i].Seq = int64(i + 1)
		wants[i].PrevHash = prev
		audit.Seal(&wants[i])
		prev = wants[i].Hash
		checkEvent(t, fmt.Sprintf("AppendEvents[%d]", i), stored[i], wants[i])
	}
	got, err := s.Events(t.Context(), "acme", audit.Filter{}, 10)
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	if len(got) != len(wants) {
		t.Fatalf("Events: got %d events, want %d", len(got), len(wants))
	}
	for i := range wants {
		checkEvent(t, fmt.Sprintf("Events[%d]", i), got[i], wants[i])
	}

	t.Run("time-precision", func(t *testing.T) {
		// A time finer than a microsecond is stored, sealed and returned
		// truncated, in UTC, so that its hash verifies once read back.
		e := newAuditEvent("precise", "kms.Encrypt")
		e.Time = time.Date(2025, 4, 5, 6, 7, 8, 123456789, zone)
		stored := appendEvents(t, s, e)
		want := time.Date(2025, 4, 5, 6, 7, 8, 123456000, zone)
		if got := stored[0].Time; !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("AppendEvents: got Time %v, want %v in UTC", got, want)
		}
		verifyChain(t, s, "precise", 1, 1)
	})

	t.Run("no-events", func(t *testing.T) {
		got, err := s.AppendEvents(t.Context(), nil, audit.Seal)
		if err != nil || len(got) != 0 {
			t.Errorf("AppendEvents(nil): got %v, %v; want none, nil", got, err)
		}
		for _, limit := range []int{0, -1} {
			got, err := s.Events(t.Context(), "acme", audit.Filter{}, limit)
			if err != nil || got == nil || len(got) != 0 {
				t.Errorf("Events(limit %d): got %#v, %v; want an empty slice", limit, got, err)
			}
		}
		got, err = s.Events(t.Context(), "missing", audit.Filter{}, 10)
		if err != nil || got == nil || len(got) != 0 {
			t.Errorf("Events(missing chain): got %#v, %v; want an empty slice", got, err)
		}
	})
}

// testAuditChaining: each event of a chain follows the one before, within a
// call and across calls, and the head moves with it.
func testAuditChaining(t *testing.T, s Store) {
	h, err := s.ChainHead(t.Context(), "acme")
	if err != nil {
		t.Fatalf("ChainHead of a new chain: %v", err)
	}
	if h.ChainID != "acme" || h.Seq != 0 || !bytes.Equal(h.Hash, audit.GenesisHash("acme")) {
		t.Errorf("ChainHead of a new chain: got %+v, want seq 0 and the genesis hash", h)
	}
	first := appendEvents(t, s, newAuditEvent("acme", "a.one"), newAuditEvent("acme", "a.two"), newAuditEvent("acme", "a.three"))
	for i, e := range first {
		if e.Seq != int64(i+1) {
			t.Errorf("AppendEvents[%d]: got Seq %d, want %d", i, e.Seq, i+1)
		}
	}
	if !bytes.Equal(first[0].PrevHash, audit.GenesisHash("acme")) {
		t.Error("first event: PrevHash is not the genesis hash")
	}
	for i := 1; i < len(first); i++ {
		if !bytes.Equal(first[i].PrevHash, first[i-1].Hash) {
			t.Errorf("event %d: PrevHash is not event %d's Hash", first[i].Seq, first[i-1].Seq)
		}
	}
	next := appendEvents(t, s, newAuditEvent("acme", "a.four"))
	if next[0].Seq != 4 || !bytes.Equal(next[0].PrevHash, first[2].Hash) {
		t.Errorf("next call: got Seq %d, want 4 following event 3", next[0].Seq)
	}
	verifyChain(t, s, "acme", 1, 4)
}

// testAuditManyChains: one call may mix chains; each chains on its own.
func testAuditManyChains(t *testing.T, s Store) {
	order := []string{"b", "a", "b", audit.PlatformChain, "a", "b"}
	var events []audit.Event
	for i, c := range order {
		events = append(events, newAuditEvent(c, fmt.Sprintf("x.%d", i)))
	}
	stored := appendEvents(t, s, events...)
	wantSeqs := []int64{1, 1, 2, 1, 2, 3}
	for i, e := range stored {
		if e.ChainID != order[i] || e.Seq != wantSeqs[i] || e.Action != events[i].Action {
			t.Errorf("AppendEvents[%d]: got chain %q seq %d action %q, want %q %d %q", i, e.ChainID, e.Seq, e.Action, order[i], wantSeqs[i], events[i].Action)
		}
	}
	verifyChain(t, s, "a", 1, 2)
	verifyChain(t, s, "b", 1, 3)
	verifyChain(t, s, audit.PlatformChain, 1, 1)
	appendEvents(t, s, newAuditEvent("a", "y.1"), newAuditEvent("c", "y.2"))
	verifyChain(t, s, "a", 1, 3)
	verifyChain(t, s, "c", 1, 1)
}

// testAuditConcurrentAppend: appends racing into the same chains, in
// batches that name two chains in either order, leave gap-free chains whose
// hashes verify, and never deadlock.
func testAuditConcurrentAppend(t *testing.T, s Store) {
	const (
		goroutines = 8
		calls      = 6
	)
	errs := make([]error, goroutines)
	race(goroutines, func(i int) {
		for j := range calls {
			var events []audit.Event
			switch (i + j) % 3 {
			case 0:
				events = []audit.Event{newAuditEvent("shared", fmt.Sprintf("g%d.c%d", i, j))}
			case 1:
				events = []audit.Event{newAuditEvent("shared", "x.1"), newAuditEvent("other", "x.2"), newAuditEvent("shared", "x.3")}
			case 2:
				events = []audit.Event{newAuditEvent("other", "y.1"), newAuditEvent("shared", "y.2")}
			}
			if _, err := s.AppendEvents(t.Context(), events, audit.Seal); err != nil {
				errs[i] = err
				return
			}
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("AppendEvents (goroutine %d): %v", i, err)
		}
	}
	// Per goroutine and round of three calls: 1+2+1 events of "shared",
	// 0+1+1 of "other".
	rounds := goroutines * calls / 3
	verifyChain(t, s, "shared", 1, int64(4*rounds))
	verifyChain(t, s, "other", 1, int64(2*rounds))
}

// testAuditFilters: each filter alone and together, and AfterSeq paging.
func testAuditFilters(t *testing.T, s Store) {
	type ev struct {
		action, principal, result string
		minutes                   int
	}
	evs := []ev{
		{"keyprovider.register", "alice", "success", 0},  // 1
		{"keyprovider.delete", "bob", "failure", 1},      // 2
		{"keyprovider", "alice", "success", 2},           // 3
		{"keyproviders.list", "alice", "success", 3},     // 4
		{"keyprovider/x", "alice", "success", 4},         // 5
		{"keyprovider-x.y", "alice", "denied", 5},        // 6
		{"keyprovider.sub.deep", "carol", "success", 6},  // 7
		{"a%c.x", "alice", "success", 7},                 // 8
		{"abc.x", "alice", "success", 8},                 // 9
		{"a_c.x", "alice", "success", 9},                 // 10
		{"kms.Decrypt", "", "success", 10},               // 11
		{"KEYPROVIDER.register", "alice", "success", 11}, // 12
	}
	var events []audit.Event
	for _, e := range evs {
		a := newAuditEvent("acme", e.action)
		a.Principal, a.Result = e.principal, e.result
		a.Time = auditTime.Add(time.Duration(e.minutes) * time.Minute)
		events = append(events, a)
	}
	appendEvents(t, s, events...)
	appendEvents(t, s, newAuditEvent("other", "keyprovider.register")) // another chain

	at := func(minutes int) time.Time { return auditTime.Add(time.Duration(minutes) * time.Minute) }
	tests := []struct {
		name string
		f    audit.Filter
		want []int64
	}{
		{"all", audit.Filter{}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{"after-seq", audit.Filter{AfterSeq: 10}, []int64{11, 12}},
		{"from", audit.Filter{From: at(9)}, []int64{10, 11, 12}},
		{"to", audit.Filter{To: at(2)}, []int64{1, 2}},
		{"from-to", audit.Filter{From: at(2), To: at(4)}, []int64{3, 4}},
		{"from-to-utc", audit.Filter{From: at(2).UTC(), To: at(4).UTC()}, []int64{3, 4}},
		{"to-before-from", audit.Filter{From: at(4), To: at(2)}, []int64{}},
		{"action-exact", audit.Filter{Action: "keyprovider.register"}, []int64{1}},
		{"action-exact-no-prefix", audit.Filter{Action: "keyprovider"}, []int64{3}},
		{"action-prefix", audit.Filter{Action: "keyprovider."}, []int64{1, 2, 7}},
		{"action-prefix-nested", audit.Filter{Action: "keyprovider.sub."}, []int64{7}},
		{"action-prefix-percent", audit.Filter{Action: "a%c."}, []int64{8}},
		{"action-prefix-underscore", audit.Filter{Action: "a_c."}, []int64{10}},
		{"action-prefix-wildcard-only", audit.Filter{Action: "%."}, []int64{}},
		{"action-exact-percent", audit.Filter{Action: "a%c.x"}, []int64{8}},
		{"action-case", audit.Filter{Action: "KEYPROVIDER."}, []int64{12}},
		{"action-none", audit.Filter{Action: "nothing."}, []int64{}},
		{"principal", audit.Filter{Principal: "bob"}, []int64{2}},
		{"result", audit.Filter{Result: "denied"}, []int64{6}},
		{"combined", audit.Filter{Action: "keyprovider.", Principal: "alice", Result: "success", From: at(0), To: at(1)}, []int64{1}},
		{"combined-after-seq", audit.Filter{Action: "keyprovider.", AfterSeq: 1}, []int64{2, 7}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := seqs(allEvents(t, s, "acme", tc.f)); !slices.Equal(got, tc.want) {
				t.Errorf("Events(%+v): got seqs %v, want %v", tc.f, got, tc.want)
			}
		})
	}

	t.Run("paging", func(t *testing.T) {
		f := audit.Filter{Principal: "alice"}
		var got []int64
		for range 20 {
			page, err := s.Events(t.Context(), "acme", f, 2)
			if err != nil {
				t.Fatalf("Events: %v", err)
			}
			if len(page) > 2 {
				t.Fatalf("Events(limit 2): got %d events", len(page))
			}
			if len(page) == 0 {
				break
			}
			got = append(got, seqs(page)...)
			f.AfterSeq = page[len(page)-1].Seq
		}
		if want := []int64{1, 3, 4, 5, 6, 8, 9, 10, 12}; !slices.Equal(got, want) {
			t.Errorf("paging Events(principal alice) by 2: got seqs %v, want %v", got, want)
		}
	})
}

func newCheckpoint(chainID string, seq int64) audit.Checkpoint {
	return audit.Checkpoint{
		ChainID:   chainID,
		Seq:       seq,
		Hash:      bytes.Repeat([]byte{byte(seq)}, 32),
		Time:      time.Date(2025, 5, 6, 7, 8, 9, 654321000, zone),
		KeyID:     "audit-key-1",
		Signature: bytes.Repeat([]byte{0x5a, byte(seq)}, 32),
	}
}

func putCheckpoint(t *testing.T, s Store, c audit.Checkpoint) {
	t.Helper()
	if err := s.PutCheckpoint(t.Context(), c); err != nil {
		t.Fatalf("PutCheckpoint(%q, %d): %v", c.ChainID, c.Seq, err)
	}
}

func checkCheckpoints(t *testing.T, what string, got, want []audit.Checkpoint) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d checkpoints %+v, want %d %+v", what, len(got), got, len(want), want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ChainID != w.ChainID || g.Seq != w.Seq || !bytes.Equal(g.Hash, w.Hash) || g.KeyID != w.KeyID ||
			!bytes.Equal(g.Signature, w.Signature) {
			t.Errorf("%s[%d]:\ngot  %+v\nwant %+v", what, i, g, w)
		}
		if !g.Time.Equal(w.Time) || g.Time.Location() != time.UTC {
			t.Errorf("%s[%d]: got Time %v, want %v in UTC", what, i, g.Time, w.Time)
		}
	}
}

func checkpoints(t *testing.T, s Store, chainID string, afterSeq int64, limit int) []audit.Checkpoint {
	t.Helper()
	cs, err := s.Checkpoints(t.Context(), chainID, afterSeq, limit)
	if err != nil {
		t.Fatalf("Checkpoints(%q, %d, %d): %v", chainID, afterSeq, limit, err)
	}
	return cs
}

// testAuditCheckpoints: put, list in Seq order after a Seq, duplicates.
func testAuditCheckpoints(t *testing.T, s Store) {
	c2, c4, c6 := newCheckpoint("acme", 2), newCheckpoint("acme", 4), newCheckpoint("acme", 6)
	for _, c := range []audit.Checkpoint{c6, c2, c4} {
		putCheckpoint(t, s, c)
	}
	putCheckpoint(t, s, newCheckpoint("other", 2))

	checkCheckpoints(t, "Checkpoints(acme, 0, 10)", checkpoints(t, s, "acme", 0, 10), []audit.Checkpoint{c2, c4, c6})
	checkCheckpoints(t, "Checkpoints(acme, 2, 10)", checkpoints(t, s, "acme", 2, 10), []audit.Checkpoint{c4, c6})
	checkCheckpoints(t, "Checkpoints(acme, 3, 1)", checkpoints(t, s, "acme", 3, 1), []audit.Checkpoint{c4})
	checkCheckpoints(t, "Checkpoints(acme, 6, 10)", checkpoints(t, s, "acme", 6, 10), []audit.Checkpoint{})
	checkCheckpoints(t, "Checkpoints(missing, 0, 10)", checkpoints(t, s, "missing", 0, 10), []audit.Checkpoint{})
	for _, limit := range []int{0, -1} {
		if cs := checkpoints(t, s, "acme", 0, limit); cs == nil || len(cs) != 0 {
			t.Errorf("Checkpoints(limit %d): got %#v, want an empty slice", limit, cs)
		}
	}

	dup := newCheckpoint("acme", 4)
	dup.Hash, dup.Signature = []byte("other hash"), []byte("other signature")
	checkErr(t, "PutCheckpoint(duplicate)", s.PutCheckpoint(t.Context(), dup), audit.ErrExists)
	checkCheckpoints(t, "Checkpoints after a duplicate", checkpoints(t, s, "acme", 3, 1), []audit.Checkpoint{c4})
}

// testAuditChains: the chains with events, in byte order, paged.
func testAuditChains(t *testing.T, s Store) {
	ids := []string{"b", "a", "B", audit.PlatformChain, "ä", "a-1"}
	for _, id := range ids {
		appendEvents(t, s, newAuditEvent(id, "x.y"))
	}
	want := slices.Clone(ids)
	slices.Sort(want) // byte order: "B" < "_platform" < "a" < "a-1" < "b" < "ä"
	var got []string
	after := ""
	for range 10 {
		page, err := s.Chains(t.Context(), after, 4)
		if err != nil {
			t.Fatalf("Chains(%q, 4): %v", after, err)
		}
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		after = page[len(page)-1]
	}
	if !slices.Equal(got, want) {
		t.Errorf("Chains paged by 4: got %q, want %q", got, want)
	}
	for _, limit := range []int{0, -1} {
		got, err := s.Chains(t.Context(), "", limit)
		if err != nil || got == nil || len(got) != 0 {
			t.Errorf("Chains(limit %d): got %#v, %v; want an empty slice", limit, got, err)
		}
	}
}

// testAuditPrune: a stored checkpoint lets its events and the older
// checkpoints go; the chain goes on from its head.
func testAuditPrune(t *testing.T, s Store) {
	ctx := t.Context()
	var events []audit.Event
	for i := range 10 {
		events = append(events, newAuditEvent("acme", fmt.Sprintf("x.%d", i+1)))
	}
	stored := appendEvents(t, s, events...)
	appendEvents(t, s, newAuditEvent("other", "x.1"), newAuditEvent("other", "x.2"))
	cp := func(chainID string, e audit.Event) audit.Checkpoint {
		c := newCheckpoint(chainID, e.Seq)
		c.Hash = e.Hash
		return c
	}
	c3, c6, c8 := cp("acme", stored[2]), cp("acme", stored[5]), cp("acme", stored[7])
	for _, c := range []audit.Checkpoint{c3, c6, c8} {
		putCheckpoint(t, s, c)
	}
	otherCP := newCheckpoint("other", 1)
	putCheckpoint(t, s, otherCP)

	t.Run("refused", func(t *testing.T) {
		wrongHash := c6
		wrongHash.Hash = stored[4].Hash
		missing := cp("acme", stored[4])
		for _, tc := range []struct {
			name string
			c    audit.Checkpoint
		}{{"wrong-hash", wrongHash}, {"no-checkpoint", missing}, {"other-chain", cp("nobody", stored[5])}} {
			n, err := s.Prune(ctx, tc.c)
			checkErr(t, "Prune("+tc.name+")", err, fault.ErrNotFound)
			if n != 0 {
				t.Errorf("Prune(%s): got %d deleted, want 0", tc.name, n)
			}
		}
		verifyChain(t, s, "acme", 1, 10)
	})

	n, err := s.Prune(ctx, c6)
	if err != nil {
		t.Fatalf("Prune(checkpoint 6): %v", err)
	}
	if n != 6 {
		t.Errorf("Prune(checkpoint 6): got %d deleted, want 6", n)
	}
	verifyChain(t, s, "acme", 7, 10)
	checkCheckpoints(t, "Checkpoints after Prune", checkpoints(t, s, "acme", 0, 10), []audit.Checkpoint{c6, c8})
	if n, err := s.Prune(ctx, c6); err != nil || n != 0 {
		t.Errorf("Prune(checkpoint 6) again: got %d, %v; want 0, nil", n, err)
	}

	// Appends go on from the head.
	next := appendEvents(t, s, newAuditEvent("acme", "x.11"))
	if next[0].Seq != 11 || !bytes.Equal(next[0].PrevHash, stored[9].Hash) {
		t.Errorf("AppendEvents after Prune: got Seq %d, want 11 following event 10", next[0].Seq)
	}
	verifyChain(t, s, "acme", 7, 11)
	chains, err := s.Chains(ctx, "", 10)
	if err != nil || !slices.Equal(chains, []string{"acme", "other"}) {
		t.Errorf("Chains after Prune: got %q, %v; want [acme other]", chains, err)
	}

	// Another chain is untouched.
	verifyChain(t, s, "other", 1, 2)
	checkCheckpoints(t, "Checkpoints(other)", checkpoints(t, s, "other", 0, 10), []audit.Checkpoint{otherCP})
}

// testAuditAppendErrors: a refused batch stores nothing, not even its valid
// events or those sealed before the error.
func testAuditAppendErrors(t *testing.T, s Store) {
	ctx := t.Context()
	appendEvents(t, s, newAuditEvent("acme", "x.0"))
	valid := newAuditEvent("acme", "x.1")
	mutate := func(f func(*audit.Event)) audit.Event {
		e := newAuditEvent("acme", "x.2")
		f(&e)
		return e
	}
	tests := []struct {
		name   string
		events []audit.Event
		seal   func(*audit.Event)
	}{
		{"no-chain", []audit.Event{valid, mutate(func(e *audit.Event) { e.ChainID = "" })}, audit.Seal},
		{"invalid-utf8", []audit.Event{valid, mutate(func(e *audit.Event) { e.RequestID = "req-\xff" })}, audit.Seal},
		{"nul", []audit.Event{valid, mutate(func(e *audit.Event) { e.SourceAddr = "a\x00b" })}, audit.Seal},
		{"detail-invalid-utf8", []audit.Event{valid, mutate(func(e *audit.Event) { e.Details = map[string]string{"k": "\xc3"} })}, audit.Seal},
		{"detail-key-invalid-utf8", []audit.Event{valid, mutate(func(e *audit.Event) { e.Details = map[string]string{"k\xff": "v"} })}, audit.Seal},
		{"no-hash", []audit.Event{valid, newAuditEvent("new", "x.1"), newAuditEvent("acme", "x.2")}, func(e *audit.Event) {
			if e.Action != "x.2" {
				audit.Seal(e)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := s.AppendEvents(ctx, tc.events, tc.seal); err == nil {
				t.Fatalf("AppendEvents: got %d events and no error, want an error", len(got))
			}
			verifyChain(t, s, "acme", 1, 1)
			verifyChain(t, s, "new", 1, 0)
		})
	}
	chains, err := s.Chains(ctx, "", 10)
	if err != nil || !slices.Equal(chains, []string{"acme"}) {
		t.Errorf("Chains: got %q, %v; want [acme]", chains, err)
	}
}

// testAuditDeleteTenant: the log outlives the tenant; its deletion removes
// none of the tenant's events, head or checkpoints.
func testAuditDeleteTenant(t *testing.T, s Store) {
	createTenant(t, s, "gone")
	stored := appendEvents(t, s, newAuditEvent("gone", "tenant.create"), newAuditEvent("gone", "kms.Encrypt"))
	c := newCheckpoint("gone", 2)
	c.Hash = stored[1].Hash
	putCheckpoint(t, s, c)
	if err := s.DeleteTenant(t.Context(), "gone"); err != nil {
		t.Fatalf("DeleteTenant: %v", err)
	}
	appendEvents(t, s, newAuditEvent("gone", "tenant.delete"))
	verifyChain(t, s, "gone", 1, 3)
	checkCheckpoints(t, "Checkpoints after DeleteTenant", checkpoints(t, s, "gone", 0, 10), []audit.Checkpoint{c})
	if chains, err := s.Chains(t.Context(), "", 10); err != nil || !slices.Equal(chains, []string{"gone"}) {
		t.Errorf("Chains after DeleteTenant: got %q, %v; want [gone]", chains, err)
	}
	// No new tenant can take the id, and with it the chain.
	checkErr(t, "CreateTenant of the deleted tenant's id", s.CreateTenant(t.Context(), newTenant("gone")), keyring.ErrRetired)
}
