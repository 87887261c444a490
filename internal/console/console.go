// Package console serves tenantcrypt's admin console: a web page from
// which a tenant admin sees how the tenant is encrypted, brings a customer
// managed key, tests it, migrates to it and back, and reads and verifies
// the audit log.
//
// The page is plain HTML, CSS and ES modules embedded in the binary (no
// build step, no framework, nothing from another origin), served under a
// strict Content-Security-Policy. It is only a client: every action goes
// through the public API with the signed-in user's own token and the same
// role checks as any other caller. This package adds two small endpoints
// that the page needs to get a token (see docs/console.md):
//
//   - GET /console/session hands the page the token that the platform's
//     single sign-on proxy put in the request (X-Forwarded-Access-Token, or
//     Authorization: Bearer), and says whether development tokens are on;
//   - POST /console/dev-token mints a tenant-admin token from the built-in
//     issuer, only when the server was started for development with
//     --console-dev-tokens.
package console

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
)

// Prefix is the path under which the console is served.
const Prefix = "/console/"

// ContentSecurityPolicy is sent with every answer of the console: only the
// console's own files run or style the page (no inline script or style, no
// other origin), it talks only to its own server, and it cannot be framed.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// SSOHeaders are the request headers, in order of preference, from which
// GET /console/session takes the signed-in user's token: the platform's
// SSO proxy sets one of them (oauth2-proxy's --pass-access-token sets the
// first, --pass-authorization-header the second).
var SSOHeaders = []string{"X-Forwarded-Access-Token", "Authorization"}

// maxTokenSize bounds a token taken from a header (the API's own limit is
// the same order: a JWT of a few claims is well under 2 KiB).
const maxTokenSize = 8 << 10

//go:embed assets
var assets embed.FS

// MintFunc mints a tenant-admin token of the built-in issuer for a tenant,
// returning it and its expiry. It is given only in development mode.
type MintFunc func(ctx context.Context, tenantID string) (token string, expires time.Time, err error)

// Config configures the console.
type Config struct {
	// DevTokens, when set, enables the development sign-in: a button that
	// mints a tenant-admin token for any tenant id, for anyone who can
	// reach the server. Never set it in production.
	DevTokens MintFunc
	// Logger records development tokens minted (never the token).
	Logger *slog.Logger
}

// Handler serves the console under Prefix. Use New.
type Handler struct {
	cfg   Config
	files map[string]file
}

// file is an embedded asset with what its answer needs.
type file struct {
	body        []byte
	contentType string
	etag        string
}

// New returns the console's handler.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{cfg: cfg, files: map[string]file{}}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) { // not left to the system's MIME table
		case ".js":
			ct = "text/javascript; charset=utf-8"
		case ".css":
			ct = "text/css; charset=utf-8"
		case ".html":
			ct = "text/html; charset=utf-8"
		case ".svg":
			ct = "image/svg+xml"
		}
		h.files[strings.TrimPrefix(p, "assets/")] = file{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("console: reading the embedded assets: " + err.Error()) // the binary is broken
	}
	return h
}

// ServeHTTP serves the console's files and its two endpoints.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	if r.URL.Path == strings.TrimSuffix(Prefix, "/") {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w, "GET, HEAD")
			return
		}
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok {
		writeError(w, http.StatusNotFound, api.CodeNotFound, "Not found", "no such page of the console")
		return
	}
	switch name {
	case "session":
		h.session(w, r)
		return
	case "dev-token":
		h.devToken(w, r)
		return
	case "":
		name = "index.html"
	}
	f, ok := h.files[name]
	if !ok || strings.Contains(name, "..") {
		writeError(w, http.StatusNotFound, api.CodeNotFound, "Not found", "no such page of the console")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	// Revalidated on every load (cheap, by ETag), so that an upgrade of
	// the server is never mixed with cached files of the previous one.
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", f.etag)
	w.Header().Set("Content-Type", f.contentType)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
}

// securityHeaders are sent with every answer of the console.
func securityHeaders(hd http.Header) {
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
}

// Session is the answer of GET /console/session.
type Session struct {
	// Token is the signed-in user's token as the SSO proxy passed it;
	// absent when the request carried none.
	Token string `json:"token,omitempty"`
	// Source names the header the token came from.
	Source string `json:"source,omitempty"`
	// DevTokens reports whether POST /console/dev-token mints tokens.
	DevTokens bool `json:"devTokens"`
}

// session echoes the token that the SSO proxy set on this request, so
// that the page (which cannot read request headers) can use it as its
// bearer token. Only a same-origin fetch may read it.
func (h *Handler) session(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, "GET")
		return
	}
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, api.CodeForbidden, "Forbidden", "the console's session is only readable by the console itself")
		return
	}
	s := Session{DevTokens: h.cfg.DevTokens != nil}
	s.Token, s.Source = ssoToken(r)
	// The answer varies with headers a shared cache does not key on.
	w.Header().Set("Vary", "Authorization, X-Forwarded-Access-Token, Cookie")
	writeJSON(w, http.StatusOK, s)
}

// ssoToken returns the token of the first SSO header present, and the
// header's name; a value that is not a plausible token is ignored.
func ssoToken(r *http.Request) (token, source string) {
	for _, name := range SSOHeaders {
		values := r.Header.Values(name)
		if len(values) != 1 {
			continue // absent, or ambiguous
		}
		v := strings.TrimSpace(values[0])
		if name == "Authorization" {
			scheme, rest, ok := strings.Cut(v, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") {
				continue
			}
			v = strings.TrimSpace(rest)
		}
		if plausibleJWT(v) {
			return v, name
		}
	}
	return "", ""
}

// plausibleJWT reports whether s has the shape of a compact JWS: three
// base64url parts. The API verifies it; this only keeps junk out of the page.
func plausibleJWT(s string) bool {
	if len(s) == 0 || len(s) > maxTokenSize || strings.Count(s, ".") != 2 {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}

// DevToken is the answer of POST /console/dev-token.
type DevToken struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// devTokenRequest is the body of POST /console/dev-token.
type devTokenRequest struct {
	TenantID string `json:"tenantId"`
}

// devToken mints a tenant-admin token in development mode. It needs a JSON
// body, so that a cross-origin page cannot send it without a CORS
// preflight, which is never granted.
func (h *Handler) devToken(w http.ResponseWriter, r *http.Request) {
	if h.cfg.DevTokens == nil {
		writeError(w, http.StatusNotFound, api.CodeNotFound, "Not found",
			"development tokens are off; start the server with --console-dev-tokens (development only) or sign in with a token")
		return
	}
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, api.CodeForbidden, "Forbidden", "development tokens are only minted for the console itself")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, api.CodeUnsupportedMediaType, "Unsupported media type", "send the body as application/json")
		return
	}
	var req devTokenRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "Bad request", `send {"tenantId": "<tenant id>"}`)
		return
	}
	if err := keyring.ValidateTenantID(req.TenantID); err != nil {
		var ie *fault.InputError
		detail := "not a tenant id"
		if errors.As(err, &ie) {
			detail = "the tenant id " + ie.Reason
		}
		writeErrorMeta(w, http.StatusBadRequest, api.CodeBadRequest, "Bad request", detail, map[string]any{"field": "tenantId"})
		return
	}
	token, expires, err := h.cfg.DevTokens(r.Context(), req.TenantID)
	if err != nil {
		h.cfg.Logger.ErrorContext(r.Context(), "console: minting a development token failed", "tenant", req.TenantID, "error", err.Error())
		writeError(w, http.StatusInternalServerError, api.CodeInternal, "Internal error", "the token could not be minted; see the server log")
		return
	}
	h.cfg.Logger.WarnContext(r.Context(), "console: development tenant-admin token minted (--console-dev-tokens)",
		"tenant", req.TenantID, "remote", r.RemoteAddr, "expires", expires.UTC().Format(time.RFC3339))
	writeJSON(w, http.StatusCreated, DevToken{Token: token, ExpiresAt: expires.UTC()})
}

// sameOrigin refuses requests that a browser marks as sent by another site
// (Fetch Metadata); requests without the header (curl, older browsers) pass,
// and the same-origin policy still keeps their answers from other pages.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, api.CodeMethodNotAllowed, "Method not allowed", "see the Allow header for the methods of this page")
}

func writeError(w http.ResponseWriter, status int, code api.Code, title, detail string) {
	writeErrorMeta(w, status, code, title, detail, nil)
}

// writeErrorMeta answers in the API's error envelope.
func writeErrorMeta(w http.ResponseWriter, status int, code api.Code, title, detail string, meta map[string]any) {
	writeJSON(w, status, api.ErrorResponse{Errors: []api.Error{{Code: code, Title: title, Detail: detail, Status: strconv.Itoa(status), Meta: meta}}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"errors":[{"code":"`+string(api.CodeInternal)+`","title":"Internal error"}]}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
