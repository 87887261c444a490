package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/tenantcrypt/tenantcrypt/api"
)

const tenantUsage = `Usage:
  tenantcrypt tenant create --name NAME --edition enterprise|business [--id ID] [--hipaa]
  tenantcrypt tenant get ID
  tenantcrypt tenant list [--after ID] [--limit N]
  tenantcrypt tenant update ID [--name NAME] [--edition E] [--hipaa=true|false]
  tenantcrypt tenant delete ID --yes      (destroys the tenant's keys: irreversible)
  tenantcrypt tenant rotate-key ID [--wait]
      rotate the tenant's internal KMS key (KEK) and rewrap its data keys under
      it in the background (--wait: until done); ciphertexts do not change
These need a platform-admin token (TENANTCRYPT_TOKEN or --token).
`

func cmdTenant(args []string, env func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, tenantUsage)
		return exitUsage
	}
	sub, args := args[0], args[1:]
	if isHelp(sub) {
		fmt.Fprint(stdout, tenantUsage)
		return exitOK
	}
	if sub == "rotate-key" {
		return cmdTenantRotateKey(args, env, stdout, stderr)
	}
	fs := flag.NewFlagSet("tenant "+sub, flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	var (
		id, name, edition, after string
		limit                    int
		yes                      bool
		hipaa                    optionalBool
	)
	switch sub {
	case "create":
		fs.StringVar(&id, "id", "", "tenant id (generated when empty)")
		fs.StringVar(&name, "name", "", "display name (required)")
		fs.StringVar(&edition, "edition", "", "enterprise or business (required)")
		fs.Var(&hipaa, "hipaa", "flag the tenant as HIPAA (needs a customer managed key)")
	case "update":
		fs.StringVar(&name, "name", "", "new display name")
		fs.StringVar(&edition, "edition", "", "new edition")
		fs.Var(&hipaa, "hipaa", "set or clear the HIPAA flag")
	case "list":
		fs.StringVar(&after, "after", "", "list tenants after this id")
		fs.IntVar(&limit, "limit", 100, "at most this many")
	case "delete":
		fs.BoolVar(&yes, "yes", false, "confirm: deleting a tenant destroys its keys and its data cannot be decrypted again")
	case "get":
	default:
		fmt.Fprintf(stderr, "tenant: unknown subcommand %q\n\n%s", sub, tenantUsage)
		return exitUsage
	}
	pos, code, ok := parseClientFlags(fs, subUsage(tenantUsage, "tenant", sub), args, env, stdout, stderr)
	if !ok {
		return code
	}
	needID := sub == "get" || sub == "update" || sub == "delete"
	if needID && len(pos) != 1 || !needID && len(pos) != 0 {
		fmt.Fprint(stderr, tenantUsage)
		return exitUsage
	}
	c, err := cf.client()
	if err != nil {
		fmt.Fprintf(stderr, "tenant %s: %v\n", sub, err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	var out any
	switch sub {
	case "create":
		if name == "" || edition == "" {
			fmt.Fprintln(stderr, "tenant create: --name and --edition are required")
			return exitUsage
		}
		out, err = c.CreateTenant(ctx, api.CreateTenantRequest{ID: id, Name: name, Edition: edition, HIPAA: hipaa.value})
	case "get":
		out, err = c.Tenant(ctx, pos[0])
	case "list":
		out, err = c.ListTenants(ctx, after, limit)
	case "update":
		req := api.UpdateTenantRequest{}
		if name != "" {
			req.Name = &name
		}
		if edition != "" {
			req.Edition = &edition
		}
		if hipaa.set {
			req.HIPAA = &hipaa.value
		}
		out, err = c.UpdateTenant(ctx, pos[0], req)
	case "delete":
		if !yes {
			fmt.Fprintln(stderr, "tenant delete: deleting a tenant destroys its keys and its data can never be decrypted again; add --yes to confirm")
			return exitUsage
		}
		err = c.DeleteTenant(ctx, pos[0])
		out = map[string]string{"deleted": pos[0]}
	}
	if err != nil {
		return fail(stderr, "tenant "+sub, err)
	}
	printJSON(stdout, out)
	return exitOK
}

// optionalBool is a bool flag that knows whether it was given.
type optionalBool struct{ set, value bool }

func (b *optionalBool) String() string { return fmt.Sprint(b.value) }
func (b *optionalBool) Set(s string) error {
	switch s {
	case "true", "1":
		b.value = true
	case "false", "0":
		b.value = false
	default:
		return fmt.Errorf("must be true or false")
	}
	b.set = true
	return nil
}
func (b *optionalBool) IsBoolFlag() bool { return true }
