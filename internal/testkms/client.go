package testkms

import (
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// Client returns an AWS SDK client for s, with static fake credentials.
//
// Retries are off (RetryMaxAttempts 1), so that one call is one HTTP request:
// tests that count calls or check one call's error see exactly that. optFns
// run after these settings and may change them: for retries set
// o.RetryMaxAttempts, or set it to 0 and give an o.Retryer. The client's idle
// connections are closed when the test ends.
func (s *Server) Client(t testing.TB, optFns ...func(*kms.Options)) *kms.Client {
	t.Helper()
	return newClient(t, s.URL, s.Region, optFns)
}

func newClient(t testing.TB, url, region string, optFns []func(*kms.Options)) *kms.Client {
	t.Helper()
	tr := &http.Transport{
		Proxy:               nil, // never an HTTP proxy from the environment
		MaxIdleConnsPerHost: 16,
	}
	t.Cleanup(tr.CloseIdleConnections)
	cfg := aws.Config{
		Region:      region,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "SECRET", ""),
		HTTPClient:  &http.Client{Transport: tr},
	}
	opts := append([]func(*kms.Options){func(o *kms.Options) {
		o.BaseEndpoint = aws.String(url)
		o.RetryMaxAttempts = 1
	}}, optFns...)
	return kms.NewFromConfig(cfg, opts...)
}
