package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/jackc/pgx/v5"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	tckms "github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/store/postgres/pgtest"
	"github.com/tenantcrypt/tenantcrypt/internal/testkms"
)

// Settings of the replicas test.
const (
	replicaCount = 3
	// replicaMaxUses makes every replica rotate the load tenant's data key
	// every few encryptions, so that rotations race across processes all
	// along.
	replicaMaxUses = 100
	// replicaMigrationKeys at replicaMigrationRate per second make a
	// migration of a few seconds, long enough to kill its replica midway.
	replicaMigrationKeys = 900
	replicaMigrationRate = "300"
	replicaLease         = 2 * time.Second
	// replicaBound is the default --revocation-bound; the key checks run
	// every half of it.
	replicaBound    = 10 * time.Second
	replicaInterval = replicaBound / 2
	loadClients     = 6
)

// TestReplicas is the scale-out test: three server processes on one
// PostgreSQL schema, with a load spread over them from start to end.
//
//   - A customer managed key disabled through local-kms is refused by all
//     three within the revocation bound (the replica whose check finds it
//     records it; the others hear of it through LISTEN/NOTIFY).
//   - A migration started on one replica survives that replica being
//     SIGKILLed: another takes its lease over and completes it.
//   - A tenant idle since its migration turns active on one replica, and
//     its key is disabled at once: that replica refuses within the bound,
//     although it caches the key for 15 minutes (the key check, claimed by
//     any replica, finds it).
//   - The database "restarts" mid-load: the replicas answer 503 while it is
//     gone and recover by themselves when it is back, with no cipherkey
//     lost or duplicated. The machine's PostgreSQL serves other tests at
//     the same time, so the test does not restart it: the replicas reach
//     it through a TCP proxy that the test cuts (every connection dropped,
//     new ones refused, as a restarting server does) and restores.
//   - Throughout, the load tenant's data key rotates every
//     replicaMaxUses encryptions, racing across the three processes: never
//     two active keys, never a key used more than replicaMaxUses times.
//   - The key checks are spread over the replicas, not made by each.
func TestReplicas(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("the replicas test needs POSIX signals (SIGKILL)")
	}
	if testing.Short() {
		t.Skip("the replicas test takes a while; skipped with -short")
	}
	began := time.Now()
	dsn := pgtest.DSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := startTCPProxy(t, u.Host)
	proxied := *u
	proxied.Host = db.addr

	primary, dr := testkms.StartPair(t, primaryRegion, drRegion)
	pProxy, dProxy := testkms.NewProxy(t, primary), testkms.NewProxy(t, dr)
	for _, id := range []string{testkms.MultiRegionKeyID, testkms.SecondMultiRegionKeyID} {
		pProxy.SetMultiRegion(id, primaryRegion, drRegion)
		dProxy.SetMultiRegion(id, primaryRegion, drRegion)
	}

	// One data directory for all: the same root keys, token issuer and
	// development CA, as replicas share them in production.
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	procs := make([]*serverProcess, replicaCount)
	rs := &replicaSet{t: t, servers: make([]*testServer, replicaCount)}
	for i := range procs {
		p := &serverProcess{t: t, dataDir: dataDir,
			addrFile: filepath.Join(dir, fmt.Sprintf("addr-%d", i)),
			logPath:  filepath.Join(dir, fmt.Sprintf("replica-%d.log", i))}
		p.args = []string{
			"serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--addr-file", p.addrFile,
			"--database", proxied.String(),
			"--region", primaryRegion, "--dr-region", primaryRegion + "=" + drRegion,
			"--kms-endpoint", primaryRegion + "=" + pProxy.URL, "--kms-endpoint", drRegion + "=" + dProxy.URL,
			"--kms-timeout", "1s", "--key-max-uses", strconv.Itoa(replicaMaxUses),
			"--migration-rate", replicaMigrationRate, "--migration-lease", replicaLease.String(),
			"--log-level", "info",
		}
		p.env = childEnv()
		t.Cleanup(p.cleanup)
		procs[i] = p
		rs.servers[i] = p.start() // one after the other: the first creates the keys
	}
	t.Logf("%d replicas serving %v after the start", replicaCount, time.Since(began).Round(time.Millisecond))

	// Tenants: "load" on the internal KMS carries the load; "acme" is on
	// the multi-region key that gets disabled; "mig" migrates; "spread-N"
	// give the key monitor more to check.
	spread := []string{"spread-1", "spread-2", "spread-3", "spread-4", "spread-5"}
	admin := rs.servers[0].token(auth.RolePlatformAdmin, "")
	mrk, second := primary.ARN(testkms.MultiRegionKeyID), primary.ARN(testkms.SecondMultiRegionKeyID)
	tenantAdmin := map[string]string{}
	for i, id := range append([]string{"load", "acme", "mig"}, spread...) {
		ts := rs.servers[i%replicaCount]
		if r := ts.do("POST", "/api/v1/tenants", admin, map[string]any{"id": id, "name": id, "edition": "enterprise"}); r.status != 201 {
			t.Fatalf("create tenant %s: %d %s", id, r.status, r.body)
		}
		tenantAdmin[id] = ts.token(auth.RoleTenantAdmin, id)
	}
	onKey := func(tenant, arn string, migrate bool) {
		t.Helper()
		ts := rs.servers[len(tenant)%replicaCount]
		if r := ts.do("POST", kp, tenantAdmin[tenant], register(arn, tenant+" key")); r.status != 201 {
			t.Fatalf("register for %s: %d %s", tenant, r.status, r.body)
		}
		if !migrate {
			return
		}
		if r := ts.do("POST", kp+"/"+keyprovider.Fingerprint(arn)+"/actions/migrate", tenantAdmin[tenant], nil); r.status != 200 {
			t.Fatalf("migrate %s: %d %s", tenant, r.status, r.body)
		}
	}
	onKey("acme", mrk, true)
	for _, id := range spread {
		onKey(id, second, true)
	}
	onKey("mig", second, false)
	for _, id := range append([]string{"acme"}, spread...) {
		rs.waitMigration(id, tenantAdmin[id], 0, time.Minute)
	}
	migSvc := rs.servers[2].token(auth.RoleService, "mig")
	migKeys := newDataKeys(t, rs.servers[2], migSvc, 0, replicaMigrationKeys)
	acmeSvc := rs.servers[1].token(auth.RoleService, "acme")
	r := rs.servers[1].do("POST", "/api/v1/encryption/encrypt", acmeSvc, map[string]any{"plaintext": b64("acme's data")})
	if r.status != 200 {
		t.Fatalf("acme encrypt: %d %s", r.status, r.body)
	}
	acmeCT, _ := r.json(t)["ciphertext"].(string)
	t.Logf("tenants set up %v after the start", time.Since(began).Round(time.Millisecond))

	// The load, over every replica that is up, until the end.
	l := newReplicaLoad(rs, rs.servers[0].token(auth.RoleService, "load"))
	l.start(loadClients)
	defer l.stop()
	l.phase("steady")
	l.waitServed(t, 20)

	t.Run("revocation", func(t *testing.T) {
		testReplicasRevocation(t, rs, primary, acmeSvc, acmeCT)
	})
	t.Run("migration survives its replica", func(t *testing.T) {
		testReplicasMigration(t, rs, procs, l, dsn, tenantAdmin["mig"], migSvc, migKeys, second)
	})
	checksBefore := rs.keyChecks()
	checksFrom := time.Now()
	t.Run("database restart", func(t *testing.T) {
		testReplicasDatabaseRestart(t, rs, l, db)
	})
	l.stop()

	t.Run("no cipherkey lost or duplicated", func(t *testing.T) {
		l.verify(t, dsn)
	})
	t.Run("notifications", func(t *testing.T) {
		for i, ts := range rs.servers {
			until(t, fmt.Sprintf("replica %d listening again", i), 30*time.Second, func() bool {
				return metric(t, ts, "tenantcrypt_tenant_changes_listening") == 1
			})
			// The restarted replica has heard of nothing since: the
			// tenants changed before.
			if n := metric(t, ts, "tenantcrypt_tenant_change_notifications_total"); n == 0 && !rs.restarted[i] {
				t.Errorf("replica %d heard of no tenant change", i)
			}
		}
	})
	t.Run("key checks spread", func(t *testing.T) {
		after := rs.keyChecks()
		window := time.Since(checksFrom)
		tenants := 2 + len(spread) // acme, mig and the spread ones
		var total, busy int
		for i := range after {
			n := after[i] - checksBefore[i]
			total += n
			if after[i] > 0 {
				busy++
			}
			t.Logf("replica %d: %d key checks in the last %v, %d since it started", i, n, window.Round(time.Millisecond), after[i])
		}
		// One check per tenant per interval, whoever makes it: each
		// replica checking every key would be three times as many.
		most := tenants * (int(window/replicaInterval) + 2)
		if total > most {
			t.Errorf("%d key checks of %d tenants in %v, want at most %d (once per interval, not once per replica)", total, tenants, window.Round(time.Millisecond), most)
		}
		if busy < 2 {
			t.Errorf("only %d replica(s) made key checks, want them spread", busy)
		}
	})
	// Last: it disables the second key, which the tenants above use.
	t.Run("an idle tenant turns active", func(t *testing.T) {
		testReplicasIdleTurnsActive(t, rs, primary, spread[0])
	})
	if t.Failed() {
		// The servers' own account of their errors, without the noise of
		// the database's absence.
		for i, p := range procs {
			n := 0
			for line := range strings.Lines(p.logs(0)) {
				if strings.Contains(line, `"level":"ERROR"`) && !strings.Contains(line, "connect") && n < 20 {
					t.Logf("replica %d: %s", i, strings.TrimSpace(line))
					n++
				}
			}
		}
	}
	for i, p := range procs {
		if code := p.terminate(); code != exitOK {
			t.Errorf("replica %d: exit code after SIGTERM = %d, want %d", i, code, exitOK)
		}
		if logs := p.logs(0); strings.Contains(logs, "DATA RACE") || strings.Contains(logs, "panic:") {
			t.Errorf("replica %d's log shows a data race or a panic", i)
		}
	}
	t.Logf("the replicas test took %v", time.Since(began).Round(time.Millisecond))
}

// replicaSet is the running replicas; a replica is down while the test
// has killed it, and the load leaves it alone.
type replicaSet struct {
	t         *testing.T
	mu        sync.Mutex
	servers   []*testServer
	down      []bool
	restarted map[int]bool
}

func (rs *replicaSet) server(i int) (*testServer, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.down != nil && rs.down[i] {
		return nil, false
	}
	return rs.servers[i], true
}

func (rs *replicaSet) setDown(i int, down bool, ts *testServer) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.down == nil {
		rs.down = make([]bool, len(rs.servers))
	}
	rs.down[i] = down
	if ts != nil {
		rs.servers[i] = ts
	}
}

// waitMigration waits for the tenant's migration to complete, asking
// replica from.
func (rs *replicaSet) waitMigration(tenant, token string, from int, limit time.Duration) api.Migration {
	rs.t.Helper()
	var m api.Migration
	until(rs.t, "migration of "+tenant, limit, func() bool {
		ts, _ := rs.server(from)
		r := ts.do("GET", kp+"/migration/actions/details", token, nil)
		if r.status != 200 || json.Unmarshal(r.body, &m) != nil {
			rs.t.Fatalf("migration details of %s: %d %s", tenant, r.status, r.body)
		}
		return m.State == "Completed"
	})
	return m
}

// keyChecks returns each replica's count of key checks in the primary
// region (one per check of a tenant); 0 for a replica that is down.
func (rs *replicaSet) keyChecks() []int {
	out := make([]int, len(rs.servers))
	for i := range rs.servers {
		if ts, up := rs.server(i); up {
			out[i] = int(metricSum(rs.t, ts, `tenantcrypt_key_checks_total{region="`+primaryRegion+`"`))
		}
	}
	return out
}

func testReplicasRevocation(t *testing.T, rs *replicaSet, primary *testkms.Server, svc, ct string) {
	decrypt := func(ts *testServer) (int, string) {
		status, body, err := call(ts, "/api/v1/encryption/decrypt", svc, map[string]any{"ciphertext": ct})
		if err != nil {
			return 0, err.Error()
		}
		return status, string(body)
	}
	for i, ts := range rs.servers {
		if status, body := decrypt(ts); status != 200 {
			t.Fatalf("replica %d: decrypt before the revocation: %d %s", i, status, body)
		}
	}
	if _, err := primary.Client(t).DisableKey(context.Background(), &kms.DisableKeyInput{KeyId: aws.String(testkms.MultiRegionKeyID)}); err != nil {
		t.Fatal(err)
	}
	disabled := time.Now()
	refusedAfter := make([]time.Duration, len(rs.servers))
	var wg sync.WaitGroup
	for i, ts := range rs.servers {
		wg.Go(func() {
			var refused time.Time
			for refused.IsZero() || time.Since(refused) < time.Second {
				status, body := decrypt(ts)
				switch {
				case status == 200 && !refused.IsZero():
					t.Errorf("replica %d: a decrypt succeeded %v after its first refusal", i, time.Since(refused))
					return
				case status == 200:
				case status == 403 && strings.Contains(body, string(api.CodeKeyUnavailable)):
					if refused.IsZero() {
						refused = time.Now()
					}
				default:
					t.Errorf("replica %d: decrypt after DisableKey: %d %s, want 200 or 403 %s", i, status, body, api.CodeKeyUnavailable)
					return
				}
				if refused.IsZero() && time.Since(disabled) > 3*replicaBound {
					t.Errorf("replica %d: decrypts still succeed %v after DisableKey", i, time.Since(disabled))
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			refusedAfter[i] = refused.Sub(disabled)
		})
	}
	wg.Wait()
	for i, d := range refusedAfter {
		t.Logf("replica %d refused %v after DisableKey (bound %v)", i, d.Round(time.Millisecond), replicaBound)
		if d > replicaBound {
			t.Errorf("replica %d refused %v after DisableKey, more than the bound %v", i, d, replicaBound)
		}
	}
}

func testReplicasMigration(t *testing.T, rs *replicaSet, procs []*serverProcess, l *replicaLoad, dsn, admin, svc string, keys []crashedKey, target string) {
	ts, _ := rs.server(0)
	r := ts.do("POST", kp+"/"+keyprovider.Fingerprint(target)+"/actions/migrate", admin, nil)
	if r.status != 200 {
		t.Fatalf("migrate: %d %s", r.status, r.body)
	}
	started := time.Now()
	// Wait for some progress, then kill whichever replica holds the lease
	// (the one that started it, unless another claimed it first).
	var m api.Migration
	until(t, "progress", time.Minute, func() bool {
		r := ts.do("GET", kp+"/migration/actions/details", admin, nil)
		if r.status != 200 || json.Unmarshal(r.body, &m) != nil {
			t.Fatalf("details: %d %s", r.status, r.body)
		}
		return m.Progress > 0
	})
	if m.State == "Completed" {
		t.Fatal("the migration completed before a replica could be killed: lower --migration-rate")
	}
	owner := leaseOwner(t, dsn, m.ID)
	victim := -1
	for i, p := range procs {
		if strings.Contains(owner, "/"+strconv.Itoa(p.cmd.Process.Pid)+"/") {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("the migration's lease is held by %q, none of the replicas", owner)
	}
	l.phase("kill")
	rs.setDown(victim, true, nil)
	rewrappedBefore := rewrappedBy(t, rs.servers[victim])
	procs[victim].kill()
	killed := time.Now()
	t.Logf("killed replica %d, the migration's leaseholder, at %.1f%% (%v after the start; it had rewrapped %d cipherkeys)",
		victim, m.Progress, killed.Sub(started).Round(time.Millisecond), rewrappedBefore)
	other := (victim + 1) % len(procs)
	done := rs.waitMigration("mig", admin, other, 2*time.Minute)
	t.Logf("the migration completed %v after the kill", time.Since(killed).Round(time.Millisecond))
	if done.Progress != 100 || done.Error != "" || done.MigratingTo != target {
		t.Errorf("completed migration: %+v", done)
	}
	finisher := leaseOwner(t, dsn, m.ID)
	if finisher == owner {
		t.Errorf("the migration was completed by %q, the killed replica", finisher)
	}
	var rewrapped int
	for i := range rs.servers {
		if i != victim {
			rewrapped += rewrappedBy(t, rs.servers[i])
		}
	}
	if rewrapped == 0 {
		t.Errorf("no surviving replica rewrapped a cipherkey")
	}
	// Every key resolves, and is wrapped by the target only.
	survivor, _ := rs.server(other)
	verifyDataKeys(t, survivor, svc, keys)
	var st api.EncryptionStatus
	if r := survivor.do("GET", "/api/v1/encryption/status", admin, nil); r.status != 200 || json.Unmarshal(r.body, &st) != nil {
		t.Fatalf("status: %d %s", r.status, r.body)
	}
	if len(st.CipherKeys) != 1 || st.CipherKeys[tckms.MustCMKRef(keyprovider.Fingerprint(target)).String()] < len(keys) {
		t.Errorf("cipherKeys after the migration: %v, want all %d under the target", st.CipherKeys, len(keys))
	}
	// The killed replica comes back and joins the load again.
	restarted := procs[victim].start()
	rs.setDown(victim, false, restarted)
	rs.restarted = map[int]bool{victim: true}
	l.phase("steady")
}

// leaseOwner reads who holds (or last held) a migration's lease.
func leaseOwner(t *testing.T, dsn, id string) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var owner string
	if err := conn.QueryRow(t.Context(), `SELECT lease_owner FROM migrations WHERE id = $1`, id).Scan(&owner); err != nil {
		t.Fatal(err)
	}
	return owner
}

func testReplicasDatabaseRestart(t *testing.T, rs *replicaSet, l *replicaLoad, db *tcpProxy) {
	ready := func(ts *testServer) int {
		status, _, err := call(ts, "/readyz", "", nil)
		if err != nil {
			return 0
		}
		return status
	}
	l.phase("database down")
	db.cut()
	cut := time.Now()
	for i, ts := range rs.servers {
		until(t, fmt.Sprintf("replica %d not ready", i), 30*time.Second, func() bool { return ready(ts) == 503 })
	}
	// Longer than a tenant copy is trusted without the database, so that
	// even warm tenants are refused (fail closed).
	until(t, "503s from every replica", 30*time.Second, func() bool {
		return time.Since(cut) > 3*time.Second && l.unavailableFromAll()
	})
	db.restore()
	restored := time.Now()
	l.phase("recovering")
	for i, ts := range rs.servers {
		until(t, fmt.Sprintf("replica %d ready again", i), 30*time.Second, func() bool { return ready(ts) == 200 })
	}
	l.phase("recovered")
	l.waitServed(t, 30)
	t.Logf("database down for %v; every replica ready %v after it came back", restored.Sub(cut).Round(time.Millisecond), time.Since(restored).Round(time.Millisecond))
}

// replicaLoad sends encrypt, decrypt and data key requests of one tenant
// to the replicas in turn, and keeps what it was given, to check at the end
// that all of it is still there, once.
type replicaLoad struct {
	rs    *replicaSet
	token string

	cur     atomic.Pointer[string] // the phase
	stopped chan struct{}
	stopper sync.Once
	wg      sync.WaitGroup
	next    atomic.Uint64

	mu       sync.Mutex
	cts      []crashedCiphertext
	keys     []crashedKey
	statuses map[string]map[int]map[int]int // phase → replica → status (0: no answer) → count
	dkFailed int                            // data key requests that got no 200
	bad      []string
}

func newReplicaLoad(rs *replicaSet, token string) *replicaLoad {
	l := &replicaLoad{rs: rs, token: token, stopped: make(chan struct{}), statuses: map[string]map[int]map[int]int{}}
	l.phase("setup")
	return l
}

func (l *replicaLoad) phase(p string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cur.Store(&p)
}

func (l *replicaLoad) start(clients int) {
	for c := range clients {
		l.wg.Go(func() { l.client(c) })
	}
}

func (l *replicaLoad) stop() {
	l.stopper.Do(func() { close(l.stopped) })
	l.wg.Wait()
}

func (l *replicaLoad) client(c int) {
	rng := rand.New(rand.NewPCG(uint64(c), 0x5eed))
	for n := 0; ; n++ {
		select {
		case <-l.stopped:
			return
		default:
		}
		i := int(l.next.Add(1) % uint64(len(l.rs.servers)))
		ts, up := l.rs.server(i)
		if !up {
			continue
		}
		phase := *l.cur.Load()
		ctx := map[string]string{"client": strconv.Itoa(c), "n": strconv.Itoa(n)}
		var status int
		var body []byte
		var err error
		switch n % 3 {
		case 0:
			pt := b64(fmt.Sprintf("client %d request %d", c, n))
			status, body, err = call(ts, "/api/v1/encryption/encrypt", l.token, map[string]any{"plaintext": pt, "context": ctx})
			var out api.EncryptResponse
			if status == 200 && json.Unmarshal(body, &out) == nil {
				l.mu.Lock()
				l.cts = append(l.cts, crashedCiphertext{ciphertext: out.Ciphertext, context: ctx, plaintext: pt})
				l.mu.Unlock()
			}
		case 1:
			status, body, err = call(ts, "/api/v1/encryption/datakeys", l.token, map[string]any{"context": ctx})
			var out api.DataKeyResponse
			l.mu.Lock()
			if status == 200 && json.Unmarshal(body, &out) == nil {
				l.keys = append(l.keys, crashedKey{handle: out.Handle, context: ctx, plaintext: out.Plaintext})
			} else {
				l.dkFailed++
			}
			l.mu.Unlock()
		case 2:
			l.mu.Lock()
			var sample crashedCiphertext
			if len(l.cts) > 0 {
				sample = l.cts[rng.IntN(len(l.cts))]
			}
			l.mu.Unlock()
			if sample.ciphertext == "" {
				continue
			}
			status, body, err = call(ts, "/api/v1/encryption/decrypt", l.token, map[string]any{"ciphertext": sample.ciphertext, "context": sample.context})
			var out api.DecryptResponse
			if status == 200 && (json.Unmarshal(body, &out) != nil || out.Plaintext != sample.plaintext) {
				l.fail("replica %d decrypted a ciphertext to something else", i)
			}
		}
		if err != nil {
			status = 0
		}
		_, stillUp := l.rs.server(i)
		l.record(phase, *l.cur.Load(), i, status, stillUp, body)
	}
}

func (l *replicaLoad) fail(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bad = append(l.bad, fmt.Sprintf(format, a...))
}

// record counts an answer under the phase its request began in. Only 200
// is expected while the database is up; while it is down (and until every
// replica is ready again), 503 too, also for a request that began before
// and ended after the cut; from a replica being killed, anything.
func (l *replicaLoad) record(phase, ended string, replica, status int, up bool, body []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.statuses[phase] == nil {
		l.statuses[phase] = map[int]map[int]int{}
	}
	if l.statuses[phase][replica] == nil {
		l.statuses[phase][replica] = map[int]int{}
	}
	l.statuses[phase][replica][status]++
	outage := func(p string) bool { return p == "database down" || p == "recovering" }
	ok := status == 200 || !up || status == 503 && (outage(phase) || outage(ended))
	if !ok && len(l.bad) < 20 {
		l.bad = append(l.bad, fmt.Sprintf("%s: replica %d answered %d: %.300s", phase, replica, status, body))
	}
}

// served counts the 200s of a phase per replica.
func (l *replicaLoad) served(phase string) []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]int, len(l.rs.servers))
	for r, byStatus := range l.statuses[phase] {
		out[r] = byStatus[200]
	}
	return out
}

// waitServed waits until every replica has served n requests of the load
// in the current phase.
func (l *replicaLoad) waitServed(t *testing.T, n int) {
	t.Helper()
	phase := *l.cur.Load()
	until(t, fmt.Sprintf("%d requests served by each replica (%s)", n, phase), time.Minute, func() bool {
		return slices.Min(l.served(phase)) >= n
	})
}

// unavailableFromAll reports whether every replica has answered 503 to the
// load while the database was down.
func (l *replicaLoad) unavailableFromAll() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.rs.servers {
		if l.statuses["database down"][i][503] == 0 {
			return false
		}
	}
	return true
}

// verify checks, after the load: every answer was one the phase allows;
// the load was spread; every ciphertext and data key handed out still
// decrypts, on every replica; the database holds each data key once, and
// no more than the requests that may have stored one; data-key rotation
// across the replicas never made two active keys nor used a key more than
// replicaMaxUses times.
func (l *replicaLoad) verify(t *testing.T, dsn string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.bad {
		t.Error(b)
	}
	for _, phase := range []string{"steady", "kill", "database down", "recovering", "recovered"} {
		t.Logf("load, %s: %v", phase, l.statuses[phase])
	}
	for i := range l.rs.servers {
		if l.statuses["steady"][i][200] == 0 {
			t.Errorf("replica %d served none of the load", i)
		}
	}
	t.Logf("verifying %d ciphertexts and %d data keys of the load", len(l.cts), len(l.keys))
	handles := map[string]bool{}
	for _, k := range l.keys {
		if handles[k.handle] {
			t.Errorf("data key handle %s handed out twice", k.handle)
		}
		handles[k.handle] = true
	}
	for i := range l.rs.servers {
		ts, _ := l.rs.server(i)
		keys, cts := l.keys, l.cts
		if i > 0 { // all of them on one replica, samples on the others
			keys, cts = sample(keys, 100), sample(cts, 100)
		}
		verifyDataKeys(t, ts, l.token, keys)
		for chunk := range slices.Chunk(cts, 500) {
			verifyCiphertexts(t, ts, l.token, chunk)
		}
	}

	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var stored int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM cipherkeys WHERE tenant_id = 'load' AND purpose = 'datakey'`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	// A request whose insert committed just as its connection was cut got
	// an error (the commit's answer was lost), and its key nobody has: an
	// orphan, not a duplicate. There cannot be more than failed requests.
	if stored < len(l.keys) || stored > len(l.keys)+l.dkFailed {
		t.Errorf("%d data keys stored for %d handed out and %d failed requests", stored, len(l.keys), l.dkFailed)
	} else {
		t.Logf("%d data keys stored: %d handed out, %d orphaned by a cut connection (of %d failed requests)", stored, len(l.keys), stored-len(l.keys), l.dkFailed)
	}
	rows, err := conn.Query(t.Context(), `SELECT tenant_id, count(*) FROM cipherkeys WHERE active GROUP BY tenant_id HAVING count(*) > 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var tenant string
		var n int
		if err := rows.Scan(&tenant, &n); err != nil {
			t.Fatal(err)
		}
		t.Errorf("tenant %s has %d active data keys", tenant, n)
	}
	rows.Close()
	var encKeys, overused int
	if err := conn.QueryRow(t.Context(), `SELECT count(*), count(*) FILTER (WHERE uses_reserved > $1) FROM cipherkeys
		WHERE tenant_id = 'load' AND purpose = 'encryption'`, replicaMaxUses).Scan(&encKeys, &overused); err != nil {
		t.Fatal(err)
	}
	if overused > 0 {
		t.Errorf("%d data keys had more than %d uses reserved", overused, replicaMaxUses)
	}
	uses := map[string]int{}
	for _, c := range l.cts {
		uses[keyIDOfText(t, c.ciphertext)]++
	}
	for id, n := range uses {
		if n > replicaMaxUses {
			t.Errorf("data key %s encrypted %d payloads, more than --key-max-uses %d", id, n, replicaMaxUses)
		}
	}
	t.Logf("the load's %d encryptions used %d data keys (%d stored), rotated across %d replicas", len(l.cts), len(uses), encKeys, len(l.rs.servers))
}

func sample[T any](s []T, n int) []T {
	if len(s) <= n {
		return s
	}
	out := make([]T, n)
	for i := range out {
		out[i] = s[rand.IntN(len(s))]
	}
	return out
}

// testReplicasIdleTurnsActive: a tenant that no replica has used since its
// migration is idle (its key checked only hourly). One replica now uses it,
// which caches its data key for the cache TTL (15 minutes), and the key is
// disabled right after: whichever replica claims the tenant's now-due check
// finds it, and the replica that holds the key refuses within the bound.
// Only that replica is asked, so that no other replica's on-use refusal
// brings the news instead of the key check.
func testReplicasIdleTurnsActive(t *testing.T, rs *replicaSet, primary *testkms.Server, tenant string) {
	ts := rs.servers[2]
	svc := ts.token(auth.RoleService, tenant)
	status, body, err := call(ts, "/api/v1/encryption/encrypt", svc, map[string]any{"plaintext": b64("idle no more")})
	if err != nil || status != 200 {
		t.Fatalf("first use of %s: %d %s %v", tenant, status, body, err)
	}
	var enc api.EncryptResponse
	if err := json.Unmarshal(body, &enc); err != nil {
		t.Fatal(err)
	}
	if _, err := primary.Client(t).DisableKey(context.Background(), &kms.DisableKeyInput{KeyId: aws.String(testkms.SecondMultiRegionKeyID)}); err != nil {
		t.Fatal(err)
	}
	disabled := time.Now()
	for {
		status, body, err := call(ts, "/api/v1/encryption/decrypt", svc, map[string]any{"ciphertext": enc.Ciphertext})
		switch {
		case err != nil:
			t.Fatalf("decrypt after DisableKey: %v", err)
		case status == 403 && strings.Contains(string(body), string(api.CodeKeyUnavailable)):
			took := time.Since(disabled)
			t.Logf("the replica holding %s's key refused %v after DisableKey (bound %v)", tenant, took.Round(time.Millisecond), replicaBound)
			if took > replicaBound {
				t.Errorf("refused %v after DisableKey, more than the bound %v", took, replicaBound)
			}
			return
		case status != 200:
			t.Fatalf("decrypt after DisableKey: %d %s", status, body)
		}
		if time.Since(disabled) > 3*replicaBound {
			t.Fatalf("decrypts of the tenant that turned active still succeed %v after DisableKey", time.Since(disabled))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
