// Package client is the Go SDK of tenantcrypt: a context-first client for
// its HTTP API, and local envelope encryption of large content under data
// keys from the service.
//
//	c, err := client.New("https://tenantcrypt.internal:8443",
//		client.WithToken(token), client.WithTLSConfig(tlsConfig))
//
//	// Small secrets: encrypted by the service.
//	ct, err := c.Encrypt(ctx, []byte("secret"), map[string]string{"app": "crm"})
//
//	// Large content: encrypted here, in constant memory, under a data key
//	// that the client caches within bounds (see Envelope).
//	w, err := c.Envelope().NewEncryptWriter(ctx, file, map[string]string{"object": "reports/q1.pdf"})
//
// Errors from the service are *Error values carrying the HTTP status and
// the API's error code; they match this package's sentinel errors
// (ErrKeyRevoked, ErrRetryLater, ErrDecryptionFailed, …) with errors.Is.
// Requests that failed in a way worth retrying are retried with
// exponential backoff and jitter, honouring Retry-After (see RetryPolicy).
//
// The client imports no package of the server: only the public api
// (wire types, error codes) and envelope (the encryption context's
// canonical form and the handle format) packages.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
)

// Client talks to one tenantcrypt service. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	http  *http.Client
	token func(ctx context.Context) (string, error)
	retry RetryPolicy
	// keys caches the data keys of local envelope encryption; every
	// answer that says the tenant's keys are revoked purges it.
	keys    *keyCache
	keysCfg KeyCacheConfig
	// sleep waits between attempts; tests replace it to see the waits
	// without spending them.
	sleep func(ctx context.Context, d time.Duration) error
}

// Option configures a Client.
type Option func(*Client) error

// WithToken authenticates every request with a fixed bearer token.
func WithToken(token string) Option {
	return WithTokenSource(func(context.Context) (string, error) { return token, nil })
}

// WithTokenSource authenticates every request with the token fn returns,
// so that a caller can refresh tokens before they expire. fn is called
// once per attempt, so a retried request picks up a refreshed token.
func WithTokenSource(fn func(ctx context.Context) (string, error)) Option {
	return func(c *Client) error { c.token = fn; return nil }
}

// WithTLSConfig sets the TLS configuration (for instance the CA to trust).
func WithTLSConfig(cfg *tls.Config) Option {
	return func(c *Client) error {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = cfg
		t.MaxIdleConnsPerHost = 64
		c.http = &http.Client{Transport: t, Timeout: c.http.Timeout}
		return nil
	}
}

// WithHTTPClient replaces the HTTP client entirely.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error { c.http = hc; return nil }
}

// RetryPolicy says how often and how patiently the Client retries a
// request that failed in a way worth retrying.
//
// What is retried: answers 503, 502 and 504 and transport errors
// (connection refused or reset, a timeout) of requests that are safe to
// send twice (their api.Route's RetrySafe) — every GET, the data plane
// (encrypt, decrypt, rewrap, datakeys, datakeys/decrypt; a repeated
// encrypt or datakeys at worst makes a ciphertext or data key that nobody
// sees), the PATCH endpoints and a key provider's test; and 429 answers of
// any request, since the rate limit is checked before a request is
// handled. Other writes (creating or deleting
// a tenant, registering, deleting, migrating, resetting a key provider,
// key rotations) are not resent after a 503 or a transport error, because
// the service may have acted: the caller checks and decides.
//
// Waits grow exponentially from BaseDelay up to MaxDelay, with jitter
// (each wait is drawn from the upper half of its step). A Retry-After from
// the service is honoured as the minimum wait; one longer than MaxDelay,
// or one that would outlast the context's deadline, ends the retries and
// the error is returned at once, with its RetryAfter, for the caller to
// schedule.
type RetryPolicy struct {
	// MaxAttempts counts the first attempt too; 1 disables retries.
	// Zero means the default, 4.
	MaxAttempts int
	// BaseDelay is the first wait; zero means the default, 100 ms.
	BaseDelay time.Duration
	// MaxDelay caps one wait; zero means the default, 5 s.
	MaxDelay time.Duration
}

// DefaultRetryPolicy is the policy of a Client without WithRetryPolicy.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 4, BaseDelay: 100 * time.Millisecond, MaxDelay: 5 * time.Second}

// WithRetryPolicy replaces DefaultRetryPolicy; zero fields keep their
// defaults.
func WithRetryPolicy(p RetryPolicy) Option {
	return func(c *Client) error {
		if p.MaxAttempts < 0 || p.BaseDelay < 0 || p.MaxDelay < 0 {
			return errors.New("client: retry policy fields must not be negative")
		}
		c.retry = p
		return nil
	}
}

// New returns a client of the service at baseURL (https://host:port).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("client: base URL must be https://host[:port], got %q", baseURL)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	c := &Client{base: u, http: &http.Client{Transport: t, Timeout: 30 * time.Second}, sleep: sleepContext}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	c.retry = c.retry.withDefaults()
	keys, err := newKeyCache(c.keysCfg)
	if err != nil {
		return nil, err
	}
	c.keys = keys
	return c, nil
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultRetryPolicy.MaxAttempts
	}
	if p.BaseDelay == 0 {
		p.BaseDelay = DefaultRetryPolicy.BaseDelay
	}
	if p.MaxDelay == 0 {
		p.MaxDelay = DefaultRetryPolicy.MaxDelay
	}
	return p
}

// do sends a JSON request, with retries, and decodes a JSON answer into
// out (unless nil).
func (c *Client) do(ctx context.Context, t target, in, out any) error {
	data, _, err := c.send(ctx, t, in)
	if err != nil {
		return err
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("client: decoding answer of %s %s: %w", t.route.Method, t.path, err)
	}
	return nil
}

// send sends a request as the retry policy allows and returns the last
// answer's body and status. An answer of 400 or more is an *Error; one
// that says the tenant's keys are revoked purges the data-key cache.
func (c *Client) send(ctx context.Context, t target, in any) ([]byte, int, error) {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, 0, fmt.Errorf("client: encoding request: %w", err)
		}
		body = b
	}
	for attempt := 1; ; attempt++ {
		data, status, err := c.attempt(ctx, t, body)
		if err == nil {
			return data, status, nil
		}
		var e *Error
		if errors.As(err, &e) && e.revokes() && c.keys != nil {
			c.keys.purge()
		}
		wait, ok := c.retryWait(ctx, err, t.route.RetrySafe, attempt)
		if !ok {
			return nil, 0, err
		}
		if c.sleep(ctx, wait) != nil {
			// The caller gave up; the service's answer says more than
			// the context's error.
			return nil, 0, err
		}
	}
}

// attempt sends the request once.
func (c *Client) attempt(ctx context.Context, t target, body []byte) ([]byte, int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, t.route.Method, c.base.String()+t.path, rd)
	if err != nil {
		return nil, 0, fmt.Errorf("client: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != nil {
		tok, err := c.token(ctx)
		if err != nil {
			return nil, 0, fmt.Errorf("client: getting a token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, &transportError{method: t.route.Method, path: t.path, err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, 0, &transportError{method: t.route.Method, path: t.path, err: fmt.Errorf("reading answer: %w", err)}
	}
	if resp.StatusCode >= 400 {
		return nil, resp.StatusCode, decodeError(resp, data)
	}
	return data, resp.StatusCode, nil
}

// transportError is a request that got no answer from the service.
type transportError struct {
	method, path string
	err          error
}

func (e *transportError) Error() string {
	return fmt.Sprintf("client: %s %s: %v", e.method, e.path, e.err)
}

func (e *transportError) Unwrap() error { return e.err }

// retryWait decides whether the failed attempt is retried and after how
// long, as RetryPolicy documents.
func (c *Client) retryWait(ctx context.Context, err error, safe bool, attempt int) (time.Duration, bool) {
	p := c.retry
	if attempt >= p.MaxAttempts || ctx.Err() != nil {
		return 0, false
	}
	var retryAfter time.Duration
	var e *Error
	var te *transportError
	switch {
	case errors.As(err, &e):
		if !e.Retryable() || (!safe && e.StatusCode != http.StatusTooManyRequests) {
			return 0, false
		}
		retryAfter = e.RetryAfter
	case errors.As(err, &te):
		if !safe || !transient(te.err) {
			return 0, false
		}
	default:
		return 0, false
	}
	if retryAfter > p.MaxDelay {
		return 0, false
	}
	step := p.BaseDelay << min(attempt-1, 30)
	if step > p.MaxDelay || step <= 0 {
		step = p.MaxDelay
	}
	// Jitter: the upper half of the step, so that clients refused at the
	// same moment do not come back at the same moment.
	wait := step/2 + rand.N(step/2+1)
	if retryAfter > 0 {
		wait = retryAfter + rand.N(step/2+1)
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) < wait {
		return 0, false
	}
	return wait, true
}

// transient reports whether a transport error may go away: not the
// caller's cancellation, and not a certificate the client refuses.
func transient(err error) bool {
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify):
		return false
	}
	return true
}

// target is a request's route, and its path: the route's, with its path
// values filled in, and a query. Whether a failed request is sent again
// depends on the route's RetrySafe.
type target struct {
	route api.Route
	path  string
}

// to is the target of rt with its {name} segments filled by values, in
// order (see api.Route.Expand).
func to(rt api.Route, values ...string) target {
	return target{route: rt, path: rt.Expand(values...)}
}

// withQuery adds q, unless empty, to the target's path.
func (t target) withQuery(q url.Values) target {
	if len(q) > 0 {
		t.path += "?" + q.Encode()
	}
	return t
}

func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
