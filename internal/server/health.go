package server

import (
	"context"
	_ "embed"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/tenantcrypt/tenantcrypt/api"
)

func (s *Server) livez(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, api.Health{Status: "ok"})
	return nil
}

// readyz runs every readiness check concurrently, each within a short
// deadline, and answers 503 if any fails. Failures are named, not explained:
// the details are in the server log.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	out := api.Health{Status: "ok", Checks: make(map[string]string, len(s.cfg.Ready))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range s.cfg.Ready {
		wg.Go(func() {
			err := c.Fn(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				out.Status = "unavailable"
				out.Checks[c.Name] = "failing"
				s.log.WarnContext(ctx, "readiness check failed", "check", c.Name, "error", err.Error())
				return
			}
			out.Checks[c.Name] = "ok"
		})
	}
	wg.Wait()
	status := http.StatusOK
	if out.Status != "ok" {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, out)
	return nil
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.JWKS == nil {
		return errRouteNotFound
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	b, err := jsonMarshal(s.cfg.JWKS())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	return nil
}

func (s *Server) metricsHandler(w http.ResponseWriter, r *http.Request) error {
	promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	return nil
}

//go:embed openapi.json
var openapiDoc []byte

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openapiDoc)
	return nil
}
