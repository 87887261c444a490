package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

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
`

func cmdAudit(args []string, env func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return exitUsage
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("audit "+sub, flag.ContinueOnError)
	var cf clientFlags
	tenant := fs.String("tenant", "", "the tenant whose log to read (platform admins; _platform for platform events)")
	out := fs.String("out", "", "file to write (- for standard output)")
	file := fs.String("file", "", "the export to verify")
	keysFile := fs.String("public-keys", "", "the published keys, as `tenantcrypt audit public-keys` saved them")
	if sub != "verify" {
		cf.register(fs)
	}
	if _, ok := parseClientFlags(fs, args, env, stderr); !ok {
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
		return auditVerify(*file, *keysFile, stdout, stderr)
	case "export", "public-keys":
		if *out == "" {
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
		w, closeOut, err := createOut(*out, stdout)
		if err != nil {
			return fail(stderr, "audit "+sub, err)
		}
		if sub == "export" {
			err = c.ExportAudit(ctx, *tenant, w)
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
	case "check":
		c, err := cf.client()
		if err != nil {
			return fail(stderr, "audit check", err)
		}
		v, err := c.VerifyAudit(ctx, *tenant)
		if err != nil {
			return fail(stderr, "audit check", err)
		}
		printJSON(stdout, v)
		if !v.Valid {
			return exitFailure
		}
		return exitOK
	}
	fmt.Fprintf(stderr, "audit: unknown subcommand %q\n\n%s", sub, auditUsage)
	return exitUsage
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
