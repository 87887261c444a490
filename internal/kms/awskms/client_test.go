package awskms

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
)

var testCredentials = credentials.NewStaticCredentialsProvider("AKIDTEST", "SECRET", "")

func TestNewDefaults(t *testing.T) {
	c, err := New(t.Context(), Config{Region: "eu-west-1", Credentials: testCredentials})
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.CallTimeout != DefaultCallTimeout || c.cfg.MaxAttempts != DefaultMaxAttempts ||
		c.cfg.RetryBaseDelay != DefaultRetryBaseDelay || c.cfg.RetryMaxDelay != DefaultRetryMaxDelay {
		t.Errorf("defaults: %+v", c.cfg)
	}
	// Region clients are made once, on first use.
	a, err := c.regionClient("eu-west-3")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.regionClient("eu-west-3")
	if a != b {
		t.Error("two SDK clients for one region")
	}
	if o := a.Options(); o.Region != "eu-west-3" || o.BaseEndpoint != nil {
		t.Errorf("eu-west-3 client: region %q, endpoint %v; want eu-west-3 and the SDK's endpoint", o.Region, o.BaseEndpoint)
	}
	if _, err := c.regionClient("not a region"); err == nil {
		t.Error("regionClient accepted a bad region name")
	}
}

func TestNewEndpoints(t *testing.T) {
	c, err := New(t.Context(), Config{
		Region:      "eu-west-1",
		Endpoints:   map[string]string{"eu-west-1": "http://127.0.0.1:4599"},
		Credentials: testCredentials,
	})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := c.regionClient("eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	if ep := kc.Options().BaseEndpoint; ep == nil || *ep != "http://127.0.0.1:4599" {
		t.Errorf("eu-west-1 endpoint = %v, want the override", ep)
	}
	if got := kc.Options().Retryer.MaxAttempts(); got != DefaultMaxAttempts {
		t.Errorf("retryer MaxAttempts = %d, want %d", got, DefaultMaxAttempts)
	}
}

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no region", Config{}, "Region"},
		{"bad region", Config{Region: "Europe"}, "Region"},
		{"bad endpoint region", Config{Region: "eu-west-1", Endpoints: map[string]string{"local": "http://127.0.0.1:1"}}, "region"},
		{"endpoint not a URL", Config{Region: "eu-west-1", Endpoints: map[string]string{"eu-west-1": "127.0.0.1:1"}}, "URL"},
		{"endpoint not http", Config{Region: "eu-west-1", Endpoints: map[string]string{"eu-west-1": "ftp://127.0.0.1:1"}}, "URL"},
		{"negative timeout", Config{Region: "eu-west-1", CallTimeout: -time.Second}, "CallTimeout"},
		{"negative attempts", Config{Region: "eu-west-1", MaxAttempts: -1}, "MaxAttempts"},
		{"negative backoff", Config{Region: "eu-west-1", RetryBaseDelay: -1}, "RetryBaseDelay"},
	}
	for _, tt := range tests {
		tt.cfg.Credentials = testCredentials
		_, err := New(t.Context(), tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: New = %v, want an error about %s", tt.name, err, tt.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	b := backoff{base: 100 * time.Millisecond, max: time.Second}
	transient := apiError(500, "KMSInternalException")
	throttled := apiError(400, "ThrottlingException")
	tests := []struct {
		attempt int
		err     error
		ceil    time.Duration
	}{
		{1, transient, 100 * time.Millisecond},
		{2, transient, 200 * time.Millisecond},
		{3, transient, 400 * time.Millisecond},
		{5, transient, time.Second},
		{30, transient, time.Second},
		{1, throttled, 500 * time.Millisecond},
		{2, throttled, time.Second},
		{3, throttled, time.Second},
	}
	for _, tt := range tests {
		var maxSeen time.Duration
		for range 200 {
			d, err := b.BackoffDelay(tt.attempt, tt.err)
			if err != nil {
				t.Fatal(err)
			}
			if d < 0 || d >= tt.ceil {
				t.Fatalf("attempt %d: delay %v outside [0, %v)", tt.attempt, d, tt.ceil)
			}
			maxSeen = max(maxSeen, d)
		}
		// Jitter spreads the delays over the whole range.
		if maxSeen < tt.ceil/2 {
			t.Errorf("attempt %d: 200 delays all below %v, want them spread up to %v", tt.attempt, maxSeen, tt.ceil)
		}
	}
}
