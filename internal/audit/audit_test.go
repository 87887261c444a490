package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// memStore is an in-memory Store for the unit tests of this package; the
// real stores pass the same contract in internal/store/storetest.
type memStore struct {
	mu     sync.Mutex
	events map[string][]Event
	cps    map[string][]Checkpoint
	fail   error
}

func newMemStore() *memStore {
	return &memStore{events: map[string][]Event{}, cps: map[string][]Checkpoint{}}
}

func (m *memStore) AppendEvents(_ context.Context, events []Event, seal func(*Event)) ([]Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	out := make([]Event, 0, len(events))
	staged := map[string][]Event{}
	for _, e := range events {
		chain := append(slices.Clone(m.events[e.ChainID]), staged[e.ChainID]...)
		e.Seq, e.PrevHash = 1, GenesisHash(e.ChainID)
		if n := len(chain); n > 0 {
			e.Seq, e.PrevHash = chain[n-1].Seq+1, chain[n-1].Hash
		}
		seal(&e)
		staged[e.ChainID] = append(staged[e.ChainID], e)
		out = append(out, e)
	}
	for c, es := range staged {
		m.events[c] = append(m.events[c], es...)
	}
	return out, nil
}

func (m *memStore) ChainHead(_ context.Context, chainID string) (Head, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	es := m.events[chainID]
	if len(es) == 0 {
		return Head{ChainID: chainID, Hash: GenesisHash(chainID)}, nil
	}
	return Head{ChainID: chainID, Seq: es[len(es)-1].Seq, Hash: es[len(es)-1].Hash}, nil
}

func (m *memStore) Events(_ context.Context, chainID string, f Filter, limit int) ([]Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Event
	for _, e := range m.events[chainID] {
		if e.Seq > f.AfterSeq && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (m *memStore) PutCheckpoint(_ context.Context, c Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range m.cps[c.ChainID] {
		if x.Seq == c.Seq {
			return ErrExists
		}
	}
	m.cps[c.ChainID] = append(m.cps[c.ChainID], c)
	slices.SortFunc(m.cps[c.ChainID], func(a, b Checkpoint) int { return int(a.Seq - b.Seq) })
	return nil
}

func (m *memStore) Checkpoints(_ context.Context, chainID string, after int64, limit int) ([]Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Checkpoint
	for _, c := range m.cps[chainID] {
		if c.Seq > after && len(out) < limit {
			out = append(out, c)
		}
	}
	return out, nil
}

func (m *memStore) Chains(_ context.Context, after string, limit int) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for c := range m.events {
		if c > after {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out[:min(limit, len(out))], nil
}

func (m *memStore) Prune(_ context.Context, c Checkpoint) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	es := m.events[c.ChainID]
	n := 0
	for n < len(es) && es[n].Seq <= c.Seq {
		n++
	}
	m.events[c.ChainID] = es[n:]
	m.cps[c.ChainID] = slices.DeleteFunc(m.cps[c.ChainID], func(x Checkpoint) bool { return x.Seq < c.Seq })
	return n, nil
}

func newTestLog(t *testing.T, st Store, edit func(*Config)) (*Log, *Signer) {
	t.Helper()
	signer, err := LoadOrCreateSigner(filepath.Join(t.TempDir(), "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Store: st, Signer: signer, FlushInterval: 5 * time.Millisecond, CheckpointEvery: 10}
	if edit != nil {
		edit(&cfg)
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l.Start()
	return l, signer
}

func keysOf(t *testing.T, s *Signer) Keys {
	t.Helper()
	k, err := ParseKeys(s.PublicKeys())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestLogChainsAndVerifies: events recorded, flushed at Close, chained per
// tenant, checkpointed, and the stored chain verifies.
func TestLogChainsAndVerifies(t *testing.T) {
	st := newMemStore()
	l, signer := newTestLog(t, st, nil)
	for i := range 25 {
		if err := l.Record(Event{TenantID: "acme", Principal: "alice", Action: "keyprovider.update", Target: "fp"}); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			if err := l.RecordSync(t.Context(), Event{TenantID: "other", Action: "tenant.update"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 7 {
		if err := l.DataPlane(Use{TenantID: "acme", Principal: "svc", Operation: "encrypt", Outcomes: []Outcome{{Items: 1}}}); err != nil {
			t.Fatal(err)
		}
	}
	l.DataPlane(Use{TenantID: "acme", Principal: "svc", Operation: "decrypt", Outcomes: []Outcome{{ErrorCode: "Encryption-09", Items: 1}}})
	l.Close()

	for _, chain := range []string{"acme", "other"} {
		rep, err := VerifyStored(t.Context(), st, chain, keysOf(t, signer))
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Valid || rep.UnsignedTail != 0 || rep.Checkpoints == 0 {
			t.Errorf("%s: %+v", chain, rep)
		}
	}
	// The counts became events of the minute.
	es, _ := st.Events(t.Context(), "acme", Filter{}, 1000)
	counts := map[string]string{}
	for _, e := range es {
		if strings.HasPrefix(e.Action, "dataplane.") {
			counts[e.Action+"/"+e.Result+"/"+e.ErrorCode] = e.Details["count"]
		}
	}
	if counts["dataplane.encrypt/success/"] != "7" || counts["dataplane.decrypt/failure/Encryption-09"] != "1" {
		t.Errorf("data-plane counts %v", counts)
	}
}

// TestDataPlaneCountsItems: a batch counts item by item and outcome by
// outcome, in both modes, so that probing with failing batches is not
// recorded as a few successes; a use of no existing tenant goes to the
// platform's chain.
func TestDataPlaneCountsItems(t *testing.T) {
	batch := Use{TenantID: "acme", Principal: "svc", Operation: "decrypt", RequestID: "r1",
		Outcomes: []Outcome{{ErrorCode: "Encryption-09", Items: 998}, {Items: 1}, {ErrorCode: "Encryption-01", Items: 1}}}
	allFailed := Use{TenantID: "acme", Principal: "svc", Operation: "decrypt", RequestID: "r2",
		Outcomes: []Outcome{{ErrorCode: "Encryption-09", Items: 1000}}}
	ghost := Use{TenantID: "ghost", ChainID: PlatformChain, Principal: "svc", Operation: "encrypt", RequestID: "r3",
		Outcomes: []Outcome{{ErrorCode: "Encryption-07", Items: 1}}}
	record := func(t *testing.T, perRequest bool) *memStore {
		st := newMemStore()
		l, _ := newTestLog(t, st, func(c *Config) { c.PerRequest = perRequest })
		for _, u := range []Use{batch, allFailed, ghost} {
			if err := l.DataPlane(u); err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
		if len(st.events["ghost"]) != 0 {
			t.Errorf("a use of no tenant started the chain %q: %+v", "ghost", st.events["ghost"])
		}
		return st
	}
	t.Run("per-minute", func(t *testing.T) {
		st := record(t, false)
		got := map[string]string{}
		for _, chain := range []string{"acme", PlatformChain} {
			for _, e := range st.events[chain] {
				if strings.HasPrefix(e.Action, "dataplane.") {
					got[chain+"/"+e.TenantID+"/"+e.Action+"/"+e.Result+"/"+e.ErrorCode] = e.Details["count"]
				}
			}
		}
		want := map[string]string{
			"acme/acme/dataplane.decrypt/failure/Encryption-09":              "1998",
			"acme/acme/dataplane.decrypt/success/":                           "1",
			"acme/acme/dataplane.decrypt/failure/Encryption-01":              "1",
			PlatformChain + "/ghost/dataplane.encrypt/failure/Encryption-07": "1",
		}
		if !maps.Equal(got, want) {
			t.Errorf("counts: got %v, want %v", got, want)
		}
	})
	t.Run("per-request", func(t *testing.T) {
		st := record(t, true)
		byRequest := map[string]Event{}
		for _, chain := range []string{"acme", PlatformChain} {
			for _, e := range st.events[chain] {
				byRequest[e.RequestID] = e
			}
		}
		tests := []struct {
			request, result, code string
			details               map[string]string
		}{
			{"r1", "failure", "", map[string]string{"items": "1000", "succeeded": "1", "failed:Encryption-09": "998", "failed:Encryption-01": "1"}},
			{"r2", "failure", "Encryption-09", map[string]string{"items": "1000"}},
			{"r3", "failure", "Encryption-07", nil},
		}
		for _, tc := range tests {
			e := byRequest[tc.request]
			if e.Result != tc.result || e.ErrorCode != tc.code || !maps.Equal(e.Details, tc.details) {
				t.Errorf("event of %s: got result %q, code %q, details %v; want %q, %q, %v", tc.request, e.Result, e.ErrorCode, e.Details, tc.result, tc.code, tc.details)
			}
		}
		if e := byRequest["r3"]; e.ChainID != PlatformChain {
			t.Errorf("event of a use of no tenant: chain %q, want %q", e.ChainID, PlatformChain)
		}
	})
}

// TestVerifyFindsTampering: every way of altering a stored log is found
// and named by seq.
func TestVerifyFindsTampering(t *testing.T) {
	st := newMemStore()
	l, signer := newTestLog(t, st, func(c *Config) { c.CheckpointEvery = 4 })
	for i := range 12 {
		if err := l.RecordSync(t.Context(), Event{TenantID: "acme", Action: "tenant.update", Target: string(rune('a' + i))}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	keys := keysOf(t, signer)
	original := slices.Clone(st.events["acme"])

	tests := []struct {
		name   string
		mutate func(es []Event) []Event
		seq    int64
		reason string
	}{
		{"altered field", func(es []Event) []Event { es[4].Principal = "mallory"; return es }, 5, "altered"},
		{"altered and rehashed", func(es []Event) []Event { es[4].Target = "x"; Seal(&es[4]); return es }, 6, "does not link"},
		{"deleted", func(es []Event) []Event { return slices.Delete(es, 6, 7) }, 7, "missing"},
		{"reordered", func(es []Event) []Event {
			es[2].Seq, es[3].Seq = es[3].Seq, es[2].Seq
			slices.SortFunc(es, func(a, b Event) int { return int(a.Seq - b.Seq) })
			return es
		}, 3, "reordered"},
		{"truncated", func(es []Event) []Event { return es[:9] }, 12, "end"},
		{"prefix removed", func(es []Event) []Event { return es[2:] }, 3, "start"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st.events["acme"] = tc.mutate(slices.Clone(original))
			rep, err := VerifyStored(t.Context(), st, "acme", keys)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Valid || rep.Problem == nil || rep.Problem.Seq != tc.seq || !strings.Contains(rep.Problem.Reason, tc.reason) {
				t.Errorf("report %+v (problem %+v), want seq %d and %q", rep, rep.Problem, tc.seq, tc.reason)
			}
		})
	}
	st.events["acme"] = original

	// A checkpoint signed by another key is refused.
	other, err := LoadOrCreateSigner(filepath.Join(t.TempDir(), "other.json"))
	if err != nil {
		t.Fatal(err)
	}
	rep, _ := VerifyStored(t.Context(), st, "acme", keysOf(t, other))
	if rep.Valid || !strings.Contains(rep.Problem.Reason, "not published") {
		t.Errorf("with another key: %+v", rep.Problem)
	}
}

// TestExportVerifiesOffline: an export verifies with only the published
// keys, survives pruning, and an edited line fails.
func TestExportVerifiesOffline(t *testing.T) {
	st := newMemStore()
	start := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := start
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	l, signer := newTestLog(t, st, func(c *Config) { c.CheckpointEvery = 5; c.Now = clock })
	for i := range 13 {
		if i == 10 { // checkpoints at 5 and 10 are an hour old
			mu.Lock()
			now = start.Add(time.Hour)
			mu.Unlock()
		}
		if err := l.RecordSync(t.Context(), Event{TenantID: "acme", Action: "keyprovider.test", Details: map[string]string{"status": "201"}}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	var pub bytes.Buffer
	if err := json.NewEncoder(&pub).Encode(PublicKeysToAPI(signer.PublicKeys())); err != nil {
		t.Fatal(err)
	}
	var published api.AuditPublicKeys
	if err := json.Unmarshal(pub.Bytes(), &published); err != nil {
		t.Fatal(err)
	}
	keys, err := KeysFromAPI(published)
	if err != nil {
		t.Fatal(err)
	}
	export := func() string {
		var b bytes.Buffer
		if err := Export(t.Context(), st, "acme", clock(), &b); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	rep, err := VerifyExport(strings.NewReader(export()), keys)
	if err != nil || !rep.Valid || rep.Events != 13 {
		t.Fatalf("export: %+v, %v", rep, err)
	}
	edited := strings.Replace(export(), `"keyprovider.test"`, `"keyprovider.tset"`, 1)
	if rep, err := VerifyExport(strings.NewReader(edited), keys); err != nil || rep.Valid {
		t.Errorf("an edited export verified: %+v, %v", rep, err)
	}

	// Pruning up to a checkpoint keeps the rest verifiable.
	n, err := Prune(t.Context(), st, start.Add(time.Second))
	if err != nil || n != 10 {
		t.Fatalf("Prune = %d, %v; want the 10 events up to the old checkpoint", n, err)
	}
	rep, err = VerifyExport(strings.NewReader(export()), keys)
	if err != nil || !rep.Valid || rep.FirstSeq != 11 || rep.Events != 3 {
		t.Errorf("after pruning %d events: %+v, %v", n, rep, err)
	}
	// Events removed after the anchor are still found.
	st.events["acme"] = st.events["acme"][1:]
	if rep, _ := VerifyExport(strings.NewReader(export()), keys); rep.Valid {
		t.Errorf("an event removed after the pruned prefix went unnoticed: %+v", rep)
	}
}

// TestFailClosed: a store that fails makes RecordSync and Ready fail, and
// the events are written once it works again.
func TestFailClosed(t *testing.T) {
	st := newMemStore()
	st.fail = errors.New("database down")
	l, signer := newTestLog(t, st, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := l.RecordSync(ctx, Event{TenantID: "acme", Action: "tenant.update"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("RecordSync with the store down: %v", err)
	}
	if err := l.Ready(); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ready with the store down: %v", err)
	}
	st.mu.Lock()
	st.fail = nil
	st.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for l.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the log did not recover")
		}
		time.Sleep(5 * time.Millisecond)
	}
	l.Close()
	rep, _ := VerifyStored(t.Context(), st, "acme", keysOf(t, signer))
	if rep.Events != 1 || !rep.Valid {
		t.Errorf("the event refused at first was not written later: %+v", rep)
	}
}

// TestQueueBound: per-request data-plane events beyond the queue fail.
func TestQueueBound(t *testing.T) {
	st := newMemStore()
	st.fail = errors.New("database down")
	l, _ := newTestLog(t, st, func(c *Config) { c.QueueSize = 3; c.PerRequest = true })
	var failed int
	for range 10 {
		if err := l.DataPlane(Use{TenantID: "acme", Operation: "encrypt"}); err != nil {
			failed++
		}
	}
	if failed == 0 {
		t.Error("a full queue took every event")
	}
	st.mu.Lock()
	st.fail = nil
	st.mu.Unlock()
	l.Close()
}

// TestCleansText: text the stores would refuse is cleaned before sealing.
func TestCleansText(t *testing.T) {
	st := newMemStore()
	l, _ := newTestLog(t, st, nil)
	if err := l.RecordSync(t.Context(), Event{TenantID: "acme", Principal: "bad\xffsub\x00", Action: "tenant.update",
		Details: map[string]string{"k\x00": "v\xfe"}}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	e := st.events["acme"][0]
	if e.Principal != "bad\uFFFDsub" || e.Details["k"] != "v\uFFFD" {
		t.Errorf("cleaned event %+v", e)
	}
}

// TestSignerKeyFileMustBePrivate: whoever reads the signing key file can
// forge checkpoints, so a file that others may read is refused, as the
// root and issuer key files are.
func TestSignerKeyFileMustBePrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit-signing-keys.json")
	if _, err := LoadOrCreateSigner(path); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("created key file: %v, %v; want mode 0600", info.Mode(), err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadOrCreateSigner(path)
	if !errors.Is(err, secret.ErrFileExposed) || !strings.Contains(err.Error(), path) {
		t.Errorf("LoadOrCreateSigner of a 0644 key file: got %v, want %v naming the file", err, secret.ErrFileExposed)
	}
}

// TestRecordSyncDoesNotWaitForTheFlush: an admin action's event is written
// as soon as it is queued (with whatever else is queued: group commit),
// not at the next periodic flush, which here never comes. Concurrent
// callers all return, and every event is stored once.
func TestRecordSyncDoesNotWaitForTheFlush(t *testing.T) {
	st := newMemStore()
	l, _ := newTestLog(t, st, func(c *Config) { c.FlushInterval = time.Hour })
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a safety net, not a measure
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			errs <- l.RecordSync(ctx, Event{TenantID: "acme", Action: "tenant.update", Target: strconv.Itoa(i)})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("RecordSync without a flush: %v", err)
		}
	}
	st.mu.Lock()
	n := len(st.events["acme"])
	st.mu.Unlock()
	if n != 64 {
		t.Errorf("stored %d events, want 64", n)
	}
	l.Close()
}

// TestCheckpointsLookAtChainsWithNewEvents: with a chain per tenant, the
// writer keeps what it knows of every chain it wrote to, but an append
// checkpoints only chains that are due: a chain that reaches
// CheckpointEvery at once, chains with new events once their
// CheckpointInterval has passed (at the next append, here, or the
// periodic check), the rest at Close; a checkpointed chain is no longer
// among those with new events.
func TestCheckpointsLookAtChainsWithNewEvents(t *testing.T) {
	st := newMemStore()
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := start
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	l, _ := newTestLog(t, st, func(c *Config) {
		c.CheckpointEvery, c.CheckpointInterval, c.FlushInterval, c.Now = 2, time.Minute, time.Hour, clock
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a safety net, not a measure
	defer cancel()
	checkpoints := func() int {
		st.mu.Lock()
		defer st.mu.Unlock()
		n := 0
		for _, cps := range st.cps {
			n += len(cps)
		}
		return n
	}
	dirty := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.dirty)
	}
	// RecordSync returns once the event is stored; the writer notes it
	// right after.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("waiting for %s: %v", what, ctx.Err())
			}
			time.Sleep(time.Millisecond)
		}
	}
	const chains = 500
	for i := range chains {
		if err := l.RecordSync(ctx, Event{TenantID: "t" + strconv.Itoa(i), Action: "tenant.create"}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor("every chain noted", func() bool { return dirty() == chains })
	if got := checkpoints(); got != 0 {
		t.Fatalf("%d checkpoints after one event per chain, want none before the interval", got)
	}

	// A second event in t7: its chain reaches CheckpointEvery.
	if err := l.RecordSync(ctx, Event{TenantID: "t7", Action: "tenant.update"}); err != nil {
		t.Fatal(err)
	}
	waitFor("t7's checkpoint", func() bool { return checkpoints() > 0 })
	st.mu.Lock()
	cps := slices.Clone(st.cps["t7"])
	total := len(st.cps)
	st.mu.Unlock()
	if len(cps) != 1 || cps[0].Seq != 2 || total != 1 {
		t.Fatalf("checkpoints of t7: %+v (chains with checkpoints: %d), want one at seq 2 and no other chain", cps, total)
	}
	waitFor("t7 no longer among the chains with new events", func() bool { return dirty() == chains-1 })

	// After the interval, the next append checkpoints the other chains
	// (not the new one it writes to).
	mu.Lock()
	now = start.Add(2 * time.Minute)
	mu.Unlock()
	if err := l.RecordSync(ctx, Event{TenantID: "late", Action: "tenant.create"}); err != nil {
		t.Fatal(err)
	}
	waitFor("the chains past their interval checkpointed", func() bool { return checkpoints() == chains })
	if got := dirty(); got != 1 {
		t.Errorf("%d chains with new events, want 1 (the new one)", got)
	}
	l.Close()
	if got := checkpoints(); got != chains+1 {
		t.Errorf("%d checkpoints after Close, want %d", got, chains+1)
	}
	if got := dirty(); got != 0 {
		t.Errorf("%d chains with new events after Close, want none", got)
	}
	st.mu.Lock()
	n := len(st.cps["late"])
	st.mu.Unlock()
	if n != 1 {
		t.Errorf("the last chain has %d checkpoints after Close, want 1", n)
	}
}
