package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/tenantcrypt/tenantcrypt/client"
)

// contextFlag collects --context key=value pairs.
type contextFlag map[string]string

func (c contextFlag) String() string { return "" }
func (c contextFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("must be key=value")
	}
	c[k] = val
	return nil
}

type cryptFlags struct {
	clientFlags
	in, out string
	ectx    contextFlag
}

func (f *cryptFlags) register(fs *flag.FlagSet) {
	f.clientFlags.register(fs)
	f.ectx = contextFlag{}
	fs.StringVar(&f.in, "in", "-", "input file ('-' for stdin)")
	fs.StringVar(&f.out, "out", "-", "output file ('-' for stdout)")
	fs.Var(f.ectx, "context", "encryption context pair key=value (repeatable); decrypt needs the same pairs")
}

func (f *cryptFlags) read(stdin io.Reader) ([]byte, error) {
	if f.in == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(f.in)
}

func (f *cryptFlags) write(stdout io.Writer, data []byte) error {
	if f.out == "-" {
		_, err := stdout.Write(data)
		return err
	}
	return os.WriteFile(f.out, data, 0o600)
}

func (f *cryptFlags) contextOrNil() map[string]string {
	if len(f.ectx) == 0 {
		return nil
	}
	return f.ectx
}

func cmdEncrypt(args []string, env func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runCrypt("encrypt", args, env, stdin, stdout, stderr,
		func(ctx context.Context, c *client.Client, in []byte, ectx map[string]string) ([]byte, error) {
			ct, err := c.Encrypt(ctx, in, ectx)
			return []byte(ct + "\n"), err
		})
}

func cmdDecrypt(args []string, env func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runCrypt("decrypt", args, env, stdin, stdout, stderr,
		func(ctx context.Context, c *client.Client, in []byte, ectx map[string]string) ([]byte, error) {
			return c.Decrypt(ctx, string(bytes.TrimSpace(in)), ectx)
		})
}

const cryptUsage = `Usage:
  tenantcrypt %s [--in FILE] [--out FILE] [--context KEY=VALUE]... [client flags]
      %s the input (stdin or --in) with the service and write the result
      (stdout or --out); needs a service token of the tenant
      (TENANTCRYPT_TOKEN, --token or --token-file)
`

// runCrypt is encrypt and decrypt: read the input, call the service, write
// the output, and say what failed with an exit code a script can use.
func runCrypt(name string, args []string, env func(string) string, stdin io.Reader, stdout, stderr io.Writer,
	op func(ctx context.Context, c *client.Client, in []byte, ectx map[string]string) ([]byte, error)) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var f cryptFlags
	f.register(fs)
	synopsis := fmt.Sprintf(cryptUsage, name, name)
	if _, code, ok := parseClientFlags(fs, synopsis, args, env, stdout, stderr); !ok {
		return code
	}
	c, err := f.client()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitUsage
	}
	in, err := f.read(stdin)
	if err != nil {
		fmt.Fprintf(stderr, "%s: reading input: %v\n", name, err)
		return exitFailure
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	out, err := op(ctx, c, in, f.contextOrNil())
	if err != nil {
		return fail(stderr, name, err)
	}
	if err := f.write(stdout, out); err != nil {
		fmt.Fprintf(stderr, "%s: writing output: %v\n", name, err)
		return exitFailure
	}
	return exitOK
}
