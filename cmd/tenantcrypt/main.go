// Command tenantcrypt is tenantcrypt's server and command-line tool.
//
//	tenantcrypt serve --data-dir DIR --listen HOST:PORT   run the service
//	tenantcrypt token --data-dir DIR --role ROLE ...      mint a token
//	tenantcrypt tenant create|get|list|update|delete ...  manage tenants
//	tenantcrypt rootkey rotate|status|reload ...          rotate the internal KMS root key
//	tenantcrypt encrypt|decrypt ...                       use the data plane
//
// Every flag can also be set by an environment variable TENANTCRYPT_<FLAG>
// and, for serve, in a JSON config file (--config).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tenantcrypt/tenantcrypt/internal/coredump"
)

// Exit codes, for scripts.
const (
	exitOK          = 0
	exitFailure     = 1 // the operation failed (see the message)
	exitUsage       = 2 // bad command line or configuration
	exitNotFound    = 3 // the tenant or object does not exist
	exitAuth        = 4 // the token was refused (401) or lacks the role (403)
	exitUnavailable = 5 // the service, or its KMS, is unavailable; retry later
)

const usage = `tenantcrypt — per-tenant encryption service

Usage:
  tenantcrypt serve   [flags]            run the service (HTTPS)
  tenantcrypt token   [flags]            mint a token with the built-in issuer
  tenantcrypt tenant  create|get|list|update|delete|rotate-key [flags]
  tenantcrypt encrypt [flags]            encrypt stdin or --in, print the ciphertext
  tenantcrypt decrypt [flags]            decrypt a ciphertext from stdin or --in
  tenantcrypt rootkey rotate|activate|generate|migrate|status|reload
                                         manage the internal KMS root key
  tenantcrypt audit   export|public-keys|verify|check|rotate-signing-key
                                         export and verify the audit log (offline too)
  tenantcrypt issuer rotate              rotate the built-in JWT issuer's signing key
  tenantcrypt version                    print the version, revision, Go version and FIPS 140-3 mode

Run 'tenantcrypt COMMAND -h' for a command's flags. Every flag can also be set
with an environment variable TENANTCRYPT_<FLAG> (upper case, '-' as '_').

Exit codes: 0 ok, 1 failed, 2 usage, 3 not found, 4 unauthorized or forbidden,
5 unavailable (retry later).
`

func main() {
	// SIGINT and SIGTERM stop the server gracefully.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// Every command may hold keys or plaintext (token, rootkey, decrypt):
	// none may leave them in a core file. serve says at start how it went.
	_ = coredump.Disable()
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs one command; ctx ends the server.
func run(ctx context.Context, args []string, env func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(ctx, rest, env, stdout, stderr)
	case "token":
		return cmdToken(rest, env, stdout, stderr)
	case "tenant":
		return cmdTenant(rest, env, stdout, stderr)
	case "issuer":
		return cmdIssuer(rest, env, stdout, stderr)
	case "rootkey":
		return cmdRootKey(rest, env, stdout, stderr)
	case "audit":
		return cmdAudit(rest, env, stdout, stderr)
	case "encrypt":
		return cmdEncrypt(rest, env, stdin, stdout, stderr)
	case "decrypt":
		return cmdDecrypt(rest, env, stdin, stdout, stderr)
	case "version", "--version", "-version":
		return cmdVersion(rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "tenantcrypt: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}
