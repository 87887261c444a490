package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/client"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
)

// rootConfig is the internal KMS's part: where its root key is (a file,
// the environment, or an HSM).
type rootConfig struct {
	file string
	hsm  hsmConfig
}

func (c *rootConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.file, "root-key-file", "", "internal KMS root key file (default DATA-DIR/root-keys.json; created 0600); TENANTCRYPT_ROOT_KEYS=\"1:<base64>,...\" gives the keys themselves instead")
	c.hsm.flags(fs)
}

// validate checks the --pkcs11-* flags, which exclude the other root key
// sources.
func (c *rootConfig) validate(env func(string) string) error {
	err := c.hsm.validate(env)
	if c.hsm.enabled() && (c.file != "" || env("TENANTCRYPT_ROOT_KEYS") != "") {
		err = errors.Join(err, errors.New("an HSM root key (--pkcs11-*) excludes --root-key-file and TENANTCRYPT_ROOT_KEYS; "+
			"to move a file's keys into the HSM, see `tenantcrypt rootkey migrate`"))
	}
	return err
}

// keyFile is the root key file that serve loads (as loadRootKeys
// decides), or "" when the root keys come from TENANTCRYPT_ROOT_KEYS, which
// a running server cannot rotate or reload.
func (c *rootConfig) keyFile(dataDir string, env func(string) string) string {
	if env("TENANTCRYPT_ROOT_KEYS") != "" {
		return ""
	}
	if c.file != "" {
		return c.file
	}
	return filepath.Join(dataDir, "root-keys.json")
}

// loadRootKeys reads the root keys from TENANTCRYPT_ROOT_KEYS, else from
// the root key file (created if missing).
func loadRootKeys(cfg serveConfig, env func(string) string, log *slog.Logger) (*internalkms.RootKeys, error) {
	if v := env("TENANTCRYPT_ROOT_KEYS"); v != "" {
		log.Info("internal KMS root keys from the environment")
		return internalkms.ParseRootKeys(v)
	}
	path := cfg.root.keyFile(cfg.dataDir, env)
	if cfg.database == "" && filepath.Dir(path) == filepath.Clean(cfg.dataDir) {
		log.Warn("the root key file is in the same directory as the database: fine for development; in production keep it apart (--root-key-file or TENANTCRYPT_ROOT_KEYS)", "root_key_file", path)
	}
	return internalkms.LoadOrCreateRootKeyFile(path)
}

// loadRoot opens the internal KMS's root key: in the HSM the --pkcs11-*
// flags name (device is then that HSM), or else from the environment or the
// root key file, after checking that the database does not record an HSM
// root key, so that a start without the HSM is refused before it creates
// a key file. release closes or zeroes what it opened.
func loadRoot(ctx context.Context, cfg serveConfig, env func(string) string, st store, log *slog.Logger) (root internalkms.Root, device internalkms.Device, release func(), err error) {
	if cfg.root.hsm.enabled() {
		dev, err := cfg.root.hsm.open(env)
		if err != nil {
			return nil, nil, nil, err
		}
		rec, err := internalkms.OpenDevice(ctx, dev, st)
		if err != nil {
			dev.Close()
			return nil, nil, nil, err
		}
		log.Info("internal KMS root key in an HSM (PKCS#11)", "pkcs11_module", cfg.root.hsm.module, "pkcs11_token", rec.Token,
			"key_label", rec.KeyLabel, "root_version", rec.Current)
		return dev, dev, dev.Close, nil
	}
	if err := internalkms.CheckFileRoot(ctx, st); err != nil {
		return nil, nil, nil, err
	}
	roots, err := loadRootKeys(cfg, env, log)
	if err != nil {
		return nil, nil, nil, err
	}
	return roots, nil, roots.Destroy, nil
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
