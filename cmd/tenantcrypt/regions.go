package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/kms/awskms"
)

// awsConfig is AWS KMS's part: the service's region, the regions' DR
// regions and endpoints, and the calls' timeouts.
type awsConfig struct {
	region            string
	drRegion          listFlag
	kmsEndpoint       listFlag
	allowSingleRegion bool
	// kms holds what the flags set of awskms.Config: CallTimeout and
	// ProbeInterval.
	kms awskms.Config
}

func (c *awsConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.region, "region", "us-east-1", "the service's own AWS region")
	fs.Var(&c.drRegion, "dr-region", "REGION=DR: the disaster-recovery region of a region (repeatable; defaults cover the common AWS regions)")
	fs.Var(&c.kmsEndpoint, "kms-endpoint", "REGION=URL: the AWS KMS endpoint of a region, e.g. a local-kms (repeatable)")
	fs.BoolVar(&c.allowSingleRegion, "allow-single-region-keys", false, "let tenants register customer managed keys that are not multi-region keys (no DR replica)")
	fs.DurationVar(&c.kms.CallTimeout, "kms-timeout", awskms.DefaultCallTimeout, "timeout of one call attempt to a customer's key manager (AWS KMS; KMIP: per server of the cluster)")
	fs.DurationVar(&c.kms.ProbeInterval, "kms-probe-interval", awskms.DefaultProbeInterval, "while a region's outage makes multi-region keys fail over to the DR region, how often the region is tried again")
}

func (c *awsConfig) validate() error {
	var errs []error
	if !regionPattern.MatchString(c.region) {
		errs = append(errs, fmt.Errorf("--region %q is not an AWS region name such as eu-west-1", c.region))
	}
	if _, err := drRegions(c.drRegion); err != nil {
		errs = append(errs, err)
	}
	if _, err := kmsEndpoints(c.kmsEndpoint); err != nil {
		errs = append(errs, err)
	}
	if c.kms.CallTimeout < 100*time.Millisecond {
		errs = append(errs, errors.New("--kms-timeout must be at least 100ms"))
	}
	if c.kms.ProbeInterval < 10*time.Millisecond {
		errs = append(errs, errors.New("--kms-probe-interval must be at least 10ms"))
	}
	return errors.Join(errs...)
}

// drRegions is every region's DR region: the defaults and --dr-region
// (validated).
func (c *awsConfig) drRegions() map[string]string {
	drs, _ := drRegions(c.drRegion)
	return drs
}

// config is the awskms.Config of the flags; serve adds its observers.
func (c *awsConfig) config() awskms.Config {
	k := c.kms
	k.Region = c.region
	k.Endpoints, _ = kmsEndpoints(c.kmsEndpoint) // validated
	return k
}

// defaultDRRegions maps common AWS regions to the region their
// multi-region keys' replicas are expected in; --dr-region overrides
// entries. docs/operations.md lists the table.
var defaultDRRegions = map[string]string{
	"us-east-1": "us-west-2", "us-east-2": "us-west-2", "us-west-1": "us-east-1", "us-west-2": "us-east-1",
	"ca-central-1": "us-east-1", "sa-east-1": "us-east-1",
	"eu-west-1": "eu-west-3", "eu-west-2": "eu-west-1", "eu-west-3": "eu-west-1",
	"eu-central-1": "eu-west-1", "eu-north-1": "eu-central-1", "eu-south-1": "eu-central-1",
	"ap-southeast-1": "ap-southeast-2", "ap-southeast-2": "ap-southeast-1",
	"ap-northeast-1": "ap-northeast-3", "ap-northeast-2": "ap-northeast-1", "ap-northeast-3": "ap-northeast-1",
	"ap-south-1": "ap-southeast-1",
}

var regionPattern = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$`)

// parseRegionPairs parses repeatable REGION=VALUE flags.
func parseRegionPairs(flagName string, pairs []string, value func(string) error) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range pairs {
		r, v, ok := strings.Cut(p, "=")
		if !ok || !regionPattern.MatchString(r) || v == "" {
			return nil, fmt.Errorf("--%s %q: must be REGION=VALUE, with an AWS region name such as eu-west-1", flagName, p)
		}
		if err := value(v); err != nil {
			return nil, fmt.Errorf("--%s %q: %w", flagName, p, err)
		}
		out[r] = v
	}
	return out, nil
}

func drRegions(pairs []string) (map[string]string, error) {
	m, err := parseRegionPairs("dr-region", pairs, func(v string) error {
		if !regionPattern.MatchString(v) {
			return fmt.Errorf("%q is not an AWS region name", v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, v := range defaultDRRegions {
		out[k] = v
	}
	for k, v := range m {
		out[k] = v
	}
	return out, nil
}

func kmsEndpoints(pairs []string) (map[string]string, error) {
	return parseRegionPairs("kms-endpoint", pairs, func(v string) error {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("%q is not an http(s) URL", v)
		}
		return nil
	})
}
