package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

// envName is the environment variable that sets a flag:
// TENANTCRYPT_<FLAG>, upper case, '-' as '_'.
func envName(flagName string) string {
	return "TENANTCRYPT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// resolveFlags fills every flag not given on the command line from its
// environment variable, else from the config file (a JSON object keyed by
// flag name), in that order of precedence: command line, environment, file,
// default. Repeatable flags take a comma-separated list from the
// environment and a list or a string from the file.
func resolveFlags(fs *flag.FlagSet, configFile string, getenv func(string) string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var file map[string]json.RawMessage
	if configFile != "" {
		data, err := os.ReadFile(configFile)
		if err != nil {
			return fmt.Errorf("reading config file: %w", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(data)))
		if err := dec.Decode(&file); err != nil {
			return fmt.Errorf("config file %s: must be a JSON object of flag names to values: %w", configFile, err)
		}
		for name := range file {
			if fs.Lookup(name) == nil {
				return fmt.Errorf("config file %s: unknown setting %q (settings are the flag names of this command)", configFile, name)
			}
		}
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == "config" {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if err := setAll(f, splitList(f, v)); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(f.Name), err))
			}
			return
		}
		raw, ok := file[f.Name]
		if !ok {
			return
		}
		vals, err := fileValues(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("config file setting %q: %w", f.Name, err))
			return
		}
		if err := setAll(f, vals); err != nil {
			errs = append(errs, fmt.Errorf("config file setting %q: %w", f.Name, err))
		}
	})
	return errors.Join(errs...)
}

// listFlag is a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func splitList(f *flag.Flag, v string) []string {
	if _, ok := f.Value.(*listFlag); ok {
		return strings.Split(v, ",")
	}
	return []string{v}
}

func setAll(f *flag.Flag, vals []string) error {
	for _, v := range vals {
		if err := f.Value.Set(strings.TrimSpace(v)); err != nil {
			return err
		}
	}
	return nil
}

// fileValues accepts a JSON string, number, bool or a list of them.
func fileValues(raw json.RawMessage) ([]string, error) {
	var list []any
	if json.Unmarshal(raw, &list) == nil {
		out := make([]string, 0, len(list))
		for _, v := range list {
			out = append(out, fmt.Sprint(v))
		}
		return out, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	switch v.(type) {
	case string, float64, bool:
		return []string{fmt.Sprint(v)}, nil
	}
	return nil, errors.New("must be a string, number, boolean or a list of them")
}
