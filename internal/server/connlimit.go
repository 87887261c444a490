package server

import (
	"container/list"
	"crypto/tls"
	"net"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// ConnLimiter bounds the open connections of a listener, in total and per
// client address, so that connections alone cannot use up the process's
// file descriptors. At the total bound a new connection takes the place of
// the connection that has been idle longest (a keep-alive HTTP/1.1
// connection between requests, an HTTP/2 connection with no stream open);
// when none is idle, the new connection is closed at once. Beyond the
// per-address bound a new connection is closed at once.
//
// Use Listener on the plain TCP listener (below TLS) and ConnState as the
// http.Server's ConnState hook.
type ConnLimiter struct {
	max, perIP int

	mu   sync.Mutex
	open int
	byIP map[string]int
	idle *list.List // of *limitedConn, longest idle first

	refused *prometheus.CounterVec
	evicted prometheus.Counter
}

// NewConnLimiter bounds connections to max in total (0: no bound) and to
// perIP per client address (0: no bound), with its metrics in reg.
func NewConnLimiter(max, perIP int, reg prometheus.Registerer) *ConnLimiter {
	l := &ConnLimiter{max: max, perIP: perIP, byIP: map[string]int{}, idle: list.New(),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tenantcrypt_connections_refused_total",
			Help: "Connections closed on arrival because of --max-conns (none idle to replace) or --max-conns-per-ip."}, []string{"limit"}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{Name: "tenantcrypt_connections_evicted_total",
			Help: "Idle connections closed at --max-conns to make room for a new one."}),
	}
	l.refused.WithLabelValues("max-conns")
	l.refused.WithLabelValues("max-conns-per-ip")
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tenantcrypt_connections_open", Help: "Open client connections."},
		func() float64 {
			l.mu.Lock()
			defer l.mu.Unlock()
			return float64(l.open)
		})
	reg.MustRegister(l.refused, l.evicted, open)
	return l
}

// Listener returns ln with its connections bounded.
func (l *ConnLimiter) Listener(ln net.Listener) net.Listener {
	return &limitListener{Listener: ln, l: l}
}

// ConnState tracks which connections are idle; set it as the
// http.Server's ConnState.
func (l *ConnLimiter) ConnState(c net.Conn, state http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if lc.released {
		return
	}
	switch state {
	case http.StateIdle:
		if lc.idle == nil {
			lc.idle = l.idle.PushBack(lc)
		}
	default:
		if lc.idle != nil {
			l.idle.Remove(lc.idle)
			lc.idle = nil
		}
	}
}

// admit decides on a new connection from ip: it returns the idle
// connection to close to make room (or nil), and whether c may stay.
func (l *ConnLimiter) admit(ip string) (evict *limitedConn, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perIP > 0 && l.byIP[ip] >= l.perIP {
		l.refused.WithLabelValues("max-conns-per-ip").Inc()
		return nil, false
	}
	if l.max > 0 && l.open >= l.max {
		e := l.idle.Front()
		if e == nil {
			l.refused.WithLabelValues("max-conns").Inc()
			return nil, false
		}
		evict = e.Value.(*limitedConn)
		l.releaseLocked(evict)
		l.evicted.Inc()
	}
	l.open++
	l.byIP[ip]++
	return evict, true
}

func (l *ConnLimiter) releaseLocked(c *limitedConn) {
	if c.released {
		return
	}
	c.released = true
	if c.idle != nil {
		l.idle.Remove(c.idle)
		c.idle = nil
	}
	l.open--
	if l.byIP[c.ip]--; l.byIP[c.ip] <= 0 {
		delete(l.byIP, c.ip)
	}
}

type limitListener struct {
	net.Listener
	l *ConnLimiter
}

func (ln *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip, _, err := net.SplitHostPort(c.RemoteAddr().String())
		if err != nil {
			ip = c.RemoteAddr().String()
		}
		evict, ok := ln.l.admit(ip)
		if evict != nil {
			_ = evict.Conn.Close()
		}
		if !ok {
			_ = c.Close()
			continue
		}
		return &limitedConn{Conn: c, l: ln.l, ip: ip}, nil
	}
}

// limitedConn is a connection counted by its ConnLimiter until it closes.
type limitedConn struct {
	net.Conn
	l  *ConnLimiter
	ip string
	// Guarded by l.mu.
	released bool
	idle     *list.Element
}

func (c *limitedConn) Close() error {
	c.l.mu.Lock()
	c.l.releaseLocked(c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}
