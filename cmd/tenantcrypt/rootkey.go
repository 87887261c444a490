package main

import (
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
)

const rootkeyUsage = `Usage:
  tenantcrypt rootkey rotate [--data-dir DIR | --root-key-file FILE]
      add a new root key version to the key file and make it current; then
      restart every server: at start each rewraps the tenant KEKs under it
  tenantcrypt rootkey generate
      print a fresh root key as a TENANTCRYPT_ROOT_KEYS value ("1:<base64>"),
      for operators who keep the root key in a secret store, not a file
`

func cmdRootKey(args []string, env func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, rootkeyUsage)
		return exitUsage
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("rootkey "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "tenantcrypt-data", "the server's data directory")
	file := fs.String("root-key-file", "", "the root key file (default DATA-DIR/root-keys.json)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if err := resolveFlags(fs, "", env); err != nil {
		fmt.Fprintf(stderr, "rootkey: %v\n", err)
		return exitUsage
	}
	switch sub {
	case "rotate":
		path := *file
		if path == "" {
			path = filepath.Join(*dataDir, "root-keys.json")
		}
		v, err := internalkms.RotateRootKeyFile(path)
		if err != nil {
			fmt.Fprintf(stderr, "rootkey rotate: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(stdout, "root key version %d is now current in %s; restart the servers to rewrap tenant KEKs under it\n", v, path)
		return exitOK
	case "generate":
		var k [32]byte
		if _, err := rand.Read(k[:]); err != nil {
			fmt.Fprintf(stderr, "rootkey generate: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(stdout, "1:%s\n", base64.StdEncoding.EncodeToString(k[:]))
		clear(k[:])
		return exitOK
	}
	fmt.Fprintf(stderr, "rootkey: unknown subcommand %q\n\n%s", sub, rootkeyUsage)
	return exitUsage
}
