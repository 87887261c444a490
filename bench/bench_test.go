package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/store/postgres/pgtest"
)

// TestMain lets the test binary be the baseline server too: run starts
// os.Executable() with -baseline-server, which is this binary under test.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == baselineServerFlag {
		os.Exit(runBaselineServer(os.Args[2:], os.Stdin, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestEndToEnd runs the whole benchmark briefly: both servers, all three
// loads, the table and the JSON file.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tenantcrypt and runs both servers; skipped with -short")
	}
	// Built once, apart from the run's time limit: from an empty build
	// cache, compiling the SQLite driver takes a minute or more.
	start := time.Now()
	bin, err := buildServer(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built tenantcrypt in %s", time.Since(start).Round(time.Millisecond))

	jsonFile := filepath.Join(t.TempDir(), "results.json")
	cfg, err := parseFlags([]string{"-duration", "300ms", "-warmup", "100ms", "-rounds", "1", "-concurrency", "2",
		"-json", jsonFile, "-server-bin", bin}, io.Discard)
	if err != nil {
		t.Fatalf("parseFlags: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	rep, err := run(ctx, cfg, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nprogress:\n%s", err, stderr.String())
	}

	if got, want := len(rep.Levels), 1; got != want {
		t.Fatalf("levels = %d, want %d", got, want)
	}
	l := rep.Levels[0]
	for _, res := range []result{l.Baseline, l.Encrypt, l.Decrypt} {
		if res.Concurrency != 2 {
			t.Errorf("%s: concurrency = %d, want 2", res.Target, res.Concurrency)
		}
		if res.RPS <= 0 || res.Requests == 0 {
			t.Errorf("%s: %d requests, %.0f req/s, want some", res.Target, res.Requests, res.RPS)
		}
		if res.Errors != 0 {
			t.Errorf("%s: %d errors, want none; first: %s", res.Target, res.Errors, res.FirstError)
		}
		if res.P50ms <= 0 || res.P99ms < res.P50ms || res.MaxMs < res.P99ms {
			t.Errorf("%s: p50 %.3f ms, p99 %.3f ms, max %.3f ms, want 0 < p50 ≤ p99 ≤ max", res.Target, res.P50ms, res.P99ms, res.MaxMs)
		}
	}
	for _, name := range targetNames {
		if p := rep.Protocols[name]; p != "HTTP/2.0" {
			t.Errorf("%s protocol = %q, want HTTP/2.0 (-http2 is on by default)", name, p)
		}
	}
	if l.EncryptRatio <= 0 || l.DecryptRatio <= 0 {
		t.Errorf("ratios = %.2f, %.2f, want both positive", l.EncryptRatio, l.DecryptRatio)
	}

	out := stdout.String()
	for _, want := range []string{"| clients | baseline req/s |", "| 2 |", "encrypt/baseline", "DESIGN target", "not measured in this run"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}

	data, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatalf("-json: %v", err)
	}
	var got report
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("-json: %v", err)
	}
	if len(got.Levels) != 1 || got.Levels[0].Encrypt.Requests != l.Encrypt.Requests || got.CiphertextLen <= 0 {
		t.Errorf("-json holds %+v, want the run's results", got)
	}

	// -batch: every target answers batches, without an error.
	cfg, err = parseFlags([]string{"-duration", "300ms", "-warmup", "100ms", "-rounds", "1", "-concurrency", "2",
		"-batch", "10", "-server-bin", bin}, io.Discard)
	if err != nil {
		t.Fatalf("parseFlags: %v", err)
	}
	stdout.Reset()
	if rep, err = run(ctx, cfg, &stdout, &stderr); err != nil {
		t.Fatalf("run -batch: %v\nprogress:\n%s", err, stderr.String())
	}
	for _, res := range []result{rep.Levels[0].Baseline, rep.Levels[0].Encrypt, rep.Levels[0].Decrypt} {
		if res.Requests == 0 || res.Errors != 0 {
			t.Errorf("-batch, %s: %d requests, %d errors, want some and none; first: %s", res.Target, res.Requests, res.Errors, res.FirstError)
		}
	}
	if out := stdout.String(); !strings.Contains(out, "| clients | baseline items/s |") {
		t.Errorf("-batch: the table lacks items/s:\n%s", out)
	}
}

func TestParseFlags(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		want    []int
		wantErr string // "": valid
	}{
		{nil, []int{1, 4, 16, 64}, ""},
		{[]string{"-concurrency", "16"}, []int{16}, ""},
		{[]string{"-concurrency", " 1, 16 "}, []int{1, 16}, ""},
		{[]string{"-concurrency", "1,0"}, nil, "between 1 and"},
		{[]string{"-concurrency", "1,,2"}, nil, "between 1 and"},
		{[]string{"-concurrency", "4,4"}, nil, "twice"},
		{[]string{"-duration", "0s"}, nil, "-duration"},
		{[]string{"-warmup", "-1s"}, nil, "-warmup"},
		{[]string{"-rounds", "0"}, nil, "-rounds"},
		{[]string{"-size", "0"}, nil, "-size"},
		{[]string{"-batch", "100"}, []int{1, 4, 16, 64}, ""},
		{[]string{"-batch", "1001"}, nil, "-batch"},
		{[]string{"-batch", "1000", "-size", "4096"}, nil, "-batch"},
		{[]string{"-database", "sqlite:x.db"}, nil, "postgres://"},
		{[]string{"-replicas", "1,2"}, nil, "-replicas needs -database"},
		{[]string{"-database", "postgres://x", "-replicas", "1,0"}, nil, "between 1 and"},
		{[]string{"-database", "postgres://x", "-replicas", "2,2"}, nil, "twice"},
		{[]string{"-database", "postgres://x", "-replicas", "1,2,3", "-concurrency", "16"}, []int{16}, ""},
		{[]string{"extra"}, nil, "unexpected argument"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			cfg, err := parseFlags(tt.args, io.Discard)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("err = %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
			case tt.wantErr == "" && !slices.Equal(cfg.levels, tt.want):
				t.Errorf("levels = %v, want %v", cfg.levels, tt.want)
			}
		})
	}
}

func TestDefaultsTakeAboutTwoAndAHalfMinutes(t *testing.T) {
	cfg, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.loadTime(); got < 2*time.Minute || got > 3*time.Minute {
		t.Errorf("default load time = %s, want about 2.5 minutes", got)
	}
}

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var d []time.Duration
		for _, n := range ns {
			d = append(d, time.Duration(n)*time.Millisecond)
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tt := range []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"p50 of 1..100", ms(hundred...), 0.50, 50 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 0.99, 99 * time.Millisecond},
		{"max", ms(hundred...), 1, 100 * time.Millisecond},
		{"min", ms(1, 2, 3), 0, 1 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.q); got != tt.want {
				t.Errorf("percentile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

func TestThousands(t *testing.T) {
	for _, tt := range []struct {
		x    float64
		want string
	}{
		{0, "0"}, {999.4, "999"}, {999.6, "1,000"}, {13950, "13,950"}, {1234567, "1,234,567"},
	} {
		if got := thousands(tt.x); got != tt.want {
			t.Errorf("thousands(%v) = %q, want %q", tt.x, got, tt.want)
		}
	}
}

func TestReportVerdict(t *testing.T) {
	for _, tt := range []struct {
		name         string
		level        int
		base, enc    float64
		wantMeasured bool
		wantIn       string
	}{
		{"met", 16, 1000, 800, true, "measured 0.80: MET"},
		{"not met", 16, 1000, 700, true, "measured 0.70: NOT MET"},
		{"other level", 4, 1000, 800, false, "not measured in this run"},
		{"baseline did nothing", 16, 0, 800, false, "not measured in this run"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _ := parseFlags(nil, io.Discard)
			r := newReport(cfg, time.Now())
			r.add(levelResult{Concurrency: tt.level, Baseline: result{RPS: tt.base}, Encrypt: result{RPS: tt.enc}, Decrypt: result{RPS: tt.enc}})
			if got := r.Target.Measured != nil; got != tt.wantMeasured {
				t.Fatalf("measured = %v, want %v", got, tt.wantMeasured)
			}
			var out bytes.Buffer
			r.printTable(&out)
			if !strings.Contains(out.String(), tt.wantIn) {
				t.Errorf("table lacks %q:\n%s", tt.wantIn, out.String())
			}
		})
	}
}

// TestReplicasEndToEnd runs the replicas comparison briefly on PostgreSQL:
// two tenantcrypt processes on one schema, the load spread over one and
// then both.
func TestReplicasEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tenantcrypt and runs two replicas; skipped with -short")
	}
	dsn := pgtest.DSN(t)
	bin, err := buildServer(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	jsonFile := filepath.Join(t.TempDir(), "results.json")
	cfg, err := parseFlags([]string{"-database", dsn, "-replicas", "1,2", "-duration", "300ms", "-warmup", "100ms",
		"-rounds", "1", "-concurrency", "4", "-json", jsonFile, "-server-bin", bin}, io.Discard)
	if err != nil {
		t.Fatalf("parseFlags: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	rep, err := run(ctx, cfg, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nprogress:\n%s", err, stderr.String())
	}
	if got := len(rep.Replicas); got != 2 {
		t.Fatalf("replica results = %d, want 2 (1 and 2 replicas)", got)
	}
	for _, r := range rep.Replicas {
		for _, res := range []result{r.Encrypt, r.Decrypt} {
			if res.Requests == 0 || res.Errors != 0 {
				t.Errorf("%d replicas, %s: %d requests, %d errors (first: %s), want some and none", r.Replicas, res.Target, res.Requests, res.Errors, res.FirstError)
			}
		}
	}
	if r := rep.Replicas[0]; r.Replicas != 1 || r.EncryptRatio != 1 || r.DecryptRatio != 1 {
		t.Errorf("one replica's row: %+v, want ratios of 1", r)
	}
	out := stdout.String()
	for _, want := range []string{"| replicas | clients |", "encrypt vs 1", "| 2 | 4 |"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	data, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatalf("-json: %v", err)
	}
	var got report
	if err := json.Unmarshal(data, &got); err != nil || len(got.Replicas) != 2 {
		t.Errorf("-json holds %+v (%v), want both replica counts", got.Replicas, err)
	}
}

func TestParseScenarioFlags(t *testing.T) {
	for _, tt := range []struct {
		args      []string
		tenants   []int
		scenarios bool
		cmkAlone  bool
		wantErr   string // "": valid
	}{
		{nil, nil, false, false, ""},
		{[]string{"-tenants", "1000, 10k,100000"}, []int{1000, 10000, 100000}, true, false, ""},
		{[]string{"-tenants", "1000", "-cmk-tenants", "5"}, []int{1000}, true, false, ""},
		{[]string{"-cmk-tenants", "5"}, nil, true, true, ""},
		{[]string{"-cmk-tenants", "0"}, nil, false, false, ""},
		{[]string{"-noisy"}, nil, true, false, ""},
		{[]string{"-tenants", "0"}, nil, false, false, "between 1 and"},
		{[]string{"-tenants", "10,10"}, nil, false, false, "twice"},
		{[]string{"-tenants", "1001k"}, nil, false, false, "between 1 and"},
		{[]string{"-tenants", "x"}, nil, false, false, "between 1 and"},
		{[]string{"-tenants", "10", "-warm", "0"}, nil, false, false, "-warm"},
		{[]string{"-tenants", "10", "-warm", "1.5"}, nil, false, false, "-warm"},
		{[]string{"-tenants", "10", "-tenant-clients", "0"}, nil, false, false, "-tenant-clients"},
		{[]string{"-cmk-tenants", "-1"}, nil, false, false, "-cmk-tenants"},
		{[]string{"-cmk-tenants", "2", "-cmk-window", "10ms"}, nil, false, false, "-cmk-window"},
		{[]string{"-noisy", "-noisy-rate", "0"}, nil, false, false, "-noisy-rate"},
		{[]string{"-noisy", "-noisy-b-rate", "0"}, nil, false, false, "-noisy-b-rate"},
		{[]string{"-noisy", "-noisy-duration", "0s"}, nil, false, false, "-noisy-duration"},
		{[]string{"-database", "postgres://x", "-replicas", "1,2", "-noisy"}, nil, false, false, "cannot be combined"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			cfg, err := parseFlags(tt.args, io.Discard)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("err = %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
			case tt.wantErr != "":
				return
			}
			if !slices.Equal(cfg.tenants, tt.tenants) || cfg.scenarios() != tt.scenarios || cfg.cmkAlone != tt.cmkAlone {
				t.Errorf("tenants %v, scenarios %v, cmkAlone %v; want %v, %v, %v", cfg.tenants, cfg.scenarios(), cfg.cmkAlone, tt.tenants, tt.scenarios, tt.cmkAlone)
			}
		})
	}
}

func TestWarmTenants(t *testing.T) {
	for _, tt := range []struct {
		n        int
		fraction float64
		want     int
	}{
		{1000, 0.01, 10}, {100000, 0.01, 1000}, {10, 0.01, 1}, {1, 1, 1}, {7, 0.5, 4}, {3, 1, 3},
	} {
		w := warmCount(tt.n, tt.fraction)
		if w != tt.want {
			t.Errorf("warmCount(%d, %v) = %d, want %d", tt.n, tt.fraction, w, tt.want)
		}
		// The warm tenants are distinct and all exist, from the first on.
		seen := map[int]bool{}
		for j := range w {
			i := warmIndex(j, w, tt.n)
			if i < 0 || i >= tt.n || seen[i] {
				t.Errorf("warmIndex(%d, %d, %d) = %d: out of range or repeated", j, w, tt.n, i)
			}
			seen[i] = true
		}
		if !seen[0] {
			t.Errorf("n=%d: the first tenant is not warm", tt.n)
		}
	}
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\ttenantcrypt\nVmPeak:\t 1000 kB\nVmRSS:\t   43212 kB\nThreads:\t9\n"
	if got, err := parseVmRSS([]byte(status)); err != nil || got != 43212*1024 {
		t.Errorf("parseVmRSS = %d, %v; want %d", got, err, 43212*1024)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t12 MB\n", "VmRSS:\t-1 kB\n", "VmRSS:\n"} {
		if got, err := parseVmRSS([]byte(bad)); err == nil {
			t.Errorf("parseVmRSS(%q) = %d, want an error", bad, got)
		}
	}
	// This process's own status parses.
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc:", err)
	}
	if got, err := parseVmRSS(data); err != nil || got <= 0 {
		t.Errorf("parseVmRSS(/proc/self/status) = %d, %v", got, err)
	}
}

func TestParseCPUTime(t *testing.T) {
	// Fields 14 and 15 (utime, stime) are 250 and 50 ticks; the command
	// name holds a space and a parenthesis.
	stat := "4242 (tenant crypt)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 123 456 789\n"
	if got, err := parseCPUTime([]byte(stat)); err != nil || got != 3*time.Second {
		t.Errorf("parseCPUTime = %v, %v; want 3s", got, err)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 x 5 0"} {
		if got, err := parseCPUTime([]byte(bad)); err == nil {
			t.Errorf("parseCPUTime(%q) = %v, want an error", bad, got)
		}
	}
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skip("no /proc:", err)
	}
	if _, err := parseCPUTime(data); err != nil {
		t.Errorf("parseCPUTime(/proc/self/stat): %v", err)
	}
}

func TestAddMultiRegion(t *testing.T) {
	const key = "mrk-0123"
	in := `{"KeyMetadata":{"KeyId":"mrk-0123","CreationDate":1.7e9,"Enabled":true}}`
	for _, region := range []string{cmkPrimary, cmkDR} {
		out, err := addMultiRegion([]byte(in), key, region)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			KeyMetadata struct {
				KeyID                    string `json:"KeyId"`
				CreationDate             json.Number
				MultiRegion              bool
				MultiRegionConfiguration struct {
					MultiRegionKeyType string
					PrimaryKey         struct{ Arn, Region string }
					ReplicaKeys        []struct{ Arn, Region string }
				}
			}
		}
		if err := json.Unmarshal(out, &doc); err != nil {
			t.Fatal(err)
		}
		md := doc.KeyMetadata
		wantKind := map[string]string{cmkPrimary: "PRIMARY", cmkDR: "REPLICA"}[region]
		if md.KeyID != key || md.CreationDate != "1.7e9" || !md.MultiRegion || md.MultiRegionConfiguration.MultiRegionKeyType != wantKind ||
			md.MultiRegionConfiguration.PrimaryKey.Region != cmkPrimary || len(md.MultiRegionConfiguration.ReplicaKeys) != 1 ||
			md.MultiRegionConfiguration.ReplicaKeys[0].Arn != "arn:aws:kms:"+cmkDR+":"+cmkAccount+":key/"+key {
			t.Errorf("%s: %s", region, out)
		}
	}
	if _, err := addMultiRegion([]byte(`{"KeyMetadata":{"KeyId":"other"}}`), key, cmkPrimary); err == nil {
		t.Error("another key was made multi-region")
	}
	if _, err := addMultiRegion([]byte(`not json`), key, cmkPrimary); err == nil {
		t.Error("a body that is not JSON was rewritten")
	}
}

func TestSeedFile(t *testing.T) {
	got := seedFile("mrk-ab", []byte{0xde, 0xad})
	for _, want := range []string{"Keys:\n  Symmetric:\n    Aes:\n", "KeyId: mrk-ab\n", "BackingKeys:\n          - dead\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("seed file lacks %q:\n%s", want, got)
		}
	}
}

func TestScenarioReport(t *testing.T) {
	cfg, err := parseFlags([]string{"-tenants", "100000", "-noisy"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	r := newReport(cfg, time.Now())
	r.Tenants = []tenantsResult{{Tenants: 100000, Clients: 4, CreatePerSec: 612, CreateCPUms: 1.25, Create: statsOf([]time.Duration{6 * time.Millisecond}),
		RSSStart: 20 << 20, RSSCreated: 120 << 20, RSSWarmed: 140 << 20, Warm: 1000, KiBPerWarm: 25, RestartReady: 6.5, RestartFirst: 6.6}}
	r.CMK = &cmkResult{Tenants: 20, Phases: []cmkPhase{{Phase: "idle", WindowSec: 60, DescribeKeyPerTenantMin: 0.5}}}
	r.Noisy = &noisyResult{Rate: 200, Burst: 1000, AOffered: 2000, QuietRate: 50, DurationSec: 20, ARefused: 0.9}
	var out bytes.Buffer
	r.printScenarios(&out)
	for _, want := range []string{
		"| 100,000 | 612 | 6.00 / 6.00 | 1.25 | 20.0 / 120.0 / 140.0 | 1.0 | 1,000 | 25.0 |",
		"creation 612/s MET (target ≥ 500/s)",
		"memory per warm tenant 25.0 KiB NOT MET (target ≤ 20 KiB)",
		"restart 6.50 s NOT MET (target ≤ 5s with 100,000 tenants)",
		"Key checks per idle CMK tenant: 0.50 per minute MET",
		"| B alone |", "refused (429 Encryption-13) 90.0 %",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestParallel(t *testing.T) {
	var mu sync.Mutex
	seen := map[int]int{}
	lat, err := parallel(t.Context(), 50, 4, func(_ context.Context, i int) error {
		mu.Lock()
		seen[i]++
		mu.Unlock()
		return nil
	})
	if err != nil || len(lat) != 50 || len(seen) != 50 {
		t.Fatalf("parallel: %d latencies, %d calls, %v; want 50, 50, none", len(lat), len(seen), err)
	}
	boom := errors.New("boom")
	if _, err := parallel(t.Context(), 50, 4, func(_ context.Context, i int) error {
		if i == 7 {
			return boom
		}
		return nil
	}); !errors.Is(err, boom) {
		t.Errorf("parallel with a failing call: %v, want boom", err)
	}
}
