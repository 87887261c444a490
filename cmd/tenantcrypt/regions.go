package main

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

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
