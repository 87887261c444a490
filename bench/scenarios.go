package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// runScenarios runs the scenarios the flags ask for (-tenants, then the
// CMK scenario, -noisy), prints their tables and writes -json.
func runScenarios(ctx context.Context, cfg config, stdout, stderr io.Writer) (*report, error) {
	rep := newReport(cfg, time.Now())
	tmp, bin, err := prepare(ctx, cfg, rep, stderr)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	for _, n := range cfg.tenants {
		res, err := runTenantCount(ctx, cfg, bin, tmp, n, stderr)
		if err != nil {
			return nil, fmt.Errorf("%d tenants: %w", n, err)
		}
		rep.Tenants = append(rep.Tenants, res)
	}
	if cfg.cmkTenants > 0 && (len(cfg.tenants) > 0 || cfg.cmkAlone) {
		res, err := runCMK(ctx, cfg, bin, tmp, stderr)
		if err != nil {
			return nil, fmt.Errorf("CMK scenario: %w", err)
		}
		rep.CMK = &res
	}
	if cfg.noisy {
		res, err := runNoisy(ctx, cfg, bin, tmp, stderr)
		if err != nil {
			return nil, fmt.Errorf("noisy-neighbour scenario: %w", err)
		}
		rep.Noisy = &res
	}
	rep.ElapsedSec = time.Since(rep.Started).Seconds()
	fmt.Fprintln(stdout)
	rep.printScenarios(stdout)
	if cfg.jsonFile != "" {
		if err := rep.writeJSON(cfg.jsonFile); err != nil {
			return rep, fmt.Errorf("writing -json: %w", err)
		}
	}
	return rep, nil
}

// printScenarios writes the scenarios' tables and the targets.
func (r *report) printScenarios(w io.Writer) {
	env := fmt.Sprintf("%s, %d CPUs, %s %s/%s, load average %.2f at the start", r.Config.Database, r.NumCPU, r.GoVersion, r.GOOS, r.GOARCH, r.LoadAvg)
	if len(r.Tenants) > 0 {
		fmt.Fprintf(w, "Many tenants: %s; %d clients, %d-byte encrypts\n\n", env, r.Tenants[0].Clients, r.Config.Size)
		fmt.Fprintln(w, "| tenants | created/s | create p50 / p99 ms | server CPU ms per creation | RSS start / created / warmed MiB | KiB per tenant | warm tenants | KiB per warm tenant | cold encrypt p50 / p99 ms | warm encrypt p50 / p99 ms | stop s | restart: ready / first encrypt s | RSS after restart MiB |")
		fmt.Fprintln(w, "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
		for _, t := range r.Tenants {
			fmt.Fprintf(w, "| %s | %s | %s | %.2f | %s / %s / %s | %.1f | %s | %.1f | %s | %s | %.2f | %.2f / %.2f | %s |\n",
				thousands(float64(t.Tenants)), thousands(t.CreatePerSec), t.Create, t.CreateCPUms, mib(t.RSSStart), mib(t.RSSCreated), mib(t.RSSWarmed),
				t.kibPerTenant(), thousands(float64(t.Warm)), t.KiBPerWarm, t.ColdEncrypt, t.WarmEncrypt, t.StopSec, t.RestartReady, t.RestartFirst, mib(t.RSSRestarted))
		}
		fmt.Fprintln(w)
		for _, t := range r.Tenants {
			fmt.Fprintf(w, "%s tenants: creation %s/s %s (target ≥ %d/s); memory per warm tenant %.1f KiB %s (target ≤ %d KiB)",
				thousands(float64(t.Tenants)), thousands(t.CreatePerSec), verdict(t.CreatePerSec >= targetCreatePerSec), targetCreatePerSec,
				t.KiBPerWarm, verdict(t.KiBPerWarm <= targetKiBPerWarm), targetKiBPerWarm)
			if t.Tenants >= targetRestartTenants {
				fmt.Fprintf(w, "; restart %.2f s %s (target ≤ %s with %s tenants)", t.RestartReady, verdict(t.RestartReady <= targetRestart.Seconds()),
					targetRestart, thousands(targetRestartTenants))
			}
			fmt.Fprintln(w, ".")
			if t.Warm < 200 {
				fmt.Fprintf(w, "  (%d warm tenants: the memory per warm tenant is within the garbage collector's noise; use a larger -warm)\n", t.Warm)
			}
		}
		fmt.Fprintln(w)
	}
	if r.CMK != nil {
		fmt.Fprintf(w, "KMS calls of %d tenants on a customer managed key (local-kms, two regions; --cache-ttl/--cache-idle %s, revocation bound 10 s): %s\n\n", r.CMK.Tenants, cmkCacheTTL, env)
		fmt.Fprintln(w, "| phase | window s | DescribeKey per tenant per minute | KMS calls per tenant per minute | calls by action |")
		fmt.Fprintln(w, "|---|--:|--:|--:|---|")
		for _, p := range r.CMK.Phases {
			fmt.Fprintf(w, "| %s | %.0f | %.2f | %.2f | %v |\n", p.Phase, p.WindowSec, p.DescribeKeyPerTenantMin, p.CallsPerTenantMin, p.Calls)
		}
		fmt.Fprintln(w)
		if len(r.CMK.Phases) > 0 {
			idle := r.CMK.Phases[0]
			fmt.Fprintf(w, "Key checks per idle CMK tenant: %.2f per minute %s (target ≤ %g).\n\n", idle.DescribeKeyPerTenantMin,
				verdict(idle.DescribeKeyPerTenantMin <= targetIdleChecks), targetIdleChecks)
		}
	}
	if n := r.Noisy; n != nil {
		fmt.Fprintf(w, "Noisy neighbour: --tenant-rate %g --tenant-burst %d; tenant A offers %g/s (%d×), tenant B %g/s; %s per phase; %s\n\n",
			n.Rate, n.Burst, n.AOffered, noisyFactor, n.QuietRate, seconds(n.DurationSec), env)
		fmt.Fprintln(w, "| | B p50 ms | B p99 ms | B max ms | B requests |")
		fmt.Fprintln(w, "|---|--:|--:|--:|--:|")
		fmt.Fprintf(w, "| B alone | %.2f | %.2f | %.2f | %d |\n", n.BAlone.P50ms, n.BAlone.P99ms, n.BAlone.MaxMs, n.BAlone.Count)
		fmt.Fprintf(w, "| B with A at %d× its quota | %.2f | %.2f | %.2f | %d |\n", noisyFactor, n.BWithA.P50ms, n.BWithA.P99ms, n.BWithA.MaxMs, n.BWithA.Count)
		fmt.Fprintln(w)
		fmt.Fprintf(w, "A sent %s/s, was served %s/s and refused (429 Encryption-13) %.1f %% of its requests; %d other errors. B: %d errors.\n",
			thousands(n.ASent), thousands(n.AOKPerSec), 100*n.ARefused, n.AOther, n.BErrors)
	}
	if r.LoadAvg > float64(r.NumCPU)/2 {
		fmt.Fprintf(w, "Warning: the host's load average was %.2f on %d CPUs when the run started: rerun on a quiet machine.\n", r.LoadAvg, r.NumCPU)
	}
}

// kibPerTenant is the memory a created (cold) tenant costs: the growth
// from the start to after the creation, per tenant.
func (t tenantsResult) kibPerTenant() float64 {
	return float64(t.RSSCreated-t.RSSStart) / 1024 / float64(max(t.Tenants, 1))
}

func verdict(met bool) string {
	if met {
		return "MET"
	}
	return "NOT MET"
}
