package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

const testTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// TestRequestSpans: with a tracer, each request is a server span named by
// its route, a child of the caller's traceparent, with its status (an
// error status for a 5xx), and its log line carries the ids.
func TestRequestSpans(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	var logs bytes.Buffer
	h := New(Config{
		Tracer: tp.Tracer("test"), Propagator: propagation.TraceContext{},
		Ready:  []Check{{Name: "database", Fn: func(context.Context) error { return errors.New("down") }}},
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}).Handler()

	for _, path := range []string{"/livez", "/readyz"} {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("traceparent", testTraceparent)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	for i, want := range []struct {
		name   string
		status int64
		code   codes.Code
	}{{"GET /livez", 200, codes.Unset}, {"GET /readyz", 503, codes.Error}} {
		s := spans[i]
		if s.Name != want.name || s.SpanKind != trace.SpanKindServer {
			t.Errorf("span %d: %s (%v), want server span %s", i, s.Name, s.SpanKind, want.name)
		}
		if s.Parent.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || s.Parent.SpanID().String() != "00f067aa0ba902b7" || !s.Parent.IsRemote() {
			t.Errorf("%s: parent %v, want the caller's traceparent", s.Name, s.Parent)
		}
		var status int64
		for _, kv := range s.Attributes {
			if kv.Key == "http.response.status_code" {
				status = kv.Value.AsInt64()
			}
		}
		if status != want.status || s.Status.Code != want.code {
			t.Errorf("%s: status %d, span status %v; want %d, %v", s.Name, status, s.Status.Code, want.status, want.code)
		}
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	var last struct {
		Route   string
		TraceID string `json:"trace_id"`
		SpanID  string `json:"span_id"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	if last.Route != "GET /readyz" || last.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || last.SpanID != spans[1].SpanContext.SpanID().String() {
		t.Errorf("log line %s: want the readyz span's trace and span ids", lines[len(lines)-1])
	}
}

// TestNoTracer: without a tracer a traceparent changes nothing, the log
// lines have no trace ids, and the request path allocates nothing for it.
func TestNoTracer(t *testing.T) { // not parallel: AllocsPerRun
	var logs bytes.Buffer
	s := New(Config{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	req := httptest.NewRequest("GET", "/livez", nil)
	req.Header.Set("traceparent", testTraceparent)
	s.Handler().ServeHTTP(httptest.NewRecorder(), req)
	if strings.Contains(logs.String(), "trace_id") {
		t.Errorf("a log line has a trace id with tracing off: %s", logs.String())
	}
	if n := testing.AllocsPerRun(100, func() {
		r, end := s.traceRequest(req, "GET /livez", "GET", "/livez")
		end(http.StatusOK)
		_ = r
	}); n != 0 {
		t.Errorf("tracing off costs %v allocations per request, want 0", n)
	}
}
