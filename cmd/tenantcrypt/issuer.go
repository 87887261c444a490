package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/auth"
)

const issuerUsage = `Usage:
  tenantcrypt issuer rotate [--data-dir DIR] [--keep-for 25h]
      make a new signing key of the built-in JWT issuer current; the old key
      stays published at /.well-known/jwks.json for --keep-for, so tokens
      it signed keep verifying until they expire. A running server picks the
      new key up by itself.
`

func cmdIssuer(args []string, env func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprint(stdout, issuerUsage)
		return exitOK
	}
	if len(args) == 0 || args[0] != "rotate" {
		fmt.Fprint(stderr, issuerUsage)
		return exitUsage
	}
	fs := flag.NewFlagSet("issuer rotate", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "tenantcrypt-data", "the server's data directory (holds issuer-keys.json)")
	issuer := fs.String("issuer", auth.DefaultIssuerName, "the issuer's name (the server's --jwt-issuer)")
	keepFor := fs.Duration("keep-for", auth.MaxTokenTTL+time.Hour, "how long the replaced key stays published: at least the longest token lifetime")
	if code, ok := parseFlags(fs, subUsage(issuerUsage, "issuer", "rotate"), args[1:], stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "issuer rotate: unexpected argument %q\n\n%s", fs.Arg(0), issuerUsage)
		return exitUsage
	}
	if err := resolveFlags(fs, "", env); err != nil {
		fmt.Fprintf(stderr, "issuer rotate: %v\n", err)
		return exitUsage
	}
	if err := needIssuerKey(*dataDir, false); err != nil {
		fmt.Fprintf(stderr, "issuer rotate: %v\n", err)
		return exitFailure
	}
	iss, err := auth.LoadOrCreateIssuer(*dataDir, *issuer)
	if err != nil {
		fmt.Fprintf(stderr, "issuer rotate: %v\n", err)
		return exitFailure
	}
	if err := iss.Rotate(*keepFor); err != nil {
		fmt.Fprintf(stderr, "issuer rotate: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "new signing key %s; the previous key stays published for %s\n", iss.JWKS().Keys[0].KeyID, *keepFor)
	return exitOK
}
