package main

import (
	"errors"
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/server"
)

// defaultMaxConns is --max-conns's default: well below the open-file limit
// of a service (Go raises the soft limit to the hard one, commonly 2^19 or
// more under systemd and in containers), yet far above what a replica
// serves at ~10,000 requests per second over keep-alive connections.
const defaultMaxConns = 10000

// fdReserve is the file descriptors kept for everything but client
// connections: the database, KMS and JWKS clients, files, the log.
const fdReserve = 256

// http2Config is the server's HTTP/2 settings: a connection on which the
// client sends nothing for 15 s is pinged and closed if the ping is not
// answered within 10 s, and one that cannot be written to for the request
// timeout is closed; idle connections close after --idle-timeout as for
// HTTP/1.1.
func http2Config(requestTimeout time.Duration) *http.HTTP2Config {
	return &http.HTTP2Config{
		MaxConcurrentStreams: 250,
		SendPingTimeout:      15 * time.Second,
		PingTimeout:          10 * time.Second,
		WriteByteTimeout:     requestTimeout,
	}
}

// serverConfig is the HTTP server's part: the API's limits (package
// server's Config) and net/http's timeouts and connection bounds.
type serverConfig struct {
	// api holds what the flags set of server.Config: MaxBodyBytes,
	// MaxInflight, BodyReadTimeout, ReadsPerMinute and WritesPerMinute.
	api                               server.Config
	readHeaderTimeout, requestTimeout time.Duration
	idleTimeout, shutdownTimeout      time.Duration
	maxConns, maxConnsPerIP           int
}

func (c *serverConfig) flags(fs *flag.FlagSet) {
	fs.Int64Var(&c.api.MaxBodyBytes, "max-request-bytes", server.DefaultMaxBodyBytes, "largest request body accepted")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 20*time.Second, "how long a graceful shutdown waits for requests in flight")
	fs.DurationVar(&c.readHeaderTimeout, "read-header-timeout", server.DefaultReadHeaderTimeout, "server timeout for reading request headers")
	fs.DurationVar(&c.requestTimeout, "request-timeout", server.DefaultRequestTimeout, "server timeout for reading a request and writing its answer")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", server.DefaultIdleTimeout, "how long an idle keep-alive connection (HTTP/1.1 or HTTP/2) stays open; a load balancer in front should time out its idle connections sooner")
	fs.DurationVar(&c.api.BodyReadTimeout, "body-read-timeout", server.DefaultBodyReadTimeout, "how long a request body may take to arrive (408 beyond it)")
	fs.IntVar(&c.api.MaxInflight, "max-inflight", server.DefaultMaxInflight, "most requests in progress on the whole server; beyond it 503 with Retry-After (/livez, /readyz and /metrics are exempt)")
	fs.IntVar(&c.maxConns, "max-conns", defaultMaxConns, "most open client connections; at the bound a new one replaces the longest idle one, or is closed if none is idle (lowered to fit the open-file limit)")
	fs.IntVar(&c.maxConnsPerIP, "max-conns-per-ip", 0, "most open connections per client address (0: no bound; behind a load balancer or on loopback every caller shares one address)")
	fs.IntVar(&c.api.ReadsPerMinute, "keyprovider-reads-per-minute", server.DefaultReadsPerMinute, "per-tenant limit of key-provider API reads (per replica)")
	fs.IntVar(&c.api.WritesPerMinute, "keyprovider-writes-per-minute", server.DefaultWritesPerMinute, "per-tenant limit of key-provider API writes (per replica)")
}

func (c *serverConfig) validate() error {
	var errs []error
	bad := func(msg string) { errs = append(errs, errors.New(msg)) }
	if c.api.MaxBodyBytes < 1024 {
		bad("--max-request-bytes must be at least 1024")
	}
	if c.api.MaxInflight < 1 {
		bad("--max-inflight must be at least 1")
	}
	if c.maxConns < 1 {
		bad("--max-conns must be at least 1")
	}
	if c.maxConnsPerIP < 0 {
		bad("--max-conns-per-ip must not be negative (0 means no bound)")
	}
	if c.api.BodyReadTimeout < 100*time.Millisecond {
		bad("--body-read-timeout must be at least 100ms")
	}
	if c.api.ReadsPerMinute < 1 || c.api.WritesPerMinute < 1 {
		bad("--keyprovider-reads-per-minute and --keyprovider-writes-per-minute must be at least 1")
	}
	return errors.Join(errs...)
}

// httpServer is the net/http server of handler, with the timeouts of the
// flags.
func (c *serverConfig) httpServer(handler http.Handler, errorLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: c.readHeaderTimeout,
		ReadTimeout:       c.requestTimeout,
		WriteTimeout:      c.requestTimeout,
		IdleTimeout:       c.idleTimeout,
		MaxHeaderBytes:    server.MaxHeaderBytes,
		ErrorLog:          errorLog,
		HTTP2:             http2Config(c.requestTimeout),
	}
}
