package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
)

// lockedBuffer is a bytes.Buffer that a logger may write from any goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// TestRequestLogElapsedMilliseconds: the request log gives its duration with
// a unit, as a number of milliseconds (slog's JSON handler would write a
// time.Duration as bare nanoseconds).
func TestRequestLogElapsedMilliseconds(t *testing.T) {
	t.Parallel()
	var buf lockedBuffer
	s := New(Config{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/tenants", nil)) // no token: 401, logged at info
	if rec.Code != 401 {
		t.Fatalf("GET /api/v1/tenants without a token: %d, want 401", rec.Code)
	}
	buf.mu.Lock()
	line := buf.b.Bytes()
	buf.mu.Unlock()
	var rec1 map[string]any
	if err := json.Unmarshal(line, &rec1); err != nil {
		t.Fatalf("log line %q: %v", line, err)
	}
	ms, ok := rec1["elapsed_ms"].(float64)
	if !ok || ms < 0 {
		t.Errorf("elapsed_ms = %#v, want a non-negative number of milliseconds; log line %s", rec1["elapsed_ms"], line)
	}
	if _, ok := rec1["elapsed"]; ok {
		t.Errorf("the log line still has a unitless elapsed: %s", line)
	}
	if rec1["status"] != float64(401) || rec1["route"] != "GET /api/v1/tenants" {
		t.Errorf("log line %s: want status 401 and route GET /api/v1/tenants", line)
	}
}
