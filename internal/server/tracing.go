package server

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// noSpan ends no span: the request path with tracing off.
func noSpan(int) {}

// traceRequest starts the request's server span, named by its route
// template ("POST /api/v1/encryption/encrypt") and a child of the caller's
// W3C traceparent, and returns the request carrying it and the function
// that ends it with the status. Without a tracer it does nothing. The span
// holds the method, route and status: never the path's values, the query,
// a header or a body.
func (s *Server) traceRequest(r *http.Request, route, method, path string) (*http.Request, func(status int)) {
	if s.cfg.Tracer == nil {
		return r, noSpan
	}
	ctx := r.Context()
	if s.cfg.Propagator != nil {
		ctx = s.cfg.Propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
	}
	ctx, span := s.cfg.Tracer.Start(ctx, route, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attribute.String("http.request.method", method),
		attribute.String("http.route", path),
		attribute.String("tenantcrypt.request_id", requestIDFrom(ctx)),
	))
	return r.WithContext(ctx), func(status int) {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
		span.End()
	}
}

// traceAttrs are the trace and span ids of the request's span, for its log
// line, while a span is recording.
func traceAttrs(r *http.Request) (traceID, spanID string, ok bool) {
	span := trace.SpanFromContext(r.Context())
	if !span.IsRecording() {
		return "", "", false
	}
	sc := span.SpanContext()
	return sc.TraceID().String(), sc.SpanID().String(), true
}
