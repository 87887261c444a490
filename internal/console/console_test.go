package console

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

func serve(h http.Handler, method, target, body string, header map[string]string) *httptest.ResponseRecorder {
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, target, nil)
	} else {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func errorCode(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var env struct {
		Errors []struct{ Code, Title, Detail, Status string }
	}
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || len(env.Errors) != 1 {
		t.Fatalf("not an error envelope: %d %s", w.Code, w.Body)
	}
	return env.Errors[0].Code
}

func TestFiles(t *testing.T) {
	h := New(Config{})
	tests := []struct {
		path, contentType string
		contains          string
	}{
		{"/console/", "text/html; charset=utf-8", `<script type="module" src="js/main.js">`},
		{"/console/index.html", "text/html; charset=utf-8", "<main"},
		{"/console/console.css", "text/css; charset=utf-8", ":root"},
		{"/console/js/main.js", "text/javascript; charset=utf-8", "import"},
		{"/console/js/providers.js", "text/javascript; charset=utf-8", "actions/migrate"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			w := serve(h, "GET", tt.path, "", nil)
			if w.Code != 200 {
				t.Fatalf("status %d", w.Code)
			}
			if got := w.Header().Get("Content-Type"); got != tt.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tt.contentType)
			}
			if got := w.Header().Get("Content-Security-Policy"); got != ContentSecurityPolicy {
				t.Errorf("Content-Security-Policy = %q", got)
			}
			for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
				"Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"} {
				if got := w.Header().Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if !strings.Contains(w.Body.String(), tt.contains) {
				t.Errorf("body lacks %q", tt.contains)
			}
			// Revalidation by ETag answers 304.
			etag := w.Header().Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			if w := serve(h, "GET", tt.path, "", map[string]string{"If-None-Match": etag}); w.Code != http.StatusNotModified {
				t.Errorf("If-None-Match: status %d, want 304", w.Code)
			}
		})
	}
}

func TestCSPIsStrict(t *testing.T) {
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
		"connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"} {
		if !strings.Contains(ContentSecurityPolicy, want) {
			t.Errorf("CSP lacks %q", want)
		}
	}
	if strings.Contains(ContentSecurityPolicy, "unsafe") || strings.Contains(ContentSecurityPolicy, "*") {
		t.Errorf("CSP allows too much: %s", ContentSecurityPolicy)
	}
}

// TestNoInlineCode keeps the assets within the CSP: no inline script or
// style, no event-handler attributes, nothing from another origin, and no
// innerHTML-style sinks in the scripts.
func TestNoInlineCode(t *testing.T) {
	checks := []struct {
		ext string
		bad *regexp.Regexp
		why string
	}{
		{".html", regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`), "inline script"},
		{".html", regexp.MustCompile(`<style`), "inline style element"},
		{".html", regexp.MustCompile(`\sstyle=`), "style attribute"},
		{".html", regexp.MustCompile(`\son[a-z]+=`), "event-handler attribute"},
		{".html", regexp.MustCompile(`(?:src|href)="(?:https?:)?//`), "another origin"},
		{".css", regexp.MustCompile(`url\((?:["']?)(?:https?:)?//`), "another origin"},
		{".css", regexp.MustCompile(`@import`), "import"},
		{".js", regexp.MustCompile(`\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function`), "HTML or code from strings"},
		{".js", regexp.MustCompile(`setAttribute\(\s*['"]style|\.style\.`), "inline style"},
		{".js", regexp.MustCompile(`localStorage|document\.cookie`), "token kept beyond the tab"},
		{".js", regexp.MustCompile(`(?:fetch\(|import\s.*from\s)\s*['"](?:https?:)?//`), "another origin"},
	}
	scriptTag := regexp.MustCompile(`<script[^>]*>`)
	n := 0
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		for _, tag := range scriptTag.FindAll(b, -1) {
			if !strings.Contains(string(tag), " src=") {
				t.Errorf("%s: script without src: %s", p, tag)
			}
		}
		for _, c := range checks {
			if strings.HasSuffix(p, c.ext) {
				if loc := c.bad.FindIndex(b); loc != nil {
					t.Errorf("%s: %s: %q", p, c.why, b[loc[0]:min(loc[1]+20, len(b))])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 8 {
		t.Fatalf("only %d assets embedded", n)
	}
}

func TestRedirectAndNotFound(t *testing.T) {
	h := New(Config{})
	w := serve(h, "GET", "/console", "", nil)
	if w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != "/console/" {
		t.Errorf("GET /console: %d Location %q, want 301 to /console/", w.Code, w.Header().Get("Location"))
	}
	for _, p := range []string{"/console/nope.js", "/console/js/", "/console/../go.mod", "/console/assets/index.html"} {
		w := serve(h, "GET", p, "", nil)
		if w.Code != 404 || errorCode(t, w) != "Encryption-04" {
			t.Errorf("GET %s: %d %s, want 404 in the envelope", p, w.Code, w.Body)
		}
		if w.Header().Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s: no CSP on the error", p)
		}
	}
	w = serve(h, "POST", "/console/index.html", "x", nil)
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST a file: %d Allow %q", w.Code, w.Header().Get("Allow"))
	}
	w = serve(h, "HEAD", "/console/", "", nil)
	if w.Code != 200 || w.Body.Len() != 0 {
		t.Errorf("HEAD /console/: %d with %d bytes", w.Code, w.Body.Len())
	}
}

const jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"

func TestSession(t *testing.T) {
	tests := []struct {
		name       string
		header     map[string]string
		status     int
		token, src string
	}{
		{"no SSO", nil, 200, "", ""},
		{"access token header", map[string]string{"X-Forwarded-Access-Token": jwt}, 200, jwt, "X-Forwarded-Access-Token"},
		{"authorization header", map[string]string{"Authorization": "Bearer " + jwt}, 200, jwt, "Authorization"},
		{"access token wins", map[string]string{"X-Forwarded-Access-Token": jwt, "Authorization": "Bearer a.b.c"}, 200, jwt, "X-Forwarded-Access-Token"},
		{"basic auth is no token", map[string]string{"Authorization": "Basic YWxpY2U6cHc="}, 200, "", ""},
		{"junk is no token", map[string]string{"X-Forwarded-Access-Token": "<script>"}, 200, "", ""},
		{"same origin", map[string]string{"X-Forwarded-Access-Token": jwt, "Sec-Fetch-Site": "same-origin"}, 200, jwt, "X-Forwarded-Access-Token"},
		{"cross site refused", map[string]string{"X-Forwarded-Access-Token": jwt, "Sec-Fetch-Site": "cross-site"}, 403, "", ""},
		{"same site refused", map[string]string{"X-Forwarded-Access-Token": jwt, "Sec-Fetch-Site": "same-site"}, 403, "", ""},
	}
	h := New(Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(h, "GET", "/console/session", "", tt.header)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", w.Header().Get("Cache-Control"))
			}
			if tt.status != 200 {
				if strings.Contains(w.Body.String(), jwt) {
					t.Errorf("a refusal echoes the token: %s", w.Body)
				}
				return
			}
			var s Session
			if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
				t.Fatal(err)
			}
			if s.Token != tt.token || s.Source != tt.src || s.DevTokens {
				t.Errorf("session = %+v, want token %q from %q, no dev tokens", s, tt.token, tt.src)
			}
		})
	}
	if w := serve(h, "POST", "/console/session", "{}", nil); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /console/session: %d", w.Code)
	}
}

func TestDevTokens(t *testing.T) {
	jsonCT := map[string]string{"Content-Type": "application/json"}
	off := New(Config{})
	if w := serve(off, "POST", "/console/dev-token", `{"tenantId":"acme"}`, jsonCT); w.Code != 404 || !strings.Contains(w.Body.String(), "--console-dev-tokens") {
		t.Errorf("dev tokens off: %d %s, want 404 naming the flag", w.Code, w.Body)
	}

	var minted []string
	on := New(Config{DevTokens: func(_ context.Context, tenant string) (string, time.Time, error) {
		minted = append(minted, tenant)
		if tenant == "broken" {
			return "", time.Time{}, errors.New("issuer key file unreadable")
		}
		return jwt, time.Now().Add(time.Hour), nil
	}})
	w := serve(on, "GET", "/console/session", "", nil)
	if !strings.Contains(w.Body.String(), `"devTokens":true`) {
		t.Errorf("session does not report dev tokens: %s", w.Body)
	}
	tests := []struct {
		name   string
		method string
		body   string
		header map[string]string
		status int
		code   string
	}{
		{"minted", "POST", `{"tenantId":"acme"}`, jsonCT, 201, ""},
		{"GET refused", "GET", "", nil, 405, "Encryption-05"},
		{"form post refused", "POST", "tenantId=acme", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "Encryption-12"},
		{"text post refused", "POST", `{"tenantId":"acme"}`, map[string]string{"Content-Type": "text/plain"}, 415, "Encryption-12"},
		{"cross-site refused", "POST", `{"tenantId":"acme"}`, map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403, "Encryption-03"},
		{"bad tenant id", "POST", `{"tenantId":"../x"}`, jsonCT, 400, "Encryption-01"},
		{"empty tenant id", "POST", `{"tenantId":""}`, jsonCT, 400, "Encryption-01"},
		{"unknown field", "POST", `{"tenantId":"acme","roles":["platform-admin"]}`, jsonCT, 400, "Encryption-01"},
		{"not JSON", "POST", `tenant`, jsonCT, 400, "Encryption-01"},
		{"mint fails", "POST", `{"tenantId":"broken"}`, jsonCT, 500, "Encryption-10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(on, tt.method, "/console/dev-token", tt.body, tt.header)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if tt.code != "" {
				if got := errorCode(t, w); got != tt.code {
					t.Errorf("code %s, want %s", got, tt.code)
				}
				if strings.Contains(w.Body.String(), "unreadable") {
					t.Errorf("the cause leaks to the client: %s", w.Body)
				}
				return
			}
			var d DevToken
			if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil || d.Token != jwt || d.ExpiresAt.IsZero() {
				t.Errorf("answer %s", w.Body)
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q", w.Header().Get("Cache-Control"))
			}
		})
	}
	if strings.Join(minted, ",") != "acme,broken" {
		t.Errorf("minted for %v, want only acme and broken", minted)
	}
}
