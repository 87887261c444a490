package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Timings of a JWKSURL.
const (
	// DefaultJWKSRefresh is how often a JWKSURL fetches the document when
	// no interval is given.
	DefaultJWKSRefresh = 5 * time.Minute
	// JWKSMinRefetch is the least time between two fetches of a JWKSURL
	// other than an explicit Refresh: tokens with made-up key ids cannot
	// make it hammer the identity provider, and a failing provider is
	// retried at this pace.
	JWKSMinRefetch = 10 * time.Second
	// JWKSFetchTimeout bounds one fetch.
	JWKSFetchTimeout = 10 * time.Second
)

// JWKSURL is a [KeySource] serving the keys of a JWKS document fetched over
// HTTPS from the identity provider.
//
// It fetches the document on first use and then every refresh interval, in
// the background, while requests go on using the copy it has. A token
// naming a key id that is not in that copy makes it fetch again at once, so
// that a key the provider has just rotated in is picked up; such fetches
// happen at most once per [JWKSMinRefetch]. When a fetch fails the previous
// copy stays in use, for as long as the provider cannot be reached.
type JWKSURL struct {
	url        string
	client     *http.Client
	refresh    time.Duration
	minRefetch time.Duration
	now        func() time.Time

	set         atomic.Pointer[keySet]
	fetchedAt   atomic.Int64  // UnixNano of the last successful fetch
	lastAttempt atomic.Int64  // UnixNano of the last fetch, 0 before the first
	refreshing  atomic.Bool   // a background refresh is under way
	sem         chan struct{} // held by the one fetch under way

	errMu   sync.Mutex
	lastErr error // of the last fetch, nil if it succeeded
}

var _ KeySource = (*JWKSURL)(nil)

// NewJWKSURL returns a key source for the JWKS document at rawURL, fetched
// with client (nil: a client with a [JWKSFetchTimeout] timeout that follows
// redirects only to https) and fetched again every refresh (0:
// [DefaultJWKSRefresh]). rawURL must be https, except on a loopback address,
// for tests and sidecars. Nothing is fetched until the first Key or Refresh.
func NewJWKSURL(rawURL string, client *http.Client, refresh time.Duration) (*JWKSURL, error) {
	if err := checkJWKSURL(rawURL); err != nil {
		return nil, err
	}
	if refresh < 0 {
		return nil, fmt.Errorf("auth: negative JWKS refresh interval %v", refresh)
	}
	if refresh == 0 {
		refresh = DefaultJWKSRefresh
	}
	if client == nil {
		client = &http.Client{
			Timeout: JWKSFetchTimeout,
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if len(via) >= 5 {
					return errors.New("too many redirects")
				}
				return checkJWKSURL(req.URL.String())
			},
		}
	}
	return &JWKSURL{
		url:        rawURL,
		client:     client,
		refresh:    refresh,
		minRefetch: JWKSMinRefetch,
		now:        time.Now,
		sem:        make(chan struct{}, 1),
	}, nil
}

func checkJWKSURL(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("auth: JWKS URL: %w", err)
	}
	switch {
	case u.Host == "":
		return fmt.Errorf("auth: JWKS URL %q has no host", rawURL)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	default:
		return fmt.Errorf("auth: JWKS URL %q must use https", rawURL)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Key implements KeySource. Before the first successful fetch, and while
// the provider cannot be reached, its error is returned; afterwards an
// unknown key id is ErrKeyNotFound, carrying the last fetch error if any.
func (s *JWKSURL) Key(ctx context.Context, kid string) (jose.JSONWebKey, error) {
	set := s.set.Load()
	if set == nil {
		if err := s.fetchIfDue(ctx, nil); err != nil {
			return jose.JSONWebKey{}, err
		}
		if set = s.set.Load(); set == nil {
			return jose.JSONWebKey{}, errors.New("auth: JWKS not fetched yet")
		}
	} else if now := s.now().UnixNano(); now-s.fetchedAt.Load() >= int64(s.refresh) && s.mayFetch(now) {
		s.refreshInBackground(set)
	}
	if k, ok := set.lookup(kid); ok {
		return k, nil
	}
	// Perhaps the provider has rotated in a new key since the last fetch.
	if err := s.fetchIfDue(ctx, set); err != nil && ctx.Err() != nil {
		return jose.JSONWebKey{}, err
	}
	if k, ok := s.set.Load().lookup(kid); ok {
		return k, nil
	}
	if err := s.failure(); err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("%w (the last JWKS fetch failed: %v)", ErrKeyNotFound, err)
	}
	return jose.JSONWebKey{}, ErrKeyNotFound
}

// Refresh fetches the document now, whatever the time since the last
// fetch; for start-up, to fail early if the provider cannot be reached.
func (s *JWKSURL) Refresh(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.sem }()
	return s.fetchLocked(ctx)
}

// failure returns the error of the last fetch, nil if it succeeded.
func (s *JWKSURL) failure() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.lastErr
}

// mayFetch reports whether the rate limit allows a fetch at now (UnixNano).
func (s *JWKSURL) mayFetch(now int64) bool {
	last := s.lastAttempt.Load()
	return last == 0 || now-last >= int64(s.minRefetch)
}

// fetchIfDue fetches the document unless another caller replaced seen while
// this one waited, or the last attempt was less than minRefetch ago. A
// fetch is cancelled by ctx; one that fails for that reason is not counted.
func (s *JWKSURL) fetchIfDue(ctx context.Context, seen *keySet) error {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.sem }()
	if s.set.Load() != seen {
		return nil
	}
	if !s.mayFetch(s.now().UnixNano()) {
		return s.failure()
	}
	return s.fetchLocked(ctx)
}

// refreshInBackground starts a refresh, unless one is under way, that
// outlives the request which noticed it was due.
func (s *JWKSURL) refreshInBackground(seen *keySet) {
	if !s.refreshing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.refreshing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), JWKSFetchTimeout)
		defer cancel()
		_ = s.fetchIfDue(ctx, seen) // a failure is kept in lastErr
	}()
}

// fetchLocked fetches and installs the document; the caller holds sem.
func (s *JWKSURL) fetchLocked(ctx context.Context) error {
	start := s.now()
	set, err := s.fetch(ctx)
	if err != nil && ctx.Err() != nil {
		return err // the caller gave up; not the provider's failure
	}
	s.lastAttempt.Store(start.UnixNano())
	s.errMu.Lock()
	s.lastErr = err
	s.errMu.Unlock()
	if err != nil {
		return err
	}
	s.set.Store(set)
	s.fetchedAt.Store(start.UnixNano())
	return nil
}

func (s *JWKSURL) fetch(ctx context.Context) (*keySet, error) {
	ctx, cancel := context.WithTimeout(ctx, JWKSFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("auth: JWKS request: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("auth: fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("auth: fetching JWKS %s: HTTP status %d", s.url, resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSSize+1))
	if err != nil {
		return nil, fmt.Errorf("auth: reading JWKS %s: %w", s.url, err)
	}
	if len(data) > MaxJWKSSize {
		return nil, fmt.Errorf("auth: JWKS %s is larger than %d bytes", s.url, MaxJWKSSize)
	}
	set, err := parseJWKS(data)
	if err != nil {
		return nil, fmt.Errorf("%w (from %s)", err, s.url)
	}
	return set, nil
}
