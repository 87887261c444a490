// Package telemetry sets up OpenTelemetry tracing from the standard OTEL_*
// environment variables, and provides the decorators that trace the
// service's store and KMS calls. Tracing is off unless an OTLP endpoint is
// configured; then nothing here is on any path (Setup returns nil, and the
// composition root installs no decorator).
//
// Spans carry names, ids, statuses and counts only: never key material,
// plaintext, ciphertexts, handles, tokens or encryption contexts.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of every span tenantcrypt makes.
const ScopeName = "github.com/tenantcrypt/tenantcrypt"

// Tracing is the service's tracer provider and propagator. A nil *Tracing
// is tracing turned off.
type Tracing struct {
	provider   *sdktrace.TracerProvider
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	// Endpoint and Protocol say where spans go, for the start-up log.
	Endpoint, Protocol string
}

// Setup reads the OTEL_* variables through getenv (os.Getenv in the
// service) and returns the tracing they configure, or nil when tracing is
// off: no OTEL_EXPORTER_OTLP_ENDPOINT nor OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
// OTEL_SDK_DISABLED=true, or OTEL_TRACES_EXPORTER=none. Errors name the
// variable that is wrong. version becomes the resource's service.version.
//
// The exporters also read the variables this function does not (such as
// OTEL_EXPORTER_OTLP_CERTIFICATE) from the process environment themselves.
func Setup(ctx context.Context, getenv func(string) string, version string, log *slog.Logger) (*Tracing, error) {
	st, err := readEnv(getenv, version)
	if err != nil || st == nil {
		return nil, err
	}
	exporter, err := st.exporter(ctx)
	if err != nil {
		return nil, err
	}
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(st.resource...))
	if err != nil {
		exporter.Shutdown(ctx)
		return nil, err
	}
	endpoint, protocol, sampler, batch := st.endpoint, st.protocol, st.sampler, st.batch
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter, batch...),
		sdktrace.WithSampler(sampler),
		sdktrace.WithResource(res),
	)
	if log != nil {
		// The SDK reports failed exports through this process-wide handler.
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			log.Warn("OpenTelemetry: exporting traces failed", "error", err.Error())
		}))
	}
	return &Tracing{
		provider:   tp,
		tracer:     tp.Tracer(ScopeName, trace.WithInstrumentationVersion(version)),
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		Endpoint:   redactURL(endpoint),
		Protocol:   protocol,
	}, nil
}

// Tracer returns the service's tracer; nil when tracing is off.
func (t *Tracing) Tracer() trace.Tracer {
	if t == nil {
		return nil
	}
	return t.tracer
}

// Propagator returns the W3C trace-context (and baggage) propagator.
func (t *Tracing) Propagator() propagation.TextMapPropagator {
	if t == nil {
		return nil
	}
	return t.propagator
}

// Shutdown exports the spans still buffered and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// Check reports what is wrong with the OTEL_* variables, as Setup would,
// without setting anything up: the configuration check at start.
func Check(getenv func(string) string) error {
	_, err := readEnv(getenv, "")
	return err
}

// settings is what the OTEL_* variables say; the exporter is made last.
type settings struct {
	endpoint, protocol string
	exporter           func(context.Context) (sdktrace.SpanExporter, error)
	sampler            sdktrace.Sampler
	resource           []attribute.KeyValue
	batch              []sdktrace.BatchSpanProcessorOption
}

// readEnv reads and checks the variables; nil settings: tracing off.
func readEnv(getenv func(string) string, version string) (*settings, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return nil, nil
	}
	switch exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp {
	case "", "otlp":
	case "none":
		return nil, nil
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: only otlp (or none) is supported", exp)
	}
	endpoint, signalSpecific := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), true
	if endpoint == "" {
		endpoint, signalSpecific = getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), false
	}
	if endpoint == "" {
		return nil, nil
	}
	st := &settings{endpoint: endpoint, protocol: first(getenv, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")}
	if st.protocol == "" {
		st.protocol = "http/protobuf" // the specification's default
	}
	var err error
	if st.exporter, err = exporterFromEnv(getenv, st.protocol, endpoint, signalSpecific); err != nil {
		return nil, err
	}
	if st.sampler, err = samplerFromEnv(getenv); err != nil {
		return nil, err
	}
	if st.resource, err = resourceAttrs(getenv, version); err != nil {
		return nil, err
	}
	if d, ok, err := millis(getenv, "OTEL_BSP_SCHEDULE_DELAY"); err != nil {
		return nil, err
	} else if ok {
		st.batch = append(st.batch, sdktrace.WithBatchTimeout(d))
	}
	return st, nil
}

func first(getenv func(string) string, names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(getenv(n)); v != "" {
			return v
		}
	}
	return ""
}

// exporterFromEnv checks the exporter's variables and returns the function
// that makes it.
func exporterFromEnv(getenv func(string) string, protocol, endpoint string, signalSpecific bool) (func(context.Context) (sdktrace.SpanExporter, error), error) {
	headers, err := parseHeaders(first(getenv, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"))
	if err != nil {
		return nil, err
	}
	timeout, hasTimeout, err := millis(getenv, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
	if err == nil && !hasTimeout {
		timeout, hasTimeout, err = millis(getenv, "OTEL_EXPORTER_OTLP_TIMEOUT")
	}
	if err != nil {
		return nil, err
	}
	compression := first(getenv, "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION")
	if compression != "" && compression != "gzip" && compression != "none" {
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_COMPRESSION=%q: use gzip or none", compression)
	}
	insecure := strings.EqualFold(first(getenv, "OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_INSECURE"), "true")
	hasScheme := strings.HasPrefix(endpoint, "http://") || strings.HasPrefix(endpoint, "https://")

	switch protocol {
	case "grpc":
		var opts []otlptracegrpc.Option
		if hasScheme {
			u, err := url.Parse(endpoint)
			if err != nil || u.Host == "" {
				return nil, fmt.Errorf("OTLP endpoint %q is not a URL", redactURL(endpoint))
			}
			opts = append(opts, otlptracegrpc.WithEndpointURL(endpoint))
		} else {
			opts = append(opts, otlptracegrpc.WithEndpoint(endpoint))
			if insecure {
				opts = append(opts, otlptracegrpc.WithInsecure())
			}
		}
		if len(headers) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(headers))
		}
		if hasTimeout {
			opts = append(opts, otlptracegrpc.WithTimeout(timeout))
		}
		if compression == "gzip" {
			opts = append(opts, otlptracegrpc.WithCompressor("gzip"))
		}
		return func(ctx context.Context) (sdktrace.SpanExporter, error) { return otlptracegrpc.New(ctx, opts...) }, nil
	case "http/protobuf", "http/json":
		if !hasScheme {
			return nil, fmt.Errorf("OTLP endpoint %q: OTLP over HTTP needs an http:// or https:// URL", redactURL(endpoint))
		}
		u, err := url.Parse(endpoint)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("OTLP endpoint %q is not a URL", redactURL(endpoint))
		}
		if !signalSpecific {
			// The base endpoint gets the signal's path (the specification).
			u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
		}
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(u.String())}
		if protocol == "http/json" {
			opts = append(opts, otlptracehttp.WithEncoding(otlptracehttp.EncodingJSON))
		}
		if len(headers) > 0 {
			opts = append(opts, otlptracehttp.WithHeaders(headers))
		}
		if hasTimeout {
			opts = append(opts, otlptracehttp.WithTimeout(timeout))
		}
		if compression == "gzip" {
			opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
		}
		return func(ctx context.Context) (sdktrace.SpanExporter, error) { return otlptracehttp.New(ctx, opts...) }, nil
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: use grpc, http/protobuf or http/json", protocol)
	}
}

// parseHeaders reads the W3C-baggage-like list "k1=v1,k2=v2" (values
// URL-encoded). Header values are often credentials: errors never quote
// them.
func parseHeaders(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	h := map[string]string{}
	for i, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_HEADERS: entry %d is not key=value", i+1)
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_HEADERS: the value of %q is not URL-encoded", k)
		}
		h[k] = dv
	}
	return h, nil
}

// millis reads a duration in milliseconds, as the OTEL_* variables give
// them.
func millis(getenv func(string) string, name string) (time.Duration, bool, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false, fmt.Errorf("%s=%q: want milliseconds, a non-negative integer", name, v)
	}
	return time.Duration(n) * time.Millisecond, true, nil
}

// samplerFromEnv reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG;
// the default, parentbased_always_on, follows the caller's traceparent.
func samplerFromEnv(getenv func(string) string) (sdktrace.Sampler, error) {
	name := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER"))
	arg := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG"))
	ratio := func() (float64, error) {
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%q: want a ratio between 0 and 1", arg)
		}
		return r, nil
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio", "parentbased_traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, err
		}
		if name == "traceidratio" {
			return sdktrace.TraceIDRatioBased(r), nil
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), nil
	default:
		return nil, fmt.Errorf("OTEL_TRACES_SAMPLER=%q: use always_on, always_off, traceidratio or their parentbased_ forms", name)
	}
}

// resourceFromEnv describes the service: service.name tenantcrypt (or
// OTEL_SERVICE_NAME), its version, the SDK, and OTEL_RESOURCE_ATTRIBUTES.
func resourceFromEnv(ctx context.Context, getenv func(string) string, version string) (*resource.Resource, error) {
	attrs, err := resourceAttrs(getenv, version)
	if err != nil {
		return nil, err
	}
	return resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(attrs...))
}

// resourceAttrs are the resource's attributes but the SDK's.
func resourceAttrs(getenv func(string) string, version string) ([]attribute.KeyValue, error) {
	attrs := []attribute.KeyValue{attribute.String("service.version", version)}
	if s := strings.TrimSpace(getenv("OTEL_RESOURCE_ATTRIBUTES")); s != "" {
		for _, part := range strings.Split(s, ",") {
			k, v, ok := strings.Cut(part, "=")
			k = strings.TrimSpace(k)
			if !ok || k == "" {
				return nil, errors.New("OTEL_RESOURCE_ATTRIBUTES: want key=value pairs separated by commas")
			}
			dv, err := url.PathUnescape(strings.TrimSpace(v))
			if err != nil {
				return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: the value of %q is not URL-encoded", k)
			}
			attrs = append(attrs, attribute.String(k, dv))
		}
	}
	name := "tenantcrypt"
	for _, a := range attrs {
		if a.Key == "service.name" {
			name = a.Value.AsString()
		}
	}
	if s := strings.TrimSpace(getenv("OTEL_SERVICE_NAME")); s != "" {
		name = s // wins over OTEL_RESOURCE_ATTRIBUTES (the specification)
	}
	attrs = append(attrs, attribute.String("service.name", name))
	return attrs, nil
}

// redactURL drops the user information of a URL, for logs and errors.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = nil
	return u.String()
}
