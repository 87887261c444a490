// Command bench measures tenantcrypt's HTTP data plane against a bare HTTPS
// baseline: the figure that DESIGN.md's performance target is stated in
// (encrypt, 1 KiB, TLS, JWT at ≥ 75 % of the baseline's throughput with 16
// concurrent clients, measured in the same run).
//
// Run it from anywhere inside the module:
//
//	go run ./bench                                   # defaults, about 2.5 minutes
//	go run ./bench -duration 3s -concurrency 1,16    # a quick look
//	go run ./bench -http2=false                      # HTTP/1.1, one connection per client
//	go run ./bench -database postgres://... -json results.json
//	go run ./bench -database postgres://... -replicas 1,2,3 -concurrency 16
//
// It builds ./cmd/tenantcrypt into a temporary directory (or takes
// -server-bin), starts it on 127.0.0.1:0 with a temporary data directory
// (SQLite there, or the -database DSN), mints a platform-admin and a
// service token with `tenantcrypt token`, creates the tenant "bench"
// ("bench-<random>" with -database, so that runs never collide) and
// prepares ciphertexts for the decrypt load. It then measures, for each
// -concurrency level, in -rounds rounds in which the targets take turns,
// for -warmup plus -duration each (the median round of each target is
// reported, which keeps a shared machine's slow spells from landing on one
// target only):
//
//   - baseline: a bare HTTPS handler that checks an Authorization header is
//     present (without verifying it), decodes the same JSON request strictly
//     and encodes an answer of the same shape and size as tenantcrypt's
//     encrypt answer;
//   - encrypt: POST /api/v1/encryption/encrypt with -size random bytes;
//   - decrypt: POST /api/v1/encryption/decrypt of the prepared ciphertexts.
//
// With -batch N every target is sent batches of N items ({"items": [...]},
// 100 × 1 KiB is the issue-21 figure): the baseline then decodes the batch
// shape strictly and answers N items, and the report adds items/s.
//
// Each load is N goroutines looping request → response on one shared
// keep-alive http.Client; only requests that start after the warm-up and end
// before the deadline count. It prints a markdown table (req/s, the ratios
// to the baseline, p50/p99 latency, errors) and whether the DESIGN target is
// met; -json FILE also writes the raw figures. Both servers are stopped
// (SIGTERM, then waited for) when it ends, also on an error or Ctrl-C.
//
// # Fairness
//
// The baseline does not run in the load generator's process: bench
// re-executes itself with a hidden -baseline-server flag, so that the
// baseline, like tenantcrypt, is a separate process serving over loopback,
// and the load generator (this process) costs both the same. The baseline
// serves with the same TLS configuration as tenantcrypt
// (internal/tlsconfig, the development certificate from tenantcrypt's data
// directory), the same listener setup and the same http.Server timeouts;
// HTTP/2 or HTTP/1.1 is whatever the server negotiates with the client
// (-http2). All three processes share the machine's CPUs, as the DESIGN
// figures (a 2-core machine) assume: compare ratios, not absolute numbers,
// across machines.
//
// TENANTCRYPT_* environment variables are not passed to the servers, so
// that a developer's settings (a config file, a database, root keys) do not
// change what is measured; use -database for PostgreSQL.
//
// # Replicas
//
// With -replicas (PostgreSQL only) bench measures scale-out instead: it
// starts as many tenantcrypt processes as the largest count given, on the
// -database and one data directory (the same root keys and token issuer, as
// replicas share them), and for each count n runs the encrypt and decrypt
// loads spread over the first n (client i talks to replica i mod n), in
// rounds in which the counts take turns. It reports each count's throughput
// and its ratio to one replica's, measured in the same run. On a machine
// with few cores the replicas and the load generator share them, so the
// ratio cannot grow with n; what it shows is whether anything shared (the
// database, a lock, a lease) slows the data plane down as replicas are
// added: with no shared bottleneck on the hot path it stays close to 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
)

// baselineServerFlag, as the first argument, makes this binary the
// baseline server instead of the benchmark (see runBaselineServer).
const baselineServerFlag = "-baseline-server"

func main() {
	if len(os.Args) > 1 && os.Args[1] == baselineServerFlag {
		os.Exit(runBaselineServer(os.Args[2:], os.Stdin, os.Stderr))
	}
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	_, err = run(ctx, cfg, os.Stdout, os.Stderr)
	interrupted := ctx.Err() != nil
	stop()
	if interrupted {
		fmt.Fprintf(os.Stderr, "bench: interrupted (%v); the servers are stopped\n", err)
		os.Exit(1)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// config is what a run is told by its flags.
type config struct {
	levels    []int
	duration  time.Duration
	warmup    time.Duration
	rounds    int
	size      int
	batch     int // items per request; 0: single requests
	http2     bool
	database  string
	jsonFile  string
	serverBin string
	replicas  []int // replica counts to compare (PostgreSQL); none: the baseline comparison
	// serverArgs are extra flags for tenantcrypt serve, e.g. the
	// --pkcs11-* flags to measure an HSM root key.
	serverArgs serverArgs

	// The scenarios (scenarios.go); any of them replaces the baseline
	// comparison.
	tenants       []int   // -tenants: tenant counts
	warm          float64 // fraction of the tenants warmed
	tenantClients int     // concurrent clients of the scenarios
	cmkTenants    int     // tenants of the CMK scenario (0: none)
	cmkWindow     time.Duration
	cmkAlone      bool // -cmk-tenants given without -tenants: the CMK scenario alone
	noisy         bool
	noisyRate     float64 // --tenant-rate of the noisy-neighbour server
	noisyQuiet    float64 // tenant B's rate
	noisyDuration time.Duration
}

// serverArgs is the repeatable -server-arg flag.
type serverArgs []string

func (a *serverArgs) String() string     { return strings.Join(*a, " ") }
func (a *serverArgs) Set(v string) error { *a = append(*a, v); return nil }

// scenarios reports whether the run is the scenarios' rather than the
// baseline comparison's.
func (c config) scenarios() bool { return len(c.tenants) > 0 || c.cmkAlone || c.noisy }

// maxLevel bounds -concurrency: far beyond what one machine's loopback
// benchmark can tell apart, and it bounds memory and connections.
const maxLevel = 4096

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	levels := fs.String("concurrency", "1,4,16,64", "comma-separated numbers of concurrent clients, one load per level and target")
	fs.DurationVar(&cfg.duration, "duration", 3*time.Second, "measured time per target, level and round")
	fs.DurationVar(&cfg.warmup, "warmup", 1*time.Second, "unmeasured time before each measurement")
	fs.IntVar(&cfg.rounds, "rounds", 3, "rounds per level: the targets take turns, and each target's median round is reported, so that a slow spell of a shared machine hits all of them")
	fs.IntVar(&cfg.size, "size", 1024, "plaintext size in bytes")
	fs.IntVar(&cfg.batch, "batch", 0, "send batches of this many items ({\"items\": [...]}) to all three targets, the baseline decoding and answering the same batch shape; the report then adds items/s; 0: single requests")
	fs.BoolVar(&cfg.http2, "http2", true, "offer HTTP/2 (ALPN h2) as well as HTTP/1.1; false: HTTP/1.1 only")
	fs.StringVar(&cfg.database, "database", "", "tenantcrypt's --database (a postgres:// DSN); empty: SQLite in the temporary data directory")
	fs.StringVar(&cfg.jsonFile, "json", "", "also write the raw results to this JSON file")
	fs.StringVar(&cfg.serverBin, "server-bin", "", "use this tenantcrypt binary instead of building ./cmd/tenantcrypt")
	fs.Var(&cfg.serverArgs, "server-arg", "an extra argument for tenantcrypt serve (repeatable, one per word), e.g. -server-arg=--pkcs11-module -server-arg=/usr/lib/softhsm/libsofthsm2.so …; the server's environment keeps SOFTHSM2_CONF")
	replicas := fs.String("replicas", "", "comma-separated replica counts, e.g. 1,2,3: compare the data plane's throughput spread over that many tenantcrypt processes on -database (PostgreSQL), instead of against the baseline")
	tenants := fs.String("tenants", "", "comma-separated tenant counts, e.g. 1000,10000,100000: the many-tenants scenario (creation rate, memory, restart, cold and warm encrypt) for each, then the CMK scenario, instead of the baseline comparison")
	fs.Float64Var(&cfg.warm, "warm", 0.01, "fraction of the tenants that the many-tenants scenario warms (at least one)")
	fs.IntVar(&cfg.tenantClients, "tenant-clients", 4, "concurrent clients of the scenarios (creation, warming, the CMK tenants' setup)")
	fs.IntVar(&cfg.cmkTenants, "cmk-tenants", 20, "tenants on a customer managed key (local-kms) whose KMS calls are counted idle and warm, with -tenants or alone; 0: skip")
	fs.DurationVar(&cfg.cmkWindow, "cmk-window", time.Minute, "how long the CMK scenario counts KMS calls in each phase")
	fs.BoolVar(&cfg.noisy, "noisy", false, "the noisy-neighbour scenario: tenant B's latency alone and while tenant A sends at 10× its quota")
	fs.Float64Var(&cfg.noisyRate, "noisy-rate", 200, "the noisy-neighbour server's --tenant-rate (operations per second)")
	fs.Float64Var(&cfg.noisyQuiet, "noisy-b-rate", 50, "tenant B's request rate in the noisy-neighbour scenario")
	fs.DurationVar(&cfg.noisyDuration, "noisy-duration", 20*time.Second, "how long B is measured, alone and with A")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: go run ./bench [flags]\n\nMeasures tenantcrypt's encrypt and decrypt throughput against a bare HTTPS baseline.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if cfg.levels, err = parseLevels(*levels); err != nil {
		return config{}, err
	}
	if *replicas != "" {
		if cfg.replicas, err = parseReplicas(*replicas); err != nil {
			return config{}, err
		}
	}
	if *tenants != "" {
		if cfg.tenants, err = parseTenantCounts(*tenants); err != nil {
			return config{}, err
		}
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "cmk-tenants" && len(cfg.tenants) == 0 {
			cfg.cmkAlone = cfg.cmkTenants > 0
		}
	})
	var errs []error
	if cfg.duration <= 0 {
		errs = append(errs, errors.New("-duration must be positive"))
	}
	if cfg.rounds < 1 || cfg.rounds > 99 {
		errs = append(errs, errors.New("-rounds must be between 1 and 99"))
	}
	if cfg.warmup < 0 {
		errs = append(errs, errors.New("-warmup must not be negative"))
	}
	if cfg.size < 1 || cfg.size > 512<<10 {
		// tenantcrypt refuses request bodies over 1 MiB by default, and
		// base64 makes the plaintext 4/3 as large.
		errs = append(errs, errors.New("-size must be between 1 and 524288 bytes"))
	}
	if cfg.batch < 0 || cfg.batch > api.MaxBatchItems || cfg.batch*(cfg.size*4/3+64) > 900<<10 {
		errs = append(errs, fmt.Errorf("-batch must be between 0 and %d, and -batch × -size must fit a 1 MiB body in base64", api.MaxBatchItems))
	}
	if cfg.database != "" && !strings.HasPrefix(cfg.database, "postgres://") && !strings.HasPrefix(cfg.database, "postgresql://") {
		errs = append(errs, errors.New("-database must be a postgres:// DSN (empty for SQLite)"))
	}
	if len(cfg.replicas) > 0 && cfg.database == "" {
		errs = append(errs, errors.New("-replicas needs -database: replicas share a PostgreSQL database"))
	}
	if len(cfg.replicas) > 0 && cfg.scenarios() {
		errs = append(errs, errors.New("-replicas cannot be combined with -tenants, -cmk-tenants or -noisy"))
	}
	if !(cfg.warm > 0 && cfg.warm <= 1) {
		errs = append(errs, errors.New("-warm must be a fraction above 0 and at most 1"))
	}
	if cfg.tenantClients < 1 || cfg.tenantClients > maxLevel {
		errs = append(errs, fmt.Errorf("-tenant-clients must be between 1 and %d", maxLevel))
	}
	if cfg.cmkTenants < 0 || cfg.cmkTenants > maxCMKTenants {
		errs = append(errs, fmt.Errorf("-cmk-tenants must be between 0 and %d", maxCMKTenants))
	}
	if cfg.cmkWindow < time.Second {
		errs = append(errs, errors.New("-cmk-window must be at least 1s"))
	}
	if !(cfg.noisyRate >= 1 && cfg.noisyRate <= 100_000) {
		errs = append(errs, errors.New("-noisy-rate must be between 1 and 100000 operations per second"))
	}
	if !(cfg.noisyQuiet >= 1 && cfg.noisyQuiet <= 100_000) {
		errs = append(errs, errors.New("-noisy-b-rate must be between 1 and 100000 requests per second"))
	}
	if cfg.noisyDuration < time.Second {
		errs = append(errs, errors.New("-noisy-duration must be at least 1s"))
	}
	return cfg, errors.Join(errs...)
}

// parseLevels parses -concurrency: positive, distinct numbers, kept in the
// order given.
func parseLevels(s string) ([]int, error) {
	var levels []int
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		n, err := strconv.Atoi(part)
		if err != nil || n < 1 || n > maxLevel {
			return nil, fmt.Errorf("-concurrency: %q is not a number of clients between 1 and %d", part, maxLevel)
		}
		if slices.Contains(levels, n) {
			return nil, fmt.Errorf("-concurrency: %d is given twice", n)
		}
		levels = append(levels, n)
	}
	return levels, nil
}

// maxReplicas bounds -replicas: more processes than a benchmark machine
// can tell apart.
const maxReplicas = 16

// parseReplicas parses -replicas: positive, distinct counts, kept in the
// order given.
func parseReplicas(s string) ([]int, error) {
	var counts []int
	for part := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 1 || n > maxReplicas {
			return nil, fmt.Errorf("-replicas: %q is not a number of replicas between 1 and %d", part, maxReplicas)
		}
		if slices.Contains(counts, n) {
			return nil, fmt.Errorf("-replicas: %d is given twice", n)
		}
		counts = append(counts, n)
	}
	return counts, nil
}

// maxTenants bounds one -tenants count: a million tenants take an hour
// or more to create at the targets' rate.
const maxTenants = 1_000_000

// maxCMKTenants bounds -cmk-tenants: each is a goroutine encrypting five
// times a second in the warm phase.
const maxCMKTenants = 1000

// parseTenantCounts parses -tenants: positive, distinct counts, kept in
// the order given; "k" stands for thousand (100k).
func parseTenantCounts(s string) ([]int, error) {
	var counts []int
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		mult := 1
		if p, ok := strings.CutSuffix(part, "k"); ok {
			part, mult = p, 1000
		}
		n, err := strconv.Atoi(part)
		if err != nil || n < 1 || n > maxTenants/mult {
			return nil, fmt.Errorf("-tenants: %q is not a number of tenants between 1 and %d", part, maxTenants)
		}
		n *= mult
		if slices.Contains(counts, n) {
			return nil, fmt.Errorf("-tenants: %d is given twice", n)
		}
		counts = append(counts, n)
	}
	return counts, nil
}

// loadTime is how long the load phases take, without the setup.
func (c config) loadTime() time.Duration {
	if len(c.replicas) > 0 {
		return time.Duration(len(c.levels)*len(c.replicas)*len(replicaTargets)*c.rounds) * (c.warmup + c.duration)
	}
	return time.Duration(len(c.levels)*len(targetNames)*c.rounds) * (c.warmup + c.duration)
}
