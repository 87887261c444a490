package server

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tenantcrypt/tenantcrypt/api"
)

// The edge: what every request meets before its route (HSTS, the bound on
// requests in progress) and the server's own error log.

// hstsValue asks browsers and clients that honour it to use HTTPS only, for
// a year. It is sent on every answer over TLS, never over the development
// mode's plain HTTP (where browsers ignore it and it would only mislead).
const hstsValue = "max-age=31536000"

// DefaultMaxInflight is the default bound on requests in progress.
const DefaultMaxInflight = 2048

// errOverloaded answers a request beyond Config.MaxInflight.
var errOverloaded = &requestError{kind: kindOverloaded}

// edge sets the headers every answer carries and bounds the requests in
// progress; /livez, /readyz and /metrics are exempt, so that probes and
// scrapes still see an overloaded server.
func (s *Server) edge(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", hstsValue)
		}
		if s.cfg.MaxInflight > 0 && !exemptFromInflight(r.URL.Path) {
			n := s.inflight.Add(1)
			defer s.inflight.Add(-1)
			if n > int64(s.cfg.MaxInflight) {
				s.overloaded.Inc()
				// Not through writeError, which logs every 5xx: an
				// overload must not also flood the log.
				he := toHTTPError(errOverloaded)
				w.Header().Set("Retry-After", strconv.Itoa(he.retryAfter))
				writeJSON(w, he.status, api.ErrorResponse{Errors: []api.Error{*he.apiError()}})
				s.metrics.observe("overloaded", http.StatusServiceUnavailable, 0)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func exemptFromInflight(path string) bool {
	return path == api.RouteLivez.Path || path == api.RouteReadyz.Path || path == api.RouteMetrics.Path
}

// bodyLimits refuses at once a body announced larger than the limit (no
// byte of it is read), bounds what is read by the limit, and gives the body
// Config.BodyReadTimeout to arrive.
func (s *Server) bodyLimits(w *statusWriter, r *http.Request) error {
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return bodyTooLarge(s.cfg.MaxBodyBytes)
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	if r.ContentLength != 0 && s.cfg.BodyReadTimeout > 0 {
		// Not supported by every ResponseWriter (tests' recorders): the
		// server's ReadTimeout still bounds the body then.
		rc := http.NewResponseController(w)
		if rc.SetReadDeadline(time.Now().Add(s.cfg.BodyReadTimeout)) == nil {
			r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
		}
	}
	return nil
}

// deadlineBody lifts the body's read deadline once the body has been read:
// net/http then watches the connection for the client going away, and a
// deadline passing during a slow operation (a KMS call) would cancel the
// request's context as if the client had left.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// ErrorLog is the log for http.Server.ErrorLog: TLS handshake errors (port
// scanners, clients that do not trust the certificate, connections that
// never start TLS) are counted in tenantcrypt_tls_handshake_errors_total
// and logged at most once per Config.HandshakeLogInterval, with the number
// left out since; everything else is logged as a warning.
func (s *Server) ErrorLog() *log.Logger {
	return log.New(&errorLogWriter{log: s.log, count: s.handshakeErrors, every: s.cfg.HandshakeLogInterval}, "", 0)
}

type errorLogWriter struct {
	log   *slog.Logger
	count prometheus.Counter
	every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (e *errorLogWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimRight(p, "\n"))
	if !bytes.Contains(p, []byte("TLS handshake error")) {
		e.log.Warn(msg)
		return len(p), nil
	}
	e.count.Inc()
	e.mu.Lock()
	now := time.Now()
	if !e.last.IsZero() && now.Sub(e.last) < e.every {
		e.suppressed++
		e.mu.Unlock()
		return len(p), nil
	}
	suppressed := e.suppressed
	e.last, e.suppressed = now, 0
	e.mu.Unlock()
	e.log.Warn(msg, "suppressed", suppressed,
		"note", fmt.Sprintf("failed handshakes are logged at most once per %s; suppressed counts the ones left out since the previous line, tenantcrypt_tls_handshake_errors_total counts them all", e.every))
	return len(p), nil
}

// edgeMetrics registers the edge's counters; they exist from the start.
func (s *Server) edgeMetrics(reg prometheus.Registerer) {
	s.handshakeErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "tenantcrypt_tls_handshake_errors_total",
		Help: "TLS handshakes that failed (logged at most once per interval)."})
	s.overloaded = prometheus.NewCounter(prometheus.CounterOpts{Name: "tenantcrypt_http_requests_overloaded_total",
		Help: "Requests refused with 503 because --max-inflight requests were in progress."})
	inflight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tenantcrypt_http_requests_inflight",
		Help: "Requests in progress that count against --max-inflight."},
		func() float64 { return float64(s.inflight.Load()) })
	reg.MustRegister(s.handshakeErrors, s.overloaded, inflight)
}

// inflightCounter counts requests in progress.
type inflightCounter = atomic.Int64
