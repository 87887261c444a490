package awskms

import (
	"context"
	"errors"
	"fmt"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// Defaults of Config.
const (
	DefaultCallTimeout    = 5 * time.Second
	DefaultMaxAttempts    = 4
	DefaultRetryBaseDelay = 100 * time.Millisecond
	DefaultRetryMaxDelay  = 5 * time.Second
)

// throttleDelayFactor stretches the backoff after a throttling answer:
// KMS's request quotas are per second, so retrying within milliseconds
// only spends more of the customer's quota.
const throttleDelayFactor = 5

// Config configures a Client. The zero value of each field but Region
// selects its default.
type Config struct {
	// Region is the service's own region, where a key is used unless a
	// call names another.
	Region string
	// Endpoints overrides the AWS KMS endpoint of a region (region →
	// URL), e.g. to use local-kms. Other regions use the SDK's endpoint
	// resolution (which honours AWS_ENDPOINT_URL_KMS).
	Endpoints map[string]string
	// CallTimeout bounds each attempt of a call (DefaultCallTimeout); the
	// caller's context bounds the call with its retries.
	CallTimeout time.Duration
	// MaxAttempts is the number of attempts of a call, the first
	// included (DefaultMaxAttempts); 1 turns retries off. Each region also
	// has the SDK's retry quota: while most calls to a region fail, its
	// calls stop being retried until successes refill the quota, so that
	// an outage fails fast instead of multiplying the load.
	MaxAttempts int
	// RetryBaseDelay and RetryMaxDelay shape the backoff (full jitter):
	// after attempt n fails, the next waits a random time below
	// min(RetryMaxDelay, RetryBaseDelay·2^(n-1)), with RetryBaseDelay
	// five times longer after a throttling answer (DefaultRetryBaseDelay,
	// DefaultRetryMaxDelay).
	RetryBaseDelay time.Duration
	RetryMaxDelay  time.Duration
	// HTTPClient sends the requests to KMS (nil: the SDK's default
	// client). It is used as it is: its TLS settings are the caller's, and
	// AWS_CA_BUNDLE does not apply to it.
	HTTPClient *http.Client
	// Credentials signs the requests (nil: the SDK's default chain,
	// environment variables first).
	Credentials aws.CredentialsProvider

	// ProbeInterval is how often a region whose outage made multi-region
	// keys fail over to their replicas is tried again. Default
	// DefaultProbeInterval.
	ProbeInterval time.Duration
	// OnRegionEvent, if set, is told of every failover and failback of a
	// region; it must not block.
	OnRegionEvent func(RegionEvent)
	// OnCall, if set, is told of every call to AWS KMS (each SDK call, its
	// retries included), success or failure; it must not block.
	OnCall func(Call)
	// APIOptions are more AWS SDK stack options for every region's client,
	// e.g. tracing middleware.
	APIOptions []func(*middleware.Stack) error
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Client calls AWS KMS on behalf of every tenant of the service, in any
// region. It is safe for concurrent use.
type Client struct {
	cfg Config
	aws aws.Config

	mu      sync.Mutex
	regions map[string]*awskms.Client

	breakersMu sync.Mutex
	breakers   map[string]*breaker // by region
}

// New checks cfg and loads the AWS SDK's shared configuration (credentials
// chain, profile). It makes no call to AWS.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	opts := []func(*config.LoadOptions) error{config.WithRegion(cfg.Region)}
	if cfg.Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(cfg.Credentials))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("awskms: loading the AWS configuration: %w", err)
	}
	if awsCfg.Credentials != nil {
		awsCfg.Credentials = credentialsGuard{awsCfg.Credentials}
	}
	return &Client{cfg: cfg, aws: awsCfg, regions: map[string]*awskms.Client{}, breakers: map[string]*breaker{}}, nil
}

func (cfg *Config) setDefaults() error {
	if !regionRE.MatchString(cfg.Region) {
		return fmt.Errorf("awskms: Config.Region %q is not an AWS region name", cfg.Region)
	}
	endpoints := make(map[string]string, len(cfg.Endpoints))
	for region, raw := range cfg.Endpoints {
		if !regionRE.MatchString(region) {
			return fmt.Errorf("awskms: endpoint for %q: not an AWS region name", region)
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("awskms: endpoint for %s: %q is not an http(s) URL", region, raw)
		}
		endpoints[region] = raw
	}
	cfg.Endpoints = endpoints
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"CallTimeout", &cfg.CallTimeout, DefaultCallTimeout},
		{"RetryBaseDelay", &cfg.RetryBaseDelay, DefaultRetryBaseDelay},
		{"RetryMaxDelay", &cfg.RetryMaxDelay, DefaultRetryMaxDelay},
		{"ProbeInterval", &cfg.ProbeInterval, DefaultProbeInterval},
	} {
		switch {
		case *d.v < 0:
			return fmt.Errorf("awskms: Config.%s %v is negative", d.name, *d.v)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	switch {
	case cfg.MaxAttempts < 0:
		return fmt.Errorf("awskms: Config.MaxAttempts %d is negative", cfg.MaxAttempts)
	case cfg.MaxAttempts == 0:
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	return nil
}

// regionClient is the SDK client for region, made on first use.
func (c *Client) regionClient(region string) (*awskms.Client, error) {
	if !regionRE.MatchString(region) {
		return nil, fmt.Errorf("awskms: %q is not an AWS region name", region)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if kc, ok := c.regions[region]; ok {
		return kc, nil
	}
	kc := awskms.NewFromConfig(c.aws, func(o *awskms.Options) {
		o.Region = region
		if c.cfg.HTTPClient != nil {
			o.HTTPClient = c.cfg.HTTPClient
		} else if b, ok := o.HTTPClient.(*awshttp.BuildableClient); ok {
			// Keep as many idle connections as a migration has calls in
			// flight (16), rather than the default 10, so that it does not
			// open (and TLS-handshake) a new connection for every call.
			o.HTTPClient = b.WithTransportOptions(func(t *http.Transport) { t.MaxIdleConnsPerHost = 64 })
		}
		if ep, ok := c.cfg.Endpoints[region]; ok {
			o.BaseEndpoint = aws.String(ep)
		}
		// Our retryer alone decides, whatever AWS_MAX_ATTEMPTS or
		// AWS_RETRY_MODE say. Each region gets its own, so that one
		// region's outage does not spend another's retry quota.
		o.Retryer = c.newRetryer()
		o.RetryMaxAttempts = 0
		o.RetryMode = ""
		o.APIOptions = append(o.APIOptions, attemptTimeout{c.cfg.CallTimeout}.add)
		o.APIOptions = append(o.APIOptions, c.cfg.APIOptions...)
	})
	c.regions[region] = kc
	return kc, nil
}

// newRetryer is the SDK's standard retryer (with its retry quota, a token
// bucket that stops retrying while most calls fail, so that an outage
// does not multiply the load on KMS) with our decision of what to retry
// and our backoff.
func (c *Client) newRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = c.cfg.MaxAttempts
		o.Retryables = []retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
			return aws.BoolTernary(classify(err).retryable())
		})}
		o.Throttles = []retry.IsErrorThrottle{retry.IsErrorThrottleFunc(func(err error) aws.Ternary {
			return aws.BoolTernary(classify(err) == classThrottled)
		})}
		o.Backoff = backoff{base: c.cfg.RetryBaseDelay, max: c.cfg.RetryMaxDelay}
	})
}

// backoff is exponential backoff with full jitter: attempt n (1-based,
// the one that failed) is followed by a wait drawn uniformly from
// [0, min(max, base·2^(n-1))).
type backoff struct{ base, max time.Duration }

func (b backoff) BackoffDelay(attempt int, err error) (time.Duration, error) {
	ceil := b.base
	if classify(err) == classThrottled {
		ceil *= throttleDelayFactor
	}
	for i := 1; i < attempt && ceil < b.max; i++ {
		ceil *= 2
	}
	ceil = min(ceil, b.max)
	if ceil <= 0 {
		return 0, nil
	}
	return rand.N(ceil), nil
}

// attemptTimeout bounds each attempt of a call, which the SDK does not:
// a KMS that accepts the connection and then stays silent would
// otherwise hold the call until the caller's own deadline.
type attemptTimeout struct{ d time.Duration }

// add puts the middleware inside the retry loop, so that it wraps each
// attempt (signing, sending and reading the answer) separately.
func (m attemptTimeout) add(stack *middleware.Stack) error {
	return stack.Finalize.Insert(m, "Retry", middleware.After)
}

func (attemptTimeout) ID() string { return "tenantcrypt/awskms.AttemptTimeout" }

func (m attemptTimeout) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
	middleware.FinalizeOutput, middleware.Metadata, error,
) {
	actx, cancel := context.WithTimeout(ctx, m.d)
	defer cancel()
	out, md, err := next.HandleFinalize(actx, in)
	var apiErr smithy.APIError
	if err != nil && ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) && !errors.As(err, &apiErr) {
		err = &attemptTimeoutError{timeout: m.d, cause: err.Error()}
	}
	return out, md, err
}
