package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/audit"
)

const auditUsage = `Usage:
  tenantcrypt audit export [--tenant ID] --out FILE [client flags]
      write a tenant's whole audit log (checkpoints and events) as JSON Lines;
      a tenant admin's token exports its own tenant, a platform admin names
      one with --tenant (or _platform)
  tenantcrypt audit public-keys --out FILE [client flags]
      save the keys that sign audit checkpoints (no token needed)
  tenantcrypt audit verify --file FILE --public-keys FILE
      verify an export offline: every event chained and unaltered, every
      checkpoint signed by a published key; exit 0 if valid, 1 if not
  tenantcrypt audit check [--tenant ID] [client flags]
      ask the server to verify the stored log
  tenantcrypt audit rotate-signing-key [--data-dir DIR | --audit-key-file FILE]
      add a new checkpoint-signing key to the key file and make it current;
      the old keys stay in the file and published, so the checkpoints they
      signed still verify. Copy the file to every replica and restart them
      (see docs/operations.md)
`

func cmdAudit(args []string, env func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return exitUsage
	}
	sub, args := args[0], args[1:]
	if isHelp(sub) {
		fmt.Fprint(stdout, auditUsage)
		return exitOK
	}
	// Each subcommand has only its own flags.
	fs := flag.NewFlagSet("audit "+sub, flag.ContinueOnError)
	var (
		cf                          clientFlags
		tenant, out, file, keysFile string
		dataDir, keyFile            string
	)
	switch sub {
	case "export", "check":
		fs.StringVar(&tenant, "tenant", "", "the tenant whose log to read (platform admins; _platform for platform events)")
	}
	switch sub {
	case "export", "public-keys":
		fs.StringVar(&out, "out", "", "file to write (- for standard output)")
	case "verify":
		fs.StringVar(&file, "file", "", "the export to verify")
		fs.StringVar(&keysFile, "public-keys", "", "the `FILE` of published keys, as tenantcrypt audit public-keys saved it")
	case "rotate-signing-key":
		fs.StringVar(&dataDir, "data-dir", "tenantcrypt-data", "the server's data directory")
		fs.StringVar(&keyFile, "audit-key-file", "", "the signing key file (default DATA-DIR/audit-signing-keys.json; the server's --audit-key-file)")
	}
	switch sub {
	case "export", "public-keys", "check":
		cf.register(fs)
	case "verify", "rotate-signing-key":
	default:
		fmt.Fprintf(stderr, "audit: unknown subcommand %q\n\n%s", sub, auditUsage)
		return exitUsage
	}
	pos, code, ok := parseClientFlags(fs, subUsage(auditUsage, "audit", sub), args, env, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "audit %s: unexpected argument %q\n\n%s", sub, pos[0], auditUsage)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(cf.timeout, 1))
	if sub == "export" {
		cancel()
		ctx, cancel = context.WithCancel(context.Background()) // an export may be long
	}
	defer cancel()
	switch sub {
	case "verify":
		return auditVerify(file, keysFile, stdout, stderr)
	case "rotate-signing-key":
		if keyFile == "" {
			keyFile = filepath.Join(dataDir, "audit-signing-keys.json")
		}
		return auditRotateSigningKey(keyFile, stdout, stderr)
	case "export", "public-keys":
		if out == "" {
			fmt.Fprintf(stderr, "audit %s: --out is required\n", sub)
			return exitUsage
		}
		if sub == "public-keys" && cf.token == "" && cf.tokenFile == "" {
			cf.token = "-" // the route needs none; the client insists on one
		}
		c, err := cf.client()
		if err != nil {
			return fail(stderr, "audit "+sub, err)
		}
		w, closeOut, err := createOut(out, stdout)
		if err != nil {
			return fail(stderr, "audit "+sub, err)
		}
		if sub == "export" {
			err = c.ExportAudit(ctx, tenant, w)
		} else {
			var keys api.AuditPublicKeys
			if keys, err = c.AuditPublicKeys(ctx); err == nil {
				err = json.NewEncoder(w).Encode(keys)
			}
		}
		if cerr := closeOut(); err == nil {
			err = cerr
		}
		if err != nil {
			return fail(stderr, "audit "+sub, err)
		}
		return exitOK
	}
	// check
	c, err := cf.client()
	if err != nil {
		return fail(stderr, "audit check", err)
	}
	v, err := c.VerifyAudit(ctx, tenant)
	if err != nil {
		return fail(stderr, "audit check", err)
	}
	printJSON(stdout, v)
	if !v.Valid {
		return exitFailure
	}
	return exitOK
}

// auditRotateSigningKey adds a new current key to an existing signing key
// file; it refuses to create one (a wrong --data-dir would otherwise make a
// key no server uses).
func auditRotateSigningKey(path string, stdout, stderr io.Writer) int {
	if _, err := os.Stat(path); err != nil {
		fmt.Fprintf(stderr, "audit rotate-signing-key: no audit signing key file at %s (%v); give the server's --data-dir or --audit-key-file\n", path, err)
		return exitFailure
	}
	s, err := audit.LoadOrCreateSigner(path)
	if err != nil {
		fmt.Fprintf(stderr, "audit rotate-signing-key: %v\n", err)
		return exitFailure
	}
	if err := s.Rotate(path); err != nil {
		fmt.Fprintf(stderr, "audit rotate-signing-key: %v\n", err)
		return exitFailure
	}
	keys := s.PublicKeys()
	fmt.Fprintf(stdout, "new audit signing key %s is current in %s (%d keys, the old ones kept for verification); "+
		"copy the file to every replica and restart them\n", keys[len(keys)-1].KeyID, path, len(keys))
	return exitOK
}

func createOut(path string, stdout io.Writer) (io.Writer, func() error, error) {
	if path == "-" {
		return stdout, func() error { return nil }, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, nil, err
	}
	return f, f.Close, nil
}

// auditVerify verifies an export offline against the published keys.
func auditVerify(file, keysFile string, stdout, stderr io.Writer) int {
	if file == "" || keysFile == "" {
		fmt.Fprint(stderr, "audit verify: --file and --public-keys are required\n")
		return exitUsage
	}
	kb, err := os.ReadFile(keysFile)
	if err != nil {
		return fail(stderr, "audit verify", err)
	}
	var published api.AuditPublicKeys
	if err := json.Unmarshal(kb, &published); err != nil {
		return fail(stderr, "audit verify", fmt.Errorf("%s is not a key set saved by `tenantcrypt audit public-keys`: %v", keysFile, err))
	}
	keys, err := audit.KeysFromAPI(published)
	if err != nil {
		return fail(stderr, "audit verify", err)
	}
	f, err := os.Open(file)
	if err != nil {
		return fail(stderr, "audit verify", err)
	}
	defer f.Close()
	rep, err := audit.VerifyExport(f, keys)
	if err != nil {
		return fail(stderr, "audit verify", err)
	}
	printJSON(stdout, audit.ReportToAPI(rep))
	if !rep.Valid {
		fmt.Fprintf(stderr, "audit verify: NOT VALID at seq %d: %s\n", rep.Problem.Seq, rep.Problem.Reason)
		return exitFailure
	}
	return exitOK
}
