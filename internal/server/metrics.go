package server

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantcrypt_http_requests_total",
			Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tenantcrypt_http_request_duration_seconds",
			Help:    "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// initRoutes creates every route's series, so that they exist from the
// first scrape: the latency histogram, and the count of successful answers
// (200; other codes appear with their first answer).
func (m *metrics) initRoutes(routes []Route) {
	for _, rt := range routes {
		label := rt.Method + " " + rt.Path
		m.requests.WithLabelValues(label, "200")
		m.duration.WithLabelValues(label)
	}
}

func (m *metrics) observe(route string, status int, elapsed time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	if elapsed > 0 {
		m.duration.WithLabelValues(route).Observe(elapsed.Seconds())
	}
}
