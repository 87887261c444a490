package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// isHelp reports whether arg asks for help, as the flag package
// understands it (-h, -help, --help), or is the word help.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// subUsage is the part of a command group's usage text about one
// subcommand: its synopsis lines ("  tenantcrypt GROUP SUB ..." and the
// indented lines under it) and the group's closing notes.
func subUsage(usage, group, sub string) string {
	var b strings.Builder
	b.WriteString("Usage:\n")
	in := false
	for _, line := range strings.SplitAfter(usage, "\n") {
		switch {
		case strings.HasPrefix(line, "  tenantcrypt "):
			rest := strings.TrimPrefix(line, "  tenantcrypt "+group+" ")
			in = rest != line && (strings.HasPrefix(rest, sub+" ") || strings.HasPrefix(rest, sub+"\n"))
		case strings.HasPrefix(line, "    "):
		case line == "Usage:\n":
			in = false
			continue
		default:
			in = line != ""
		}
		if in {
			b.WriteString(line)
		}
	}
	return b.String()
}

// printUsage writes a command's synopsis and its flags to w.
func printUsage(w io.Writer, fs *flag.FlagSet, synopsis string) {
	fmt.Fprint(w, synopsis)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprintf(w, "\nFlags of tenantcrypt %s (each also TENANTCRYPT_<FLAG>, upper case, '-' as '_'):\n", fs.Name())
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
}

// parseFlags parses one command's flags. With -h it prints the command's
// usage and flags on stdout and says to exit 0; a bad flag prints the
// problem and the usage on stderr and says to exit 2. ok is false when the
// command must return code at once.
func parseFlags(fs *flag.FlagSet, synopsis string, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	fs.SetOutput(stderr)
	fs.Usage = func() {} // printed below, on the right stream
	err := fs.Parse(args)
	switch {
	case err == nil:
		return exitOK, true
	case errors.Is(err, flag.ErrHelp):
		printUsage(stdout, fs, synopsis)
		return exitOK, false
	}
	printUsage(stderr, fs, synopsis)
	return exitUsage, false
}
