package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/console"
)

// consoleDevTokenTTL is the lifetime of a development token of the console.
const consoleDevTokenTTL = time.Hour

// consoleConfig is the admin console's part.
type consoleConfig struct {
	devTokens bool
}

func (c *consoleConfig) flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.devTokens, "console-dev-tokens", false, "DEVELOPMENT ONLY: the console at /console/ mints tenant-admin tokens of the built-in issuer for anyone who can reach it")
}

// validate refuses development tokens where they would be minted by
// an issuer the server does not trust: with an external identity provider
// the built-in issuer's tokens are refused anyway, and an operator who set
// one up is not in development.
func (c *consoleConfig) validate(a authConfig) error {
	if c.devTokens && (a.jwksFile != "" || a.jwksURL != "") {
		return errors.New("--console-dev-tokens needs the built-in JWT issuer: it cannot be combined with --jwks-file or --jwks-url")
	}
	return nil
}

// newConsole is the admin console served at /console/; with
// --console-dev-tokens it mints tenant-admin tokens from the built-in issuer.
func newConsole(cfg consoleConfig, a authConfig, dataDir string, log *slog.Logger) *console.Handler {
	c := console.Config{Logger: log}
	if cfg.devTokens {
		log.Warn("DEVELOPMENT ONLY: the console mints tenant-admin tokens for any tenant, for anyone who can reach /console/ (--console-dev-tokens)")
		c.DevTokens = func(_ context.Context, tenantID string) (string, time.Time, error) {
			// Loaded per token, so that a rotated issuer key is used at once.
			iss, err := auth.LoadOrCreateIssuer(dataDir, a.verifier.Issuer)
			if err != nil {
				return "", time.Time{}, err
			}
			expires := time.Now().Add(consoleDevTokenTTL)
			tok, err := iss.Mint(auth.TokenRequest{Subject: "console:dev", TenantID: tenantID,
				Roles: []auth.Role{auth.RoleTenantAdmin}, TTL: consoleDevTokenTTL, Audience: a.verifier.Audience})
			return tok, expires, err
		}
	}
	return console.New(c)
}
