package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The DESIGN.md target: encrypt at ≥ 75 % of the baseline's throughput with
// 16 concurrent clients.
const (
	targetRatio       = 0.75
	targetConcurrency = 16
)

// report is a run's results, as -json writes them.
type report struct {
	Started    time.Time `json:"started"`
	ElapsedSec float64   `json:"elapsed_seconds"`
	GoVersion  string    `json:"go_version"`
	GOOS       string    `json:"goos"`
	GOARCH     string    `json:"goarch"`
	NumCPU     int       `json:"num_cpu"`
	// LoadAvg is the host's 1-minute load average when the run started
	// (Linux only; -1 elsewhere): other work on the machine skews the
	// figures, the baseline's and tenantcrypt's differently.
	LoadAvg float64 `json:"load_average_1m"`
	Config  struct {
		Concurrency []int   `json:"concurrency"`
		DurationSec float64 `json:"duration_seconds"`
		WarmupSec   float64 `json:"warmup_seconds"`
		Rounds      int     `json:"rounds"`
		Size        int     `json:"size"`
		Batch       int     `json:"batch,omitempty"` // items per request; 0: single requests
		HTTP2       bool    `json:"http2"`
		Database    string  `json:"database"` // "sqlite" or "postgres", never the DSN
	} `json:"config"`
	// Protocols is the protocol each target's server negotiated.
	Protocols     map[string]string `json:"protocols"`
	CiphertextLen int               `json:"ciphertext_length"`
	Levels        []levelResult     `json:"levels,omitempty"`
	Target        targetCheck       `json:"target"`
	// Replicas is the comparison of replica counts (-replicas), instead of
	// Levels.
	Replicas []replicaResult `json:"replicas,omitempty"`
	// The scenarios' figures (-tenants, -cmk-tenants, -noisy), instead of
	// Levels.
	Tenants []tenantsResult `json:"tenants,omitempty"`
	CMK     *cmkResult      `json:"cmk,omitempty"`
	Noisy   *noisyResult    `json:"noisy,omitempty"`
}

// levelResult is one concurrency level's loads.
type levelResult struct {
	Concurrency  int     `json:"concurrency"`
	Baseline     result  `json:"baseline"`
	Encrypt      result  `json:"encrypt"`
	Decrypt      result  `json:"decrypt"`
	EncryptRatio float64 `json:"encrypt_to_baseline"` // 0 if the baseline did nothing
	DecryptRatio float64 `json:"decrypt_to_baseline"`
}

// targetCheck is the DESIGN target and, if the run measured it, the verdict.
type targetCheck struct {
	MinRatio    float64  `json:"min_encrypt_to_baseline"`
	Concurrency int      `json:"concurrency"`
	Measured    *float64 `json:"measured,omitempty"`
	Met         *bool    `json:"met,omitempty"`
}

func newReport(cfg config, started time.Time) *report {
	r := &report{
		Started: started, GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, NumCPU: runtime.NumCPU(),
		LoadAvg:   loadAverage(),
		Protocols: map[string]string{},
		Target:    targetCheck{MinRatio: targetRatio, Concurrency: targetConcurrency},
	}
	r.Config.Concurrency = slices.Clone(cfg.levels)
	r.Config.DurationSec = cfg.duration.Seconds()
	r.Config.WarmupSec = cfg.warmup.Seconds()
	r.Config.Rounds = cfg.rounds
	r.Config.Size = cfg.size
	r.Config.Batch = cfg.batch
	r.Config.HTTP2 = cfg.http2
	r.Config.Database = "sqlite"
	if cfg.database != "" {
		r.Config.Database = "postgres"
	}
	return r
}

// add records one level's results and, at the target's level, the verdict.
func (r *report) add(l levelResult) {
	l.EncryptRatio = ratio(l.Encrypt.RPS, l.Baseline.RPS)
	l.DecryptRatio = ratio(l.Decrypt.RPS, l.Baseline.RPS)
	r.Levels = append(r.Levels, l)
	if l.Concurrency == targetConcurrency && l.Baseline.RPS > 0 {
		got, met := l.EncryptRatio, l.EncryptRatio >= targetRatio
		r.Target.Measured, r.Target.Met = &got, &met
	}
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// printTable writes the results as a markdown table and the verdict.
func (r *report) printTable(w io.Writer) {
	protos := make([]string, 0, len(targetNames))
	for _, name := range targetNames {
		protos = append(protos, name+" "+r.Protocols[name])
	}
	fmt.Fprintf(w, "tenantcrypt data plane vs. a bare HTTPS+JSON baseline: %d-byte plaintext, %s, %s, median of %d rounds of %s warm-up + %s per cell, %d CPUs, %s %s/%s\n\n",
		r.Config.Size, strings.Join(protos, ", "), r.Config.Database,
		r.Config.Rounds, seconds(r.Config.WarmupSec), seconds(r.Config.DurationSec), r.NumCPU, r.GoVersion, r.GOOS, r.GOARCH)
	fmt.Fprintln(w, "| clients | baseline req/s | encrypt req/s | decrypt req/s | encrypt/baseline | decrypt/baseline | baseline p50 / p99 ms | encrypt p50 / p99 ms | decrypt p50 / p99 ms | errors b/e/d |")
	fmt.Fprintln(w, "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, l := range r.Levels {
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %d/%d/%d |\n",
			l.Concurrency, thousands(l.Baseline.RPS), thousands(l.Encrypt.RPS), thousands(l.Decrypt.RPS),
			ratioText(l.EncryptRatio), ratioText(l.DecryptRatio),
			latencies(l.Baseline), latencies(l.Encrypt), latencies(l.Decrypt),
			l.Baseline.Errors, l.Encrypt.Errors, l.Decrypt.Errors)
	}
	fmt.Fprintln(w)
	if b := r.Config.Batch; b > 0 {
		fmt.Fprintf(w, "Batches of %d items per request: items/s = req/s × %d.\n\n", b, b)
		fmt.Fprintln(w, "| clients | baseline items/s | encrypt items/s | decrypt items/s |")
		fmt.Fprintln(w, "|--:|--:|--:|--:|")
		for _, l := range r.Levels {
			fmt.Fprintf(w, "| %d | %s | %s | %s |\n", l.Concurrency,
				thousands(l.Baseline.RPS*float64(b)), thousands(l.Encrypt.RPS*float64(b)), thousands(l.Decrypt.RPS*float64(b)))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "DESIGN target: encrypt ≥ %.2f × baseline throughput at %d concurrent clients (1 KiB, TLS, JWT)", targetRatio, targetConcurrency)
	switch {
	case r.Target.Measured == nil:
		fmt.Fprintf(w, " — not measured in this run (add %d to -concurrency).\n", targetConcurrency)
	case *r.Target.Met:
		fmt.Fprintf(w, " — measured %.2f: MET.\n", *r.Target.Measured)
	default:
		fmt.Fprintf(w, " — measured %.2f: NOT MET.\n", *r.Target.Measured)
	}
	if r.LoadAvg > float64(r.NumCPU)/2 {
		fmt.Fprintf(w, "Warning: the host's load average was %.2f on %d CPUs when the run started: other processes compete for the CPUs and skew the ratios; rerun on a quiet machine.\n", r.LoadAvg, r.NumCPU)
	}
	if r.Config.Size != 1024 {
		fmt.Fprintf(w, "Note: the target is stated for 1024-byte plaintexts; this run used %d.\n", r.Config.Size)
	}
	for _, l := range r.Levels {
		for _, res := range []result{l.Baseline, l.Encrypt, l.Decrypt} {
			if res.FirstError != "" {
				fmt.Fprintf(w, "First error, %s at %d clients: %s\n", res.Target, res.Concurrency, res.FirstError)
			}
		}
	}
}

func (r *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func latencies(r result) string {
	if r.Requests == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f / %.2f", r.P50ms, r.P99ms)
}

func ratioText(x float64) string {
	if x == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", x)
}

func seconds(s float64) string { return time.Duration(s * float64(time.Second)).String() }

// thousands formats x rounded, with thousands separators: 13,950.
func thousands(x float64) string {
	s := strconv.FormatInt(int64(x+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// loadAverage is the host's 1-minute load average, -1 if unknown.
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return -1
	}
	x, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return -1
	}
	return x
}
