package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
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
	fs := flag.NewFlagSet("encrypt", flag.ContinueOnError)
	var f cryptFlags
	f.register(fs)
	if _, ok := parseClientFlags(fs, args, env, stderr); !ok {
		return exitUsage
	}
	c, err := f.client()
	if err != nil {
		fmt.Fprintf(stderr, "encrypt: %v\n", err)
		return exitUsage
	}
	pt, err := f.read(stdin)
	if err != nil {
		fmt.Fprintf(stderr, "encrypt: reading input: %v\n", err)
		return exitFailure
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	ct, err := c.Encrypt(ctx, pt, f.contextOrNil())
	if err != nil {
		return fail(stderr, "encrypt", err)
	}
	if err := f.write(stdout, []byte(ct+"\n")); err != nil {
		fmt.Fprintf(stderr, "encrypt: writing output: %v\n", err)
		return exitFailure
	}
	return exitOK
}

func cmdDecrypt(args []string, env func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("decrypt", flag.ContinueOnError)
	var f cryptFlags
	f.register(fs)
	if _, ok := parseClientFlags(fs, args, env, stderr); !ok {
		return exitUsage
	}
	c, err := f.client()
	if err != nil {
		fmt.Fprintf(stderr, "decrypt: %v\n", err)
		return exitUsage
	}
	in, err := f.read(stdin)
	if err != nil {
		fmt.Fprintf(stderr, "decrypt: reading input: %v\n", err)
		return exitFailure
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	pt, err := c.Decrypt(ctx, string(bytes.TrimSpace(in)), f.contextOrNil())
	if err != nil {
		return fail(stderr, "decrypt", err)
	}
	if err := f.write(stdout, pt); err != nil {
		fmt.Fprintf(stderr, "decrypt: writing output: %v\n", err)
		return exitFailure
	}
	return exitOK
}
