package main

import (
	"net/http"
	"time"
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
func http2Config(cfg serveConfig) *http.HTTP2Config {
	return &http.HTTP2Config{
		MaxConcurrentStreams: 250,
		SendPingTimeout:      15 * time.Second,
		PingTimeout:          10 * time.Second,
		WriteByteTimeout:     cfg.requestTimeout,
	}
}
