package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// documentedMetrics returns the tenantcrypt_ metric names the README and
// docs/*.md mention, with brace lists expanded
// (tenantcrypt_datakey_cache_{hits,misses}_total), by file.
func documentedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../../README.md")
	name := regexp.MustCompile(`tenantcrypt_[a-z0-9_]*(\{[a-z0-9_,]+\}[a-z0-9_]*)*`)
	found := map[string][]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range name.FindAllString(string(b), -1) {
			for _, n := range expandBraces(m) {
				// Label sets after a name ({region,result}) leave a trailing
				// "_" or nothing: only whole names count.
				n = strings.TrimRight(n, "_")
				if n != "tenantcrypt" && !slices.Contains(found[n], filepath.Base(f)) {
					found[n] = append(found[n], filepath.Base(f))
				}
			}
		}
	}
	return found
}

// expandBraces expands "a_{x,y}_b" to a_x_b and a_y_b; a brace group that
// ends the text is a label list, not part of the name, and is dropped.
func expandBraces(s string) []string {
	i := strings.IndexByte(s, '{')
	if i < 0 {
		return []string{s}
	}
	j := strings.IndexByte(s[i:], '}') + i
	rest := s[j+1:]
	if rest == "" {
		return []string{s[:i]}
	}
	var out []string
	for _, alt := range strings.Split(s[i+1:j], ",") {
		out = append(out, expandBraces(s[:i]+alt+rest)...)
	}
	return out
}

// TestMetricsFromTheStart scrapes a fresh server once: every metric the
// docs mention is there, every tenantcrypt_ metric it serves is in the
// operations guide's list, and the series with known label values (key
// check results, state changes, the home regions' failover metrics, audit
// refusal reasons) exist at zero.
func TestMetricsFromTheStart(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, "--region", "eu-west-1", "--dr-region", "eu-west-1=eu-west-3")
	r := ts.do("GET", "/metrics", "", nil)
	if r.status != 200 {
		t.Fatalf("GET /metrics: %d", r.status)
	}
	families := map[string]bool{}
	series := map[string]bool{}
	for _, line := range strings.Split(string(r.body), "\n") {
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			families[strings.Fields(f)[0]] = true
		} else if line != "" && !strings.HasPrefix(line, "#") {
			series[line[:strings.LastIndexByte(line, ' ')]] = true
		}
	}

	documented := documentedMetrics(t)
	if len(documented) < 20 {
		t.Fatalf("found only %d metric names in the docs: the parser is broken", len(documented))
	}
	for name, files := range documented {
		if !families[name] {
			t.Errorf("%s (in %s) is not served by a fresh server", name, strings.Join(files, ", "))
		}
	}
	for name := range families {
		if !strings.HasPrefix(name, "tenantcrypt_") {
			continue
		}
		if !slices.Contains(documented[name], "operations.md") {
			t.Errorf("%s is served but not in docs/operations.md's metrics list", name)
		}
	}

	for _, want := range []string{
		`tenantcrypt_key_checks_total{region="eu-west-1",result="ok"}`,
		`tenantcrypt_key_checks_total{region="eu-west-3",result="access-denied"}`,
		`tenantcrypt_key_checks_total{region="eu-west-1",result="unavailable"}`,
		`tenantcrypt_tenant_state_changes_total{from="active",to="key-unavailable"}`,
		`tenantcrypt_tenant_state_changes_total{from="locked",to="destroyed"}`,
		`tenantcrypt_kms_failovers_total{region="eu-west-1"}`,
		`tenantcrypt_kms_failbacks_total{region="eu-west-3"}`,
		`tenantcrypt_kms_region_healthy{region="eu-west-1"}`,
		`tenantcrypt_kms_operations_total{op="Unwrap",provider="cmk",result="ok"}`,
		`tenantcrypt_audit_refusals_total{reason="queue-full"}`,
		`tenantcrypt_audit_refusals_total{reason="unwritable"}`,
		`tenantcrypt_tenants{state="locked"}`,
		`tenantcrypt_http_requests_total{code="200",route="POST /api/v1/encryption/encrypt"}`,
	} {
		if !series[want] {
			t.Errorf("the first scrape has no series %s", want)
		}
	}
	if !strings.Contains(string(r.body), "\ntenantcrypt_kms_region_healthy{region=\"eu-west-1\"} 1\n") {
		t.Error("the service's region is not reported healthy at start")
	}
}

func TestExpandBraces(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]string{
		"tenantcrypt_a_total":                     {"tenantcrypt_a_total"},
		"tenantcrypt_cache_{hits,misses}_total":   {"tenantcrypt_cache_hits_total", "tenantcrypt_cache_misses_total"},
		"tenantcrypt_checks_total{region,result}": {"tenantcrypt_checks_total"},
		"tenantcrypt_x_{a,b}_total{region}":       {"tenantcrypt_x_a_total", "tenantcrypt_x_b_total"},
	} {
		if got := expandBraces(in); !slices.Equal(got, want) {
			t.Errorf("expandBraces(%q) = %q, want %q", in, got, want)
		}
	}
}
