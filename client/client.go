// Package client is the Go SDK of tenantcrypt: a context-first client for
// its HTTP API (tenants, encryption status, the data plane).
//
//	c, err := client.New("https://tenantcrypt.internal:8443",
//		client.WithToken(token), client.WithTLSConfig(tlsConfig))
//	ct, err := c.Encrypt(ctx, []byte("secret"), map[string]string{"app": "crm"})
//
// Errors from the service are *Error values carrying the HTTP status and
// the API's error code, so that callers can tell a revoked key from a
// request worth retrying.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
)

// Client talks to one tenantcrypt service. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	http  *http.Client
	token func(ctx context.Context) (string, error)
}

// Option configures a Client.
type Option func(*Client) error

// WithToken authenticates every request with a fixed bearer token.
func WithToken(token string) Option {
	return WithTokenSource(func(context.Context) (string, error) { return token, nil })
}

// WithTokenSource authenticates every request with the token fn returns,
// so that a caller can refresh tokens before they expire.
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

// New returns a client of the service at baseURL (https://host:port).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("client: base URL must be https://host[:port], got %q", baseURL)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	c := &Client{base: u, http: &http.Client{Transport: t, Timeout: 30 * time.Second}}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Error is an error answer of the service.
type Error struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// RetryAfter is the server's Retry-After, zero if none.
	RetryAfter time.Duration
	// Code is the API's stable error code (see package api).
	Code api.Code
	// Title and Detail are the service's explanation.
	Title, Detail string
	// Meta is the error's structured context, such as the offending field.
	Meta map[string]any
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("tenantcrypt: %d %s", e.StatusCode, e.Title)
	if e.Code != "" {
		msg += " (" + string(e.Code) + ")"
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Retryable reports whether the request may succeed if sent again later
// (the service or its KMS was unavailable or throttled).
func (e *Error) Retryable() bool {
	return e.StatusCode == http.StatusServiceUnavailable || e.StatusCode == http.StatusTooManyRequests
}

// IsCode reports whether err is a service error with that code.
func IsCode(err error, code api.Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// do sends a JSON request and decodes a JSON answer into out (unless nil).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("client: encoding request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != nil {
		tok, err := c.token(ctx)
		if err != nil {
			return fmt.Errorf("client: getting a token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("client: reading answer: %w", err)
	}
	if resp.StatusCode >= 400 {
		return decodeError(resp, data)
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("client: decoding answer of %s %s: %w", method, path, err)
	}
	return nil
}

func decodeError(resp *http.Response, data []byte) error {
	e := &Error{StatusCode: resp.StatusCode}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	var env api.ErrorResponse
	if json.Unmarshal(data, &env) == nil && len(env.Errors) > 0 {
		ae := env.Errors[0]
		e.Code, e.Title, e.Detail, e.Meta = ae.Code, ae.Title, ae.Detail, ae.Meta
	} else {
		e.Title = http.StatusText(resp.StatusCode)
	}
	return e
}
