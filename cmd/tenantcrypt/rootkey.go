package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strconv"

	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
)

const rootkeyUsage = `Usage:
  tenantcrypt rootkey rotate [--stage] [--data-dir DIR | --root-key-file FILE]
      add a new root key version to the key file and make it current; then
      reload every server (tenantcrypt rootkey reload) or restart them: each
      rewraps the tenant KEKs under it in the background. With --stage the
      version is added but not made current: load it into every server
      first, then activate it (several servers; see docs/operations.md)
  tenantcrypt rootkey rotate --pkcs11-module PATH --pkcs11-token LABEL
      --pkcs11-key-label LABEL [--pkcs11-pin-file FILE] [--data-dir DIR | --database DSN]
      with the root key in an HSM: create the next version in the HSM and
      record it as current in the database; then reload (or restart) every
      server, which rewraps the tenant KEKs under it
  tenantcrypt rootkey migrate --to pkcs11|file --pkcs11-... [--data-dir DIR |
      --database DSN] [--root-key-file FILE]
      move the root key from the key file (or TENANTCRYPT_ROOT_KEYS) into the
      HSM, or back into a key file: reseals every tenant KEK; stop every
      server first, start them with the new root key after (docs/operations.md)
  tenantcrypt rootkey activate VERSION [--data-dir DIR | --root-key-file FILE]
      make a staged version current; then reload every server
  tenantcrypt rootkey generate
      print a fresh root key as a TENANTCRYPT_ROOT_KEYS value ("1:<base64>"),
      for operators who keep the root key in a secret store, not a file
  tenantcrypt rootkey status [--server URL]
      show a server's root key versions, the KEKs each seals, and its
      background rewrap job
  tenantcrypt rootkey reload [--server URL] [--wait]
      make a server load its key file again (with an HSM: the current version
      the database records) and rewrap the tenant KEKs under the current
      version in the background (--wait: until it has finished)
rotate, activate, generate and migrate work offline on the key file (and on
the database and the HSM, whose PIN comes from --pkcs11-pin-file or
TENANTCRYPT_PKCS11_PIN); status and reload call the server's API with a
platform-admin token (TENANTCRYPT_TOKEN or --token). A running server can also rotate its own file: POST
/api/v1/internal-kms/actions/rotate-root-key.
`

func cmdRootKey(args []string, env func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, rootkeyUsage)
		return exitUsage
	}
	sub, args := args[0], args[1:]
	if isHelp(sub) {
		fmt.Fprint(stdout, rootkeyUsage)
		return exitOK
	}
	switch sub {
	case "status", "reload":
		return cmdRootKeyOnline(sub, args, env, stdout, stderr)
	case "rotate", "activate", "generate", "migrate":
	default:
		fmt.Fprintf(stderr, "rootkey: unknown subcommand %q\n\n%s", sub, rootkeyUsage)
		return exitUsage
	}
	fs := flag.NewFlagSet("rootkey "+sub, flag.ContinueOnError)
	dataDir := fs.String("data-dir", "tenantcrypt-data", "the server's data directory")
	file := fs.String("root-key-file", "", "the root key file (default DATA-DIR/root-keys.json)")
	var stage bool
	if sub == "rotate" {
		fs.BoolVar(&stage, "stage", false, "add the version without making it current (activate it once every server has loaded it)")
	}
	var hc hsmConfig
	var database, to string
	if sub == "rotate" || sub == "migrate" {
		hc.flags(fs)
		fs.StringVar(&database, "database", "", "the servers' database, as serve's --database (default: SQLite in DATA-DIR)")
	}
	if sub == "migrate" {
		fs.StringVar(&to, "to", "", "pkcs11 (from the key file into the HSM) or file (from the HSM into the key file)")
	}
	pos, code, ok := parseClientFlags(fs, subUsage(rootkeyUsage, "rootkey", sub), args, env, stdout, stderr)
	if !ok {
		return code
	}
	if sub == "migrate" || (sub == "rotate" && hc.enabled()) {
		if len(pos) != 0 || (sub == "rotate" && stage) {
			fmt.Fprint(stderr, rootkeyUsage)
			return exitUsage
		}
		return cmdRootKeyHSM(sub, rootKeyHSMArgs{dataDir: *dataDir, database: database, keyFile: *file, to: to, hsm: hc}, env, stdout, stderr)
	}
	wantPos := 0
	if sub == "activate" {
		wantPos = 1
	}
	if len(pos) != wantPos {
		fmt.Fprint(stderr, rootkeyUsage)
		return exitUsage
	}
	path := *file
	if path == "" {
		path = filepath.Join(*dataDir, "root-keys.json")
	}
	switch sub {
	case "rotate":
		if stage {
			v, err := internalkms.StageRootKeyFile(path)
			if err != nil {
				fmt.Fprintf(stderr, "rootkey rotate: %v%s\n", err, noKeyFileHint(err))
				return exitFailure
			}
			fmt.Fprintf(stdout, "root key version %d added to %s, not current yet; load it into every server (tenantcrypt rootkey reload), "+
				"then run `tenantcrypt rootkey activate %d` and reload every server again\n", v, path, v)
			return exitOK
		}
		v, err := internalkms.RotateRootKeyFile(path)
		if err != nil {
			fmt.Fprintf(stderr, "rootkey rotate: %v%s\n", err, noKeyFileHint(err))
			return exitFailure
		}
		fmt.Fprintf(stdout, "root key version %d is now current in %s; reload (tenantcrypt rootkey reload) or restart the servers to rewrap tenant KEKs under it\n", v, path)
		return exitOK
	case "activate":
		v, err := strconv.ParseUint(pos[0], 10, 32)
		if err != nil || v == 0 {
			fmt.Fprintf(stderr, "rootkey activate: VERSION must be a root key version number (got %q)\n", pos[0])
			return exitUsage
		}
		if err := internalkms.PromoteRootKeyVersion(path, uint32(v)); err != nil {
			fmt.Fprintf(stderr, "rootkey activate: %v%s\n", err, noKeyFileHint(err))
			return exitFailure
		}
		fmt.Fprintf(stdout, "root key version %d is now current in %s; reload every server (tenantcrypt rootkey reload) to rewrap tenant KEKs under it\n", v, path)
		return exitOK
	}
	// generate
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		fmt.Fprintf(stderr, "rootkey generate: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "1:%s\n", base64.StdEncoding.EncodeToString(k[:]))
	clear(k[:])
	return exitOK
}

// noKeyFileHint points an operator whose root key is in an HSM, and so has
// no key file, at the --pkcs11-* flags.
func noKeyFileHint(err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return "; if the root key is in an HSM, give the --pkcs11-* flags (and --data-dir or --database) to rotate it there"
	}
	return ""
}
