package kmip

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/kmip/ttlv"
)

// DefaultTimeout bounds one attempt at one endpoint (connect, TLS
// handshake, request and answer) when Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// maxIdle is how many idle connections a Client keeps per endpoint, and
// idleFor how long it keeps one: PyKMIP and most appliances close idle
// sessions after some seconds, and a TLS handshake costs little.
const (
	maxIdle = 4
	idleFor = 5 * time.Second
)

// Config configures a Client.
type Config struct {
	// Endpoints are the servers of one KMIP cluster, "host:port", tried
	// in this order while one does not answer. At least one.
	Endpoints []string
	// RootCAs verifies the servers' certificates, whose names must match
	// the endpoint's host.
	RootCAs *x509.CertPool
	// Certificate is the client certificate and its key.
	Certificate tls.Certificate
	// Timeout bounds one attempt at one endpoint; default DefaultTimeout.
	Timeout time.Duration
	// Ref names the key provider in errors (kms.Error.Provider).
	Ref string
	// OnCall, if set, is told of every operation, answered or failed
	// (for the audit log). It must not block.
	OnCall func(Call)
}

// Call is one KMIP operation as Config.OnCall sees it.
type Call struct {
	// Operation is "Encrypt", "Decrypt", "GetAttributes", ...
	Operation string
	// Endpoint is the server that answered, or the last one tried.
	Endpoint string
	// TenantID is the tenant the call is for (kms.WithTenant), if known.
	TenantID string
	// Key is empty here; callers that know the key's URI add it.
	Key string
	// Err is the failure, nil on success.
	Err error
}

// Client talks KMIP 1.4 over TLS to one cluster of KMIP servers. It is
// safe for concurrent use. Close releases its idle connections.
//
// Every error of its methods is a *kms.Error whose Kind is a kms sentinel
// where one applies (see ResultError for the KMIP results, and the package
// comment for connection failures); its cause is a *ResultError or an
// *EndpointError.
type Client struct {
	cfg Config
	tls *tls.Config

	mu   sync.Mutex
	idle map[string][]idleConn
}

type idleConn struct {
	conn  *tls.Conn
	since time.Time
}

// New returns a Client for cfg. It makes no connection.
func New(cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("kmip: no endpoint")
	}
	for _, ep := range cfg.Endpoints {
		if _, _, err := net.SplitHostPort(ep); err != nil {
			return nil, fmt.Errorf("kmip: endpoint %q: %w", ep, err)
		}
	}
	if cfg.RootCAs == nil {
		return nil, errors.New("kmip: no server CA")
	}
	if len(cfg.Certificate.Certificate) == 0 {
		return nil, errors.New("kmip: no client certificate")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	cfg.Endpoints = append([]string(nil), cfg.Endpoints...)
	return &Client{
		cfg: cfg,
		tls: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			RootCAs:      cfg.RootCAs,
			Certificates: []tls.Certificate{cfg.Certificate},
		},
		idle: map[string][]idleConn{},
	}, nil
}

// Endpoints returns the endpoints the client tries, in order.
func (c *Client) Endpoints() []string { return append([]string(nil), c.cfg.Endpoints...) }

// Close closes the idle connections. The client stays usable.
func (c *Client) Close() {
	c.mu.Lock()
	idle := c.idle
	c.idle = map[string][]idleConn{}
	c.mu.Unlock()
	for _, conns := range idle {
		for _, ic := range conns {
			ic.conn.Close()
		}
	}
}

// EndpointError is a failure to exchange a message with one endpoint.
type EndpointError struct {
	Endpoint string
	// Refused is set when TLS refused the connection: the server's
	// certificate did not verify, or the server refused the client's.
	Refused bool
	Err     error
}

func (e *EndpointError) Error() string {
	if e.Endpoint == "" {
		return "kmip server: " + e.Err.Error()
	}
	if e.Refused {
		return fmt.Sprintf("kmip server %s: TLS refused: %v", e.Endpoint, e.Err)
	}
	return fmt.Sprintf("kmip server %s: %v", e.Endpoint, e.Err)
}

func (e *EndpointError) Unwrap() error { return e.Err }

// ResultError is a KMIP server's refusal of an operation. Its kms sentinel
// (see Kind) is chosen by Reason alone, never by Message.
type ResultError struct {
	Op       Operation
	Endpoint string
	Reason   ResultReason
	// Message is the server's result message, which names no secret.
	Message string
}

func (e *ResultError) Error() string {
	msg := fmt.Sprintf("kmip %v at %s: %v", e.Op, e.Endpoint, e.Reason)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Kind is the kms sentinel for the refusal, or nil.
func (e *ResultError) Kind() error {
	switch e.Reason {
	case ReasonItemNotFound, ReasonObjectNotFound, ReasonObjectDestroyed:
		return kms.ErrKeyNotFound
	case ReasonPermissionDenied, ReasonAuthenticationNotSuccessful, ReasonNotAuthorised:
		return kms.ErrAccessDenied
	case ReasonWrongKeyLifecycleState:
		return kms.ErrKeyDisabled
	case ReasonServerLimitExceeded:
		return kms.ErrThrottled
	case ReasonGeneralFailure, ReasonProtectionStorageUnavailable:
		return kms.ErrUnavailable
	case ReasonCryptographicFailure:
		if e.Op == OpDecrypt {
			return kms.ErrInvalidCiphertext
		}
	}
	return nil
}

// call sends one operation to the cluster and returns the response
// payload (possibly nil). It tries the endpoints in turn while they fail
// to answer; an answer, even a refusal, ends the search.
func (c *Client) call(ctx context.Context, op Operation, payload ttlv.Item) (*ttlv.Item, error) {
	return c.callAt(ctx, c.cfg.Endpoints, op, payload)
}

func (c *Client) callAt(ctx context.Context, endpoints []string, op Operation, payload ttlv.Item) (*ttlv.Item, error) {
	p, ep, err := c.try(ctx, endpoints, op, payload)
	if c.cfg.OnCall != nil {
		c.cfg.OnCall(Call{Operation: op.String(), Endpoint: ep, TenantID: kms.TenantOf(ctx, nil), Err: err})
	}
	return p, err
}

// try sends op to endpoints in turn; ep is the one that answered, or the
// last one tried.
func (c *Client) try(ctx context.Context, endpoints []string, op Operation, payload ttlv.Item) (p *ttlv.Item, ep string, err error) {
	req, err := ttlv.Encode(request(op, payload))
	if err != nil {
		return nil, "", c.err(op, nil, err)
	}
	var last error
	for _, ep = range endpoints {
		if ctx.Err() != nil {
			break
		}
		resp, err := c.exchange(ctx, ep, req)
		if err == nil {
			payload, err := parseResponse(op, ep, resp)
			if err != nil {
				return nil, ep, c.err(op, nil, err)
			}
			return payload, ep, nil
		}
		last = err
		var ee *EndpointError
		if errors.As(err, &ee) && ee.Refused {
			break // the cluster's servers share their trust
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, ep, c.err(op, kms.ErrUnavailable, errors.Join(err, last))
	}
	return nil, ep, c.err(op, nil, last)
}

// err is the *kms.Error of op. A kind of nil is decided from cause.
func (c *Client) err(op Operation, kind, cause error) *kms.Error {
	if kind == nil {
		var re *ResultError
		var ee *EndpointError
		switch {
		case errors.As(cause, &re):
			kind = re.Kind()
		case errors.As(cause, &ee) && ee.Refused:
			kind = kms.ErrAccessDenied
		case errors.As(cause, &ee):
			kind = kms.ErrUnavailable
		}
	}
	return &kms.Error{Op: op.String(), Provider: c.cfg.Ref, Kind: kind, Err: cause}
}

// exchange sends req to ep and reads the answer, on an idle connection if
// there is one (and, if that one turns out closed, on a fresh one).
func (c *Client) exchange(ctx context.Context, ep string, req []byte) (ttlv.Item, error) {
	if conn := c.takeIdle(ep); conn != nil {
		resp, answered, err := c.roundTrip(ctx, conn, req)
		if err == nil {
			c.putIdle(ep, conn)
			return resp, nil
		}
		conn.Close()
		if answered || ctx.Err() != nil {
			return ttlv.Item{}, &EndpointError{Endpoint: ep, Err: err}
		}
		// The server had closed the idle connection: try a fresh one.
	}
	conn, err := c.dial(ctx, ep)
	if err != nil {
		return ttlv.Item{}, err
	}
	resp, _, err := c.roundTrip(ctx, conn, req)
	if err != nil {
		conn.Close()
		return ttlv.Item{}, &EndpointError{Endpoint: ep, Refused: tlsRefused(err), Err: err}
	}
	c.putIdle(ep, conn)
	return resp, nil
}

func (c *Client) dial(ctx context.Context, ep string) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	host, _, _ := net.SplitHostPort(ep)
	cfg := c.tls.Clone()
	cfg.ServerName = host
	d := tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", ep)
	if err != nil {
		return nil, &EndpointError{Endpoint: ep, Refused: tlsRefused(err), Err: err}
	}
	return conn.(*tls.Conn), nil
}

// roundTrip writes req and reads one message. answered reports whether
// any byte of an answer arrived. With TLS 1.2 the server may refuse the
// client's certificate only now, in its first answer.
func (c *Client) roundTrip(ctx context.Context, conn *tls.Conn, req []byte) (resp ttlv.Item, answered bool, err error) {
	deadline := time.Now().Add(c.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return ttlv.Item{}, false, err
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(req); err != nil {
		return ttlv.Item{}, false, err
	}
	header := make([]byte, ttlv.HeaderSize)
	if n, err := io.ReadFull(conn, header); err != nil {
		return ttlv.Item{}, n > 0, err
	}
	n, err := ttlv.MessageLen(header)
	if err != nil {
		return ttlv.Item{}, true, err
	}
	msg := make([]byte, n)
	copy(msg, header)
	if _, err := io.ReadFull(conn, msg[ttlv.HeaderSize:]); err != nil {
		return ttlv.Item{}, true, err
	}
	resp, err = ttlv.Decode(msg)
	return resp, true, err
}

func (c *Client) takeIdle(ep string) *tls.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	conns := c.idle[ep]
	for len(conns) > 0 {
		ic := conns[len(conns)-1]
		conns = conns[:len(conns)-1]
		if time.Since(ic.since) < idleFor {
			c.idle[ep] = conns
			return ic.conn
		}
		ic.conn.Close()
	}
	c.idle[ep] = conns
	return nil
}

func (c *Client) putIdle(ep string, conn *tls.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := c.idle[ep][:0]
	for _, ic := range c.idle[ep] {
		if time.Since(ic.since) < idleFor {
			kept = append(kept, ic)
		} else {
			ic.conn.Close()
		}
	}
	c.idle[ep] = kept
	if len(kept) >= maxIdle {
		conn.Close()
		return
	}
	c.idle[ep] = append(c.idle[ep], idleConn{conn: conn, since: time.Now()})
}

// tlsRefused reports whether err is TLS refusing the connection: the
// server's certificate failed verification here, or the server sent an
// alert (it refused the client's certificate).
func tlsRefused(err error) bool {
	var verr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var hostname x509.HostnameError
	var opErr *net.OpError
	switch {
	case errors.As(err, &verr), errors.As(err, &unknownCA), errors.As(err, &invalid), errors.As(err, &hostname):
		return true
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		return true
	}
	return false
}

// request is a request message of one batch item.
func request(op Operation, payload ttlv.Item) ttlv.Item {
	return ttlv.Struct(tagRequestMessage,
		ttlv.Struct(tagRequestHeader,
			ttlv.Struct(tagProtocolVersion,
				ttlv.Int(tagProtocolVersionMajor, 1),
				ttlv.Int(tagProtocolVersionMinor, 4),
			),
			ttlv.Int(tagBatchCount, 1),
		),
		ttlv.Struct(tagBatchItem,
			ttlv.Enum(tagOperation, uint32(op)),
			payload,
		),
	)
}

// parseResponse checks that resp answers op with one batch item, and
// returns its payload, or the server's refusal as a *ResultError, or an
// *EndpointError for an answer that makes no sense.
func parseResponse(op Operation, ep string, resp ttlv.Item) (*ttlv.Item, error) {
	bad := func(format string, args ...any) (*ttlv.Item, error) {
		return nil, &EndpointError{Endpoint: ep, Err: fmt.Errorf("unexpected answer to %v: %s", op, fmt.Sprintf(format, args...))}
	}
	if resp.Tag != tagResponseMessage || resp.Type != ttlv.Structure {
		return bad("not a response message")
	}
	items := resp.All(tagBatchItem)
	if len(items) != 1 {
		return bad("%d batch items", len(items))
	}
	item := items[0]
	if o := item.Find(tagOperation); o != nil && (o.Type != ttlv.Enumeration || Operation(o.Int) != op) {
		return bad("it answers operation %d", o.Int)
	}
	status := item.Find(tagResultStatus)
	if status == nil || status.Type != ttlv.Enumeration {
		return bad("no result status")
	}
	if status.Int != statusSuccess {
		re := &ResultError{Op: op, Endpoint: ep, Reason: ReasonGeneralFailure}
		if r := item.Find(tagResultReason); r != nil && r.Type == ttlv.Enumeration {
			re.Reason = ResultReason(r.Int)
		}
		if m := item.Find(tagResultMessage); m != nil && m.Type == ttlv.TextString {
			re.Message = m.Text()
		}
		if status.Int != statusOperationFailed {
			re.Message = fmt.Sprintf("result status %d; %s", status.Int, re.Message)
		}
		return nil, re
	}
	p := item.Find(tagResponsePayload)
	if p != nil && p.Type != ttlv.Structure {
		return bad("the payload is a %v", p.Type)
	}
	return p, nil
}
