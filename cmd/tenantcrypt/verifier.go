package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/auth"
)

// authConfig is token verification's part: where the signing keys come
// from (a JWKS file or URL, else the built-in issuer) and what tokens must
// say.
type authConfig struct {
	jwksFile, jwksURL string
	disableSelfIssuer bool
	// verifier holds what the flags set of auth.VerifierConfig: Issuer,
	// Audience, Skew, and MaxLifetime (0: no limit, see config).
	verifier auth.VerifierConfig
}

func (c *authConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.jwksFile, "jwks-file", "", "verify tokens against the public keys in this JWKS file")
	fs.StringVar(&c.jwksURL, "jwks-url", "", "verify tokens against the JWKS at this https URL")
	fs.StringVar(&c.verifier.Issuer, "jwt-issuer", auth.DefaultIssuerName, "required \"iss\" of tokens")
	fs.StringVar(&c.verifier.Audience, "jwt-audience", auth.DefaultAudience, "required \"aud\" of tokens")
	fs.DurationVar(&c.verifier.Skew, "jwt-skew", auth.DefaultSkew, "clock skew allowed when checking exp and nbf")
	fs.DurationVar(&c.verifier.MaxLifetime, "jwt-max-lifetime", auth.DefaultMaxLifetime, "longest token lifetime accepted (iat, or now, to exp); 0: no limit")
	fs.BoolVar(&c.disableSelfIssuer, "disable-self-issuer", false, "do not publish the built-in issuer's keys (implied by --jwks-file/--jwks-url)")
}

func (c *authConfig) validate() error {
	var errs []error
	if c.jwksFile != "" && c.jwksURL != "" {
		errs = append(errs, errors.New("give either --jwks-file or --jwks-url, not both"))
	}
	if c.jwksURL != "" && !strings.HasPrefix(c.jwksURL, "https://") {
		errs = append(errs, errors.New("--jwks-url must be an https:// URL"))
	}
	if c.verifier.MaxLifetime < 0 {
		errs = append(errs, errors.New("--jwt-max-lifetime must not be negative (0 means no limit)"))
	}
	return errors.Join(errs...)
}

// newVerifier is the token verifier of the flags, and the built-in
// issuer's JWKS when it is published (nil otherwise).
func newVerifier(cfg authConfig, dataDir string, log *slog.Logger) (*auth.Verifier, func() any, error) {
	var keys auth.KeySource
	var jwks func() any
	switch {
	case cfg.jwksFile != "":
		f, err := auth.NewJWKSFile(cfg.jwksFile)
		if err != nil {
			return nil, nil, err
		}
		keys = f
	case cfg.jwksURL != "":
		u, err := auth.NewJWKSURL(cfg.jwksURL, &http.Client{Timeout: 10 * time.Second}, 5*time.Minute)
		if err != nil {
			return nil, nil, err
		}
		keys = u
	default:
		iss, err := auth.LoadOrCreateIssuer(dataDir, cfg.verifier.Issuer)
		if err != nil {
			return nil, nil, fmt.Errorf("loading the built-in issuer's keys: %w", err)
		}
		keys = iss.KeySource()
		if !cfg.disableSelfIssuer {
			jwks = func() any { return iss.JWKS() }
		}
		log.Info("verifying tokens of the built-in issuer; mint them with `tenantcrypt token`", "issuer", cfg.verifier.Issuer)
	}
	vc := cfg.verifier
	if vc.MaxLifetime == 0 {
		vc.MaxLifetime = -1 // the verifier's "no limit"
	}
	vc.Keys = keys
	v, err := auth.NewVerifier(vc)
	if err != nil {
		return nil, nil, err
	}
	return v, jwks, nil
}
