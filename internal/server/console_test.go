package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestConsoleMount: /console and everything under /console/ go to the
// console's handler (behind the request id and the recoverer), nothing else
// does, and without a console those paths are unknown routes.
func TestConsoleMount(t *testing.T) {
	var got []string
	console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.Path)
		if r.URL.Path == "/console/panic" {
			panic("console bug")
		}
		w.WriteHeader(http.StatusTeapot)
	})
	h := New(Config{Console: console}).Handler()
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/console", http.StatusTeapot},
		{"GET", "/console/", http.StatusTeapot},
		{"GET", "/console/js/main.js", http.StatusTeapot},
		{"POST", "/console/dev-token", http.StatusTeapot},
		{"GET", "/console/panic", http.StatusInternalServerError},
		{"GET", "/consoles", http.StatusNotFound},
		{"GET", "/api/v1/console", http.StatusNotFound},
		{"GET", "/livez", http.StatusOK},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
		if rec.Code != tt.want {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, rec.Code, tt.want)
		}
		if rec.Header().Get("X-Request-Id") == "" {
			t.Errorf("%s %s: no X-Request-Id", tt.method, tt.path)
		}
	}
	if len(got) != 5 {
		t.Errorf("the console handled %v, want the five /console paths", got)
	}

	rec := httptest.NewRecorder()
	New(Config{}).Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/console/", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /console/ without a console: %d, want 404", rec.Code)
	}
}
