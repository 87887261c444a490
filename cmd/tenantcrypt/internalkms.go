package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/client"
)

// rootKeyFile is the root key file that serve loads (as loadRootKeys
// decides), or "" when the root keys come from TENANTCRYPT_ROOT_KEYS, which
// a running server cannot rotate or reload.
func rootKeyFile(cfg serveConfig, env func(string) string) string {
	if env("TENANTCRYPT_ROOT_KEYS") != "" {
		return ""
	}
	if cfg.rootKeyFile != "" {
		return cfg.rootKeyFile
	}
	return filepath.Join(cfg.dataDir, "root-keys.json")
}

// cmdRootKeyOnline runs the rootkey subcommands that call a server's API:
// status and reload.
func cmdRootKeyOnline(sub string, args []string, env func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rootkey "+sub, flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	var wait bool
	if sub == "reload" {
		fs.BoolVar(&wait, "wait", false, "wait until the server's background rewrap has finished (bounded by --timeout); exit 1 if it failed")
	}
	pos, code, ok := parseClientFlags(fs, subUsage(rootkeyUsage, "rootkey", sub), args, env, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		fmt.Fprint(stderr, rootkeyUsage)
		return exitUsage
	}
	c, err := cf.client()
	if err != nil {
		fmt.Fprintf(stderr, "rootkey %s: %v\n", sub, err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	var doc api.InternalKMS
	switch sub {
	case "status":
		doc, err = c.InternalKMS(ctx)
	case "reload":
		doc, err = c.ReloadRootKeys(ctx)
		if err == nil && wait {
			// The answer counted the KEKs before the rewrap; count again.
			var job api.RotationJob
			if job, err = waitForJob(ctx, c, doc.Job); err == nil {
				doc, err = c.InternalKMS(ctx)
				doc.Job = job
			}
		}
	}
	if err != nil {
		return fail(stderr, "rootkey "+sub, err)
	}
	printJSON(stdout, doc)
	if !wait {
		return exitOK
	}
	return jobExit(stderr, "rootkey "+sub, doc.Job)
}

// cmdTenantRotateKey is `tenant rotate-key ID [--wait]`.
func cmdTenantRotateKey(args []string, env func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tenant rotate-key", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	wait := fs.Bool("wait", false, "wait until the background rewrap of the tenant's data keys has finished (bounded by --timeout); exit 1 if it failed")
	pos, code, ok := parseClientFlags(fs, subUsage(tenantUsage, "tenant", "rotate-key"), args, env, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprint(stderr, tenantUsage)
		return exitUsage
	}
	c, err := cf.client()
	if err != nil {
		fmt.Fprintf(stderr, "tenant rotate-key: %v\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	r, err := c.RotateTenantKey(ctx, pos[0])
	if err == nil && *wait {
		r.Job, err = waitForJob(ctx, c, r.Job)
	}
	if err != nil {
		return fail(stderr, "tenant rotate-key", err)
	}
	printJSON(stdout, r)
	if !*wait {
		return exitOK
	}
	return jobExit(stderr, "tenant rotate-key", r.Job)
}

// waitForJob polls the server until the run job no longer runs, and
// returns its final status (or, if another run has replaced it on the
// server meanwhile, that one's).
func waitForJob(ctx context.Context, c *client.Client, job api.RotationJob) (api.RotationJob, error) {
	for job.State == "running" {
		select {
		case <-ctx.Done():
			return job, fmt.Errorf("the background rewrap (run %s) is still running; it goes on in the server (rewrapped %d so far): %w",
				job.ID, job.Rewrapped, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
		doc, err := c.InternalKMS(ctx)
		if err != nil {
			return job, err
		}
		if doc.Job.ID != job.ID {
			return doc.Job, nil
		}
		job = doc.Job
	}
	return job, nil
}

// jobExit makes a background run that was waited for and failed fail the
// command too.
func jobExit(stderr io.Writer, cmd string, job api.RotationJob) int {
	if job.State == "failed" {
		fmt.Fprintf(stderr, "%s: the background rewrap failed: %s\n", cmd, job.Error)
		return exitFailure
	}
	return exitOK
}
