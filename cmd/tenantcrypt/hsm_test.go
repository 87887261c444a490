package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHSMConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pinFile := filepath.Join(dir, "pin")
	if err := os.WriteFile(pinFile, []byte("4711\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open-pin")
	if err := os.WriteFile(open, []byte("4711\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	full := hsmConfig{module: "/lib/p11.so", token: "tok", keyLabel: "root", pinFile: pinFile}
	noEnv := func(string) string { return "" }
	pinInEnv := func(k string) string {
		if k == pinEnv {
			return "4711"
		}
		return ""
	}
	for _, c := range []struct {
		name string
		cfg  hsmConfig
		env  func(string) string
		want string // "" = valid
	}{
		{"no HSM", hsmConfig{}, noEnv, ""},
		{"complete with a PIN file", full, noEnv, ""},
		{"complete with the PIN in the environment", hsmConfig{module: "m", token: "t", keyLabel: "k"}, pinInEnv, ""},
		{"PIN without a module", hsmConfig{}, pinInEnv, "no --pkcs11-module"},
		{"token missing", hsmConfig{module: "m", keyLabel: "k", pinFile: pinFile}, noEnv, "missing: --pkcs11-token"},
		{"only a key label", hsmConfig{keyLabel: "k"}, noEnv, "missing: --pkcs11-module, --pkcs11-token"},
		{"no PIN", hsmConfig{module: "m", token: "t", keyLabel: "k"}, noEnv, "needs its token's PIN"},
		{"both PINs", full, pinInEnv, "not both"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.validate(c.env)
			if c.want == "" && err != nil {
				t.Fatalf("validate = %v, want nil", err)
			}
			if c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("validate = %v, want an error saying %q", err, c.want)
			}
		})
	}
	if pin, err := full.pin(noEnv); err != nil || pin != "4711" {
		t.Errorf("pin from file = %q, %v; want 4711 without the line end", pin, err)
	}
	for file, want := range map[string]string{open: "chmod 600", empty: "is empty", filepath.Join(dir, "none"): "no such file"} {
		c := full
		c.pinFile = file
		if _, err := c.pin(noEnv); err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "4711") {
			t.Errorf("pin(%s) = %v, want an error saying %q without the PIN", filepath.Base(file), err, want)
		}
	}
	// serve refuses the HSM together with another root key source.
	rc := rootConfig{file: "keys.json", hsm: full}
	if err := rc.validate(noEnv); err == nil || !strings.Contains(err.Error(), "excludes --root-key-file") {
		t.Errorf("rootConfig.validate(HSM and a key file) = %v, want a refusal", err)
	}
}
