package telemetry

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tenantcrypt/tenantcrypt/internal/testkms"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestSetupFromEnv(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		env     map[string]string
		on      bool
		wantErr string
	}{
		{"no endpoint: off", map[string]string{"OTEL_SERVICE_NAME": "x"}, false, ""},
		{"disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, false, ""},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}, false, ""},
		{"http default", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true, ""},
		{"traces endpoint, grpc", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, true, ""},
		{"grpc without scheme", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_INSECURE": "true"}, true, ""},
		{"http/json", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, true, ""},
		{"ratio sampler", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}, true, ""},
		{"headers", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_HEADERS": "api-key=s3cr%20et,x=y"}, true, ""},
		{"bad protocol", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"}, false, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{"bad exporter", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "zipkin"}, false, "OTEL_TRACES_EXPORTER"},
		{"bad sampler", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_SAMPLER": "sometimes"}, false, "OTEL_TRACES_SAMPLER"},
		{"bad ratio", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, false, "OTEL_TRACES_SAMPLER_ARG"},
		{"bad headers, value not quoted", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_HEADERS": "api-key"}, false, "OTEL_EXPORTER_OTLP_HEADERS"},
		{"http without scheme", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:4318"}, false, "http://"},
		{"bad timeout", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, false, "OTEL_EXPORTER_OTLP_TIMEOUT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := Setup(ctx, env(tc.env), "test", nil)
			if cerr := Check(env(tc.env)); (cerr == nil) != (err == nil) {
				t.Errorf("Check = %v, Setup = %v: they disagree", cerr, err)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "s3cr") {
					t.Errorf("the error quotes a header value: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tr != nil; got != tc.on {
				t.Fatalf("tracing on = %v, want %v", got, tc.on)
			}
			if tr == nil {
				if tr.Tracer() != nil || tr.KMSProvider(nil) != nil || tr.AWSMiddleware() != nil {
					t.Error("tracing off still hands out a tracer or decorator")
				}
				return
			}
			if err := tr.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		})
	}
}

func TestResourceFromEnv(t *testing.T) {
	t.Parallel()
	res, err := resourceFromEnv(context.Background(), env(map[string]string{
		"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs,deployment.environment.name=prod%20eu",
		"OTEL_SERVICE_NAME":        "from-name",
	}), "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kv := range res.Attributes() {
		got[string(kv.Key)] = kv.Value.String()
	}
	for k, want := range map[string]string{"service.name": "from-name", "deployment.environment.name": "prod eu", "service.version": "1.2.3", "telemetry.sdk.language": "go"} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
}

// TestAWSMiddleware traces real AWS SDK calls to local-kms: one client
// span per call, named by service and operation, with the region and the
// AWS request id, and the error code of a failed call.
func TestAWSMiddleware(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr := &Tracing{provider: tp, tracer: tp.Tracer(ScopeName)}

	srv := testkms.Start(t, testkms.Options{})
	client := srv.Client(t, func(o *awskms.Options) { o.APIOptions = append(o.APIOptions, tr.AWSMiddleware()) })
	ctx := context.Background()
	if _, err := client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(testkms.SymmetricKeyID)}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Decrypt(ctx, &awskms.DecryptInput{KeyId: aws.String(testkms.SymmetricKeyID), CiphertextBlob: []byte("not a ciphertext at all")}); err == nil {
		t.Fatal("Decrypt of garbage worked")
	}
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	attrs := func(s tracetest.SpanStub) map[string]string {
		m := map[string]string{}
		for _, kv := range s.Attributes {
			m[string(kv.Key)] = kv.Value.String()
		}
		return m
	}
	if got, want := spans[0].Name, "KMS.DescribeKey"; got != want {
		t.Errorf("span name %q, want %q", got, want)
	}
	a := attrs(spans[0])
	if a["cloud.region"] != srv.Region || a["rpc.system"] != "aws-api" || a["aws.request_id"] == "" {
		t.Errorf("DescribeKey span attributes %v", a)
	}
	if spans[1].Name != "KMS.Decrypt" || spans[1].Status.Code != codes.Error || attrs(spans[1])["error.type"] == "" {
		t.Errorf("failed Decrypt span: %s %v %v", spans[1].Name, spans[1].Status, attrs(spans[1]))
	}
	for _, s := range spans {
		for k, v := range attrs(s) {
			if strings.Contains(v, "not a ciphertext") {
				t.Errorf("span %s attribute %s holds the request's data", s.Name, k)
			}
		}
	}
}
