package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/tenantcrypt/tenantcrypt/internal/auth"
)

// otlpReceiver is a real OTLP trace receiver on loopback: the collector's
// gRPC TraceService, and its HTTP endpoint (POST /v1/traces, protobuf),
// both decoding with the official OTLP protobuf types.
type otlpReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu       sync.Mutex
	requests []*collectortrace.ExportTraceServiceRequest
}

func (rc *otlpReceiver) add(req *collectortrace.ExportTraceServiceRequest) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests = append(rc.requests, req)
}

// Export implements the gRPC TraceService.
func (rc *otlpReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	rc.add(req)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// ServeHTTP is OTLP/HTTP with protobuf bodies.
func (rc *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		http.Error(w, "unsupported content type "+ct, http.StatusUnsupportedMediaType)
		return
	}
	var body io.Reader = http.MaxBytesReader(w, r.Body, 16<<20)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(data, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.add(&req)
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// receivedSpan is one span as received, with its resource.
type receivedSpan struct {
	span     *tracepb.Span
	resource []*commonpb.KeyValue
}

func (rc *otlpReceiver) spans(traceID []byte) []receivedSpan {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []receivedSpan
	for _, req := range rc.requests {
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					if bytes.Equal(s.TraceId, traceID) {
						out = append(out, receivedSpan{span: s, resource: rs.GetResource().GetAttributes()})
					}
				}
			}
		}
	}
	return out
}

// startOTLPReceiver starts a receiver for protocol (grpc or
// http/protobuf) on 127.0.0.1 and returns it with its endpoint URL.
func startOTLPReceiver(t *testing.T, protocol string) (*otlpReceiver, string) {
	t.Helper()
	rc := &otlpReceiver{}
	if protocol == "grpc" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		gs := grpc.NewServer()
		collectortrace.RegisterTraceServiceServer(gs, rc)
		go func() { _ = gs.Serve(ln) }()
		t.Cleanup(gs.Stop)
		return rc, "http://" + ln.Addr().String()
	}
	hs := httptest.NewServer(rc)
	t.Cleanup(hs.Close)
	return rc, hs.URL
}

func attrString(kvs []*commonpb.KeyValue, key string) (string, bool) {
	for _, kv := range kvs {
		if kv.Key == key {
			switch v := kv.Value.GetValue().(type) {
			case *commonpb.AnyValue_StringValue:
				return v.StringValue, true
			case *commonpb.AnyValue_IntValue:
				return fmt.Sprint(v.IntValue), true
			default:
				return kv.Value.String(), true
			}
		}
	}
	return "", false
}

// TestTracingOTLP runs the server with OTLP export configured only by
// OTEL_* variables, over each protocol, sends an encrypt carrying a W3C
// traceparent, and checks what a real receiver got: the request's span
// (a child of the caller's), store and KMS spans in the same trace, the
// service's resource, the trace id in the request's log line, and no
// secret anywhere in the spans.
func TestTracingOTLP(t *testing.T) {
	t.Parallel()
	for _, protocol := range []string{"grpc", "http/protobuf"} {
		t.Run(strings.ReplaceAll(protocol, "/", "-"), func(t *testing.T) {
			t.Parallel()
			rc, endpoint := startOTLPReceiver(t, protocol)
			ts := startServer(t, map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
				"OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
				"OTEL_SERVICE_NAME":           "tenantcrypt-e2e",
				"OTEL_RESOURCE_ATTRIBUTES":    "deployment.environment.name=test",
				"OTEL_BSP_SCHEDULE_DELAY":     "50",
			})
			if !strings.Contains(ts.logs.String(), "OpenTelemetry tracing on") {
				t.Fatalf("the start-up log does not say tracing is on")
			}
			if r := ts.do("POST", "/api/v1/tenants", ts.token(auth.RolePlatformAdmin, ""), map[string]any{"id": "acme", "name": "Acme", "edition": "enterprise"}); r.status != 201 {
				t.Fatalf("create tenant: %d %s", r.status, r.body)
			}

			traceID, parentID := make([]byte, 16), make([]byte, 8)
			_, _ = rand.Read(traceID)
			_, _ = rand.Read(parentID)
			const plaintext = "hunter2-very-secret-plaintext"
			token := ts.token(auth.RoleService, "acme")
			body, _ := json.Marshal(map[string]any{"plaintext": base64.StdEncoding.EncodeToString([]byte(plaintext)), "context": map[string]string{"app": "crm-context-value"}})
			req, _ := http.NewRequest("POST", ts.url+"/api/v1/encryption/encrypt", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("traceparent", fmt.Sprintf("00-%x-%x-01", traceID, parentID))
			res, err := ts.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Fatalf("encrypt: %d %s", res.StatusCode, answer)
			}
			var enc struct{ Ciphertext string }
			if err := json.Unmarshal(answer, &enc); err != nil || enc.Ciphertext == "" {
				t.Fatalf("encrypt answered %s", answer)
			}

			// Wait for the request's span and its store and KMS spans.
			var got []receivedSpan
			var server *tracepb.Span
			var store, kmsCall bool
			for deadline := time.Now().Add(30 * time.Second); ; {
				got = rc.spans(traceID)
				server, store, kmsCall = nil, false, false
				for _, s := range got {
					switch {
					case s.span.Name == "POST /api/v1/encryption/encrypt":
						server = s.span
					case strings.HasPrefix(s.span.Name, "store."):
						store = true
					case strings.HasPrefix(s.span.Name, "kms."):
						kmsCall = true
					}
				}
				if server != nil && store && kmsCall {
					break
				}
				if time.Now().After(deadline) {
					names := []string{}
					for _, s := range got {
						names = append(names, s.span.Name)
					}
					t.Fatalf("after 30 s the receiver has, in the trace: %v (want the request's span, a store span and a KMS span)", names)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if !bytes.Equal(server.ParentSpanId, parentID) {
				t.Errorf("the request's span has parent %x, want the caller's %x", server.ParentSpanId, parentID)
			}
			if server.Kind != tracepb.Span_SPAN_KIND_SERVER {
				t.Errorf("the request's span kind = %v, want server", server.Kind)
			}
			if v, _ := attrString(server.Attributes, "http.response.status_code"); v != "200" {
				t.Errorf("http.response.status_code = %q, want 200", v)
			}
			if v, _ := attrString(server.Attributes, "http.route"); v != "/api/v1/encryption/encrypt" {
				t.Errorf("http.route = %q", v)
			}
			if v, _ := attrString(got[0].resource, "service.name"); v != "tenantcrypt-e2e" {
				t.Errorf("service.name = %q, want OTEL_SERVICE_NAME", v)
			}
			if v, _ := attrString(got[0].resource, "deployment.environment.name"); v != "test" {
				t.Errorf("deployment.environment.name = %q, want it from OTEL_RESOURCE_ATTRIBUTES", v)
			}
			byID := map[string]*tracepb.Span{}
			for _, s := range got {
				byID[string(s.span.SpanId)] = s.span
			}
			for _, s := range got {
				if s.span != server && !descends(s.span, server, byID) {
					t.Errorf("span %s is not under the request's span", s.span.Name)
				}
			}

			// No secret in any span: names, attributes, events, statuses.
			ctParts := strings.Split(enc.Ciphertext, ":")
			secrets := []string{plaintext, base64.StdEncoding.EncodeToString([]byte(plaintext)), token, enc.Ciphertext,
				ctParts[len(ctParts)-1], "crm-context-value", strings.Split(token, ".")[2]}
			for _, s := range got {
				text := s.span.Name + " " + s.span.GetStatus().GetMessage()
				for _, kv := range s.span.Attributes {
					text += " " + kv.Key + "=" + kv.Value.String()
				}
				for _, ev := range s.span.Events {
					text += " " + ev.Name
					for _, kv := range ev.Attributes {
						text += " " + kv.Key + "=" + kv.Value.String()
					}
				}
				for _, secret := range secrets {
					if strings.Contains(text, secret) {
						t.Errorf("span %s holds a secret (%.8s…): %s", s.span.Name, secret, text)
					}
				}
			}

			// The request's log line carries the trace id.
			tid := hex.EncodeToString(traceID)
			found := false
			for _, line := range strings.Split(ts.logs.String(), "\n") {
				var e struct {
					Route   string
					TraceID string `json:"trace_id"`
					SpanID  string `json:"span_id"`
				}
				if json.Unmarshal([]byte(line), &e) == nil && e.Route == "POST /api/v1/encryption/encrypt" {
					found = true
					if e.TraceID != tid || e.SpanID != hex.EncodeToString(server.SpanId) {
						t.Errorf("log line trace_id/span_id = %q/%q, want %s/%x: %s", e.TraceID, e.SpanID, tid, server.SpanId, line)
					}
				}
			}
			if !found {
				t.Error("no log line for the encrypt request")
			}
		})
	}
}

// descends reports whether s is below ancestor in the trace.
func descends(s, ancestor *tracepb.Span, byID map[string]*tracepb.Span) bool {
	for i := 0; i < 64 && s != nil; i++ {
		if bytes.Equal(s.ParentSpanId, ancestor.SpanId) {
			return true
		}
		s = byID[string(s.ParentSpanId)]
	}
	return false
}
