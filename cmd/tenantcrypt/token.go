package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
)

const tokenUsage = `Usage:
  tenantcrypt token --role ROLE [--tenant T] [--ttl D] [--subject S] [--data-dir DIR]
      print a JWT signed by the built-in issuer's key in the server's data
      directory (DIR/issuer-keys.json, made by the server's first start);
      --create makes a new issuer key when there is none
`

func cmdToken(args []string, env func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "tenantcrypt-data", "the server's data directory (holds the issuer's signing keys)")
	tenant := fs.String("tenant", "", "tenant id (required for tenant-admin and service; omitted for platform-admin)")
	var roles listFlag
	fs.Var(&roles, "role", "platform-admin, tenant-admin or service (repeatable, or comma-separated)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime; negative mints an already-expired token (for tests)")
	subject := fs.String("subject", "", "the token's subject (default: cli:<role>)")
	audience := fs.String("audience", auth.DefaultAudience, "the token's audience")
	issuer := fs.String("issuer", auth.DefaultIssuerName, "the token's issuer (the server's --jwt-issuer)")
	create := fs.Bool("create", false, "create the data directory and a new issuer key if there is none (a server started on that directory later verifies the tokens)")
	if code, ok := parseFlags(fs, tokenUsage, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "token: unexpected argument %q\n\n%s", fs.Arg(0), tokenUsage)
		return exitUsage
	}
	if err := resolveFlags(fs, "", env); err != nil {
		fmt.Fprintf(stderr, "token: %v\n", err)
		return exitUsage
	}
	var parsed []auth.Role
	for _, list := range roles {
		for _, name := range strings.Split(list, ",") {
			r, err := auth.ParseRole(strings.TrimSpace(name))
			if err != nil {
				fmt.Fprintf(stderr, "token: --role %q: must be platform-admin, tenant-admin or service\n", name)
				return exitUsage
			}
			parsed = append(parsed, r)
		}
	}
	if len(parsed) == 0 {
		fmt.Fprintln(stderr, "token: --role is required")
		return exitUsage
	}
	tenantScoped := false
	for _, r := range parsed {
		tenantScoped = tenantScoped || r == auth.RoleTenantAdmin || r == auth.RoleService
	}
	if tenantScoped && *tenant == "" {
		fmt.Fprintln(stderr, "token: --tenant is required for the tenant-admin and service roles")
		return exitUsage
	}
	if *tenant != "" && !api.ValidTenantID(*tenant) {
		fmt.Fprintf(stderr, "token: --tenant %q is not a tenant id: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit (%q is never a tenant)\n", *tenant, "_platform")
		return exitUsage
	}
	if *subject == "" {
		*subject = "cli:" + parsed[0].String()
	}
	if err := needIssuerKey(*dataDir, *create); err != nil {
		fmt.Fprintf(stderr, "token: %v\n", err)
		return exitFailure
	}
	iss, err := auth.LoadOrCreateIssuer(*dataDir, *issuer)
	if err != nil {
		fmt.Fprintf(stderr, "token: %v\n", err)
		return exitFailure
	}
	tok, err := iss.Mint(auth.TokenRequest{Subject: *subject, TenantID: *tenant, Roles: parsed, TTL: *ttl, Audience: *audience})
	if err != nil {
		fmt.Fprintf(stderr, "token: %v\n", err)
		return exitFailure
	}
	fmt.Fprintln(stdout, tok)
	return exitOK
}

// needIssuerKey refuses a data directory without the built-in issuer's key
// unless create is set: a mistyped --data-dir (or a command run from
// another directory) would otherwise make a new key that the server does
// not know, and its tokens would fail there with "unknown key id".
func needIssuerKey(dataDir string, create bool) error {
	path := filepath.Join(dataDir, auth.IssuerKeyFile)
	_, err := os.Stat(path)
	switch {
	case err == nil || create:
		return nil
	case errors.Is(err, os.ErrNotExist):
		abs, aerr := filepath.Abs(dataDir)
		if aerr != nil {
			abs = dataDir
		}
		return fmt.Errorf("no built-in issuer key in the data directory %s (%s does not exist): "+
			"give the server's directory with --data-dir or TENANTCRYPT_DATA_DIR (the server creates the key at its first start), "+
			"or add --create to make a new key there", abs, auth.IssuerKeyFile)
	}
	return fmt.Errorf("reading the issuer key: %w", err)
}
