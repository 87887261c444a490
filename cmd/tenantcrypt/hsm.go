package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
)

// pinEnv gives the HSM's user PIN itself, instead of --pkcs11-pin-file.
const pinEnv = "TENANTCRYPT_PKCS11_PIN"

// hsmConfig is where the internal KMS's root key is when it is in an HSM:
// the --pkcs11-* flags of serve and rootkey.
type hsmConfig struct {
	module, token, pinFile, keyLabel string
}

func (c *hsmConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.module, "pkcs11-module", "", "keep the internal KMS root key in an HSM: path of its PKCS#11 library (e.g. /usr/lib/softhsm/libsofthsm2.so); needs --pkcs11-token, --pkcs11-key-label and a PIN")
	fs.StringVar(&c.token, "pkcs11-token", "", "label of the HSM token that holds the root key")
	fs.StringVar(&c.pinFile, "pkcs11-pin-file", "", "file holding the HSM token's user PIN (mode 0600 or stricter); or give the PIN in "+pinEnv)
	fs.StringVar(&c.keyLabel, "pkcs11-key-label", "", "CKA_LABEL of the root key objects in the token (CKA_ID = the version number); created on first start")
}

func (c hsmConfig) enabled() bool {
	return c.module != "" || c.token != "" || c.pinFile != "" || c.keyLabel != ""
}

// validate checks the flags together; env gives TENANTCRYPT_PKCS11_PIN.
func (c hsmConfig) validate(env func(string) string) error {
	if !c.enabled() {
		if env(pinEnv) != "" {
			return fmt.Errorf("%s is set but no --pkcs11-module: give the --pkcs11-* flags, or unset it", pinEnv)
		}
		return nil
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"--pkcs11-module", c.module}, {"--pkcs11-token", c.token}, {"--pkcs11-key-label", c.keyLabel}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	var errs []error
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("an HSM root key needs --pkcs11-module, --pkcs11-token and --pkcs11-key-label (missing: %s)", strings.Join(missing, ", ")))
	}
	switch {
	case c.pinFile != "" && env(pinEnv) != "":
		errs = append(errs, fmt.Errorf("give the HSM PIN either with --pkcs11-pin-file or in %s, not both", pinEnv))
	case c.pinFile == "" && env(pinEnv) == "":
		errs = append(errs, fmt.Errorf("an HSM root key needs its token's PIN: --pkcs11-pin-file FILE or %s", pinEnv))
	}
	return errors.Join(errs...)
}

// pin reads the PIN from the file or the environment. The file must not
// be readable by others, like the root key file.
func (c hsmConfig) pin(env func(string) string) (string, error) {
	if c.pinFile == "" {
		return env(pinEnv), nil
	}
	f, err := os.Open(c.pinFile)
	if err != nil {
		return "", fmt.Errorf("reading --pkcs11-pin-file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("reading --pkcs11-pin-file: %w", err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return "", fmt.Errorf("--pkcs11-pin-file %s has mode %#o, so users other than its owner may read it; run `chmod 600 %s`", c.pinFile, perm, c.pinFile)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("reading --pkcs11-pin-file: %w", err)
	}
	pin := strings.TrimRight(string(b), "\r\n")
	clear(b)
	if pin == "" {
		return "", fmt.Errorf("--pkcs11-pin-file %s is empty", c.pinFile)
	}
	return pin, nil
}

// hsmDevice is an opened HSM root key (a *pkcs11.HSM in a build with cgo).
type hsmDevice interface {
	internalkms.Device
	Close()
}

// openDevice opens the HSM the flags name (see openHSM, which only a build
// with cgo has).
func (c hsmConfig) open(env func(string) string) (hsmDevice, error) {
	pin, err := c.pin(env)
	if err != nil {
		return nil, err
	}
	return openHSM(c, pin)
}

// deviceRotator rotates and reloads an HSM root key for package rotation.
type deviceRotator struct {
	dev internalkms.Device
	st  internalkms.RootRecordStore
}

func (d deviceRotator) Rotate(ctx context.Context) (uint32, error) {
	return internalkms.RotateDevice(ctx, d.dev, d.st)
}

func (d deviceRotator) Reload(ctx context.Context) (uint32, error) {
	rec, err := internalkms.ReloadDevice(ctx, d.dev, d.st)
	return rec.Current, err
}

// followRootRecord makes this process use the HSM root key version that
// the database records, within every, after another replica (or `tenantcrypt
// rootkey rotate`) rotated it: reload then reloads the version and reseals
// the KEKs in the background. An unchanged version costs one small query.
// It returns when ctx ends.
func followRootRecord(ctx context.Context, dev internalkms.Device, st internalkms.RootRecordStore, every time.Duration,
	reload func(context.Context) error, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rec, err := st.RootRecord(ctx)
		if err != nil || rec.Source != internalkms.RootSourcePKCS11 || rec.Current == dev.Current() {
			continue
		}
		log.Info("internal KMS: the database records another HSM root key version; using it", "root_version", rec.Current, "was", dev.Current())
		if err := reload(ctx); err != nil && ctx.Err() == nil {
			log.Warn("internal KMS: using the recorded HSM root key version failed; retrying", "root_version", rec.Current, "error", err.Error())
		}
	}
}
