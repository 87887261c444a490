package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
)

type rootKeyHSMArgs struct {
	dataDir, database, keyFile, to string
	hsm                            hsmConfig
}

// cmdRootKeyHSM runs `rootkey rotate` with an HSM root key and `rootkey
// migrate`, which work on the database and the HSM while the servers are
// stopped (migrate) or running (rotate).
func cmdRootKeyHSM(sub string, a rootKeyHSMArgs, env func(string) string, stdout, stderr io.Writer) int {
	cmd := "rootkey " + sub
	if sub == "migrate" && a.to != "pkcs11" && a.to != "file" {
		fmt.Fprintf(stderr, "%s: --to must be pkcs11 or file\n\n%s", cmd, rootkeyUsage)
		return exitUsage
	}
	if !a.hsm.enabled() {
		fmt.Fprintf(stderr, "%s: give the HSM with --pkcs11-module, --pkcs11-token, --pkcs11-key-label and --pkcs11-pin-file (or %s)\n", cmd, pinEnv)
		return exitUsage
	}
	if err := a.hsm.validate(env); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return exitUsage
	}
	if d := a.database; d != "" && !strings.HasPrefix(d, "postgres://") && !strings.HasPrefix(d, "postgresql://") && !strings.HasPrefix(d, "sqlite:") {
		fmt.Fprintf(stderr, "%s: --database must be sqlite:PATH or postgres://...\n", cmd)
		return exitUsage
	}
	ctx := context.Background()
	if a.database == "" {
		// Never create an empty database by mistake: the data directory
		// must hold one.
		if _, err := os.Stat(filepath.Join(a.dataDir, "tenantcrypt.db")); err != nil {
			fmt.Fprintf(stderr, "%s: no database in --data-dir %s (%v); give the servers' --data-dir or --database\n", cmd, a.dataDir, err)
			return exitFailure
		}
	}
	st, closeStore, _, err := openStore(ctx, a.database, a.dataDir)
	if err != nil {
		fmt.Fprintf(stderr, "%s: opening the database: %v\n", cmd, err)
		return exitFailure
	}
	defer closeStore()
	dev, err := a.hsm.open(env)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return exitFailure
	}
	defer dev.Close()

	switch {
	case sub == "rotate":
		v, err := internalkms.RotateDevice(ctx, dev, st)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
			return exitFailure
		}
		fmt.Fprintf(stdout, "root key version %d created in HSM token %q (key label %q) and recorded as current; reload (tenantcrypt rootkey reload) "+
			"or restart every server to rewrap tenant KEKs under it\n", v, dev.Token(), dev.KeyLabel())
		return exitOK
	case a.to == "pkcs11":
		file, path, err := migrationSourceKeys(a, env)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
			return exitFailure
		}
		defer file.Destroy()
		v, n, err := internalkms.MigrateToDevice(ctx, file, dev, st)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v (resealed %d KEK(s) so far; running the command again resumes)\n", cmd, err, n)
			return exitFailure
		}
		fmt.Fprintf(stdout, "moved the root key into HSM token %q (key label %q, version %d): resealed %d tenant KEK(s); "+
			"start the servers with the --pkcs11-* flags; %s no longer protects anything: destroy it (and its backups) once you no longer need to restore a database backup from before\n",
			dev.Token(), dev.KeyLabel(), v, n, path)
		return exitOK
	default: // --to file
		path := a.keyFile
		if path == "" {
			path = filepath.Join(a.dataDir, "root-keys.json")
		}
		file, err := migrationTargetFile(ctx, path, dev, st)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
			return exitFailure
		}
		defer file.Destroy()
		n, err := internalkms.MigrateToFile(ctx, dev, file, st)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v (resealed %d KEK(s) so far; running the command again resumes)\n", cmd, err, n)
			return exitFailure
		}
		start := "start the servers without the --pkcs11-* flags"
		if a.keyFile != "" {
			start += " and with --root-key-file " + path
		}
		fmt.Fprintf(stdout, "moved the root key out of HSM token %q into %s (version %d): resealed %d tenant KEK(s); %s\n",
			dev.Token(), path, file.Current(), n, start)
		return exitOK
	}
}

// migrationSourceKeys loads the root keys that seal the KEKs now: from
// TENANTCRYPT_ROOT_KEYS, or the key file.
func migrationSourceKeys(a rootKeyHSMArgs, env func(string) string) (*internalkms.RootKeys, string, error) {
	if v := env("TENANTCRYPT_ROOT_KEYS"); v != "" {
		r, err := internalkms.ParseRootKeys(v)
		return r, "TENANTCRYPT_ROOT_KEYS", err
	}
	path := a.keyFile
	if path == "" {
		path = filepath.Join(a.dataDir, "root-keys.json")
	}
	r, err := internalkms.LoadRootKeyFile(path)
	return r, path, err
}

// migrationTargetFile returns the key file to move the root key into, with
// a current version above every HSM version: it creates the file, or adds
// such a version to an existing one (keeping a version an interrupted
// earlier run added).
func migrationTargetFile(ctx context.Context, path string, dev hsmDevice, st internalkms.RootRecordStore) (*internalkms.RootKeys, error) {
	rec, err := st.RootRecord(ctx)
	if err != nil {
		return nil, err
	}
	if rec.Source != internalkms.RootSourcePKCS11 {
		return nil, fmt.Errorf("%w: the database records no HSM root key", internalkms.ErrRootNotInDevice)
	}
	onDevice, err := dev.ListVersions(ctx)
	if err != nil {
		return nil, err
	}
	top := rec.Current
	for _, v := range onDevice {
		top = max(top, v)
	}
	existing, err := internalkms.LoadRootKeyFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, err := internalkms.CreateRootKeyFile(path, top+1); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	case existing.Current() > top:
		return existing, nil
	default:
		existing.Destroy()
		if _, err := internalkms.RotateRootKeyFileAbove(path, top); err != nil {
			return nil, err
		}
	}
	return internalkms.LoadRootKeyFile(path)
}
