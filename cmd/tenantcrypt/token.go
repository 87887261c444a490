package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
)

func cmdToken(args []string, env func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "tenantcrypt-data", "the server's data directory (holds the issuer's signing keys)")
	tenant := fs.String("tenant", "", "tenant id (required for tenant-admin and service; omitted for platform-admin)")
	var roles listFlag
	fs.Var(&roles, "role", "platform-admin, tenant-admin or service (repeatable, or comma-separated)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime; negative mints an already-expired token (for tests)")
	subject := fs.String("subject", "", "the token's subject (default: cli:<role>)")
	audience := fs.String("audience", auth.DefaultAudience, "the token's audience")
	issuer := fs.String("issuer", auth.DefaultIssuerName, "the token's issuer (the server's --jwt-issuer)")
	if err := fs.Parse(args); err != nil {
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
