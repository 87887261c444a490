package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/aws/smithy-go/middleware"

	"github.com/tenantcrypt/tenantcrypt/internal/providers"
	"github.com/tenantcrypt/tenantcrypt/internal/telemetry"
)

// setupTracing turns OpenTelemetry tracing on when the OTEL_* variables
// name an OTLP endpoint (docs/operations.md, "Tracing"); stop exports the
// spans still buffered. With tracing off it returns nil and a no-op stop.
func setupTracing(ctx context.Context, env func(string) string, log *slog.Logger) (*telemetry.Tracing, func(), error) {
	tr, err := telemetry.Setup(ctx, env, version, log)
	if err != nil || tr == nil {
		return nil, func() {}, err
	}
	log.Info("OpenTelemetry tracing on: spans of requests, store and KMS calls are exported over OTLP", "endpoint", tr.Endpoint, "protocol", tr.Protocol)
	return tr, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(sctx); err != nil {
			log.Warn("OpenTelemetry: exporting the last spans failed", "error", err.Error())
		}
	}, nil
}

// tracingAPIOptions is the AWS SDK middleware that traces AWS KMS calls,
// none with tracing off.
func tracingAPIOptions(tr *telemetry.Tracing) []func(*middleware.Stack) error {
	if m := tr.AWSMiddleware(); m != nil {
		return []func(*middleware.Stack) error{m}
	}
	return nil
}

// tracingRegistryOptions traces every key provider call, with tracing on.
func tracingRegistryOptions(tr *telemetry.Tracing) []providers.Option {
	if tr == nil {
		return nil
	}
	return []providers.Option{providers.WithProviderWrapper(tr.KMSProvider)}
}
