// Package fakeservice is a small in-memory stand-in for tenantcrypt's data
// plane, for the client package's unit tests and examples: data keys bound
// to a tenant and an encryption context, service-side encrypt and decrypt,
// error injection and request counting, over TLS.
//
// It is not tenantcrypt: tokens are not JWTs ("fake:<tenant>" names the
// tenant), nothing is stored, and only the data plane exists. Tests that
// need the real service run it (cmd/tenantcrypt's end-to-end tests).
package fakeservice

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/envelope"
)

// Server is a running fake.
type Server struct {
	srv *httptest.Server

	mu       sync.Mutex
	keys     map[envelope.KeyID]dataKey
	tenants  map[string]*tenant
	faults   []Fault
	requests map[string]int
	routes   map[string]http.HandlerFunc
}

type dataKey struct {
	tenant string
	key    []byte
	digest [32]byte
}

type tenant struct {
	id      envelope.KeyID
	key     []byte
	revoked *api.Error // every data-plane request answers it while set
	status  int
}

// Fault is an error answer injected into the next Times requests whose
// path is Path (any path when empty).
type Fault struct {
	Path       string
	Times      int
	Status     int
	Code       api.Code
	RetryAfter string
}

// New starts a fake on a loopback port with a self-signed TLS certificate.
func New() *Server {
	s := &Server{keys: map[envelope.KeyID]dataKey{}, tenants: map[string]*tenant{}, requests: map[string]int{}, routes: map[string]http.HandlerFunc{}}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the fake's base URL.
func (s *Server) URL() string { return s.srv.URL }

// TLSConfig trusts the fake's certificate.
func (s *Server) TLSConfig() *tls.Config {
	return s.srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
}

// Close stops the fake.
func (s *Server) Close() { s.srv.Close() }

// Token is a service token of the tenant.
func Token(tenantID string) string { return "fake:" + tenantID }

// Inject adds a fault.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// Revoke makes every data-plane request of the tenant answer status and
// code (e.g. 403 Encryption-20) until Restore.
func (s *Server) Revoke(tenantID string, status int, code api.Code) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenant(tenantID)
	t.revoked, t.status = &api.Error{Code: code, Title: "revoked by the fake", Status: strconv.Itoa(status)}, status
}

// Restore undoes Revoke.
func (s *Server) Restore(tenantID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tenant(tenantID).revoked = nil
}

// Route answers method and path (e.g. "GET /api/v1/encryption/keyproviders")
// with h instead of the fake's own handling.
func (s *Server) Route(pattern string, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes[pattern] = h
}

// Requests counts the requests to path so far (all requests when empty).
func (s *Server) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if path == "" {
		n := 0
		for _, c := range s.requests {
			n += c
		}
		return n
	}
	return s.requests[path]
}

// DataKeys is how many data keys the fake has issued.
func (s *Server) DataKeys() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}

func (s *Server) tenant(id string) *tenant {
	t, ok := s.tenants[id]
	if !ok {
		t = &tenant{key: make([]byte, envelope.KeySize)}
		rand.Read(t.key)
		rand.Read(t.id[:])
		s.tenants[id] = t
	}
	return t
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code api.Code, title, retryAfter string) {
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	writeJSON(w, status, api.ErrorResponse{Errors: []api.Error{{Code: code, Title: title, Status: strconv.Itoa(status)}}})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests[r.URL.Path]++
	for i := range s.faults {
		f := &s.faults[i]
		if f.Times > 0 && (f.Path == "" || f.Path == r.URL.Path) {
			f.Times--
			fault := *f
			s.mu.Unlock()
			io.Copy(io.Discard, r.Body)
			writeError(w, fault.Status, fault.Code, "injected by the fake", fault.RetryAfter)
			return
		}
	}
	h := s.routes[r.Method+" "+r.URL.Path]
	s.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	tenantID, ok := strings.CutPrefix(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), "fake:")
	if !ok || tenantID == "" {
		writeError(w, http.StatusUnauthorized, api.CodeUnauthenticated, "Unauthorized", "")
		return
	}
	if r.Method != http.MethodPost {
		writeError(w, http.StatusNotFound, api.CodeNotFound, "Not found", "")
		return
	}
	s.mu.Lock()
	t := s.tenant(tenantID)
	revoked, status := t.revoked, t.status
	s.mu.Unlock()
	if revoked != nil {
		writeJSON(w, status, api.ErrorResponse{Errors: []api.Error{*revoked}})
		return
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	var resp any
	var aerr *api.Error
	switch r.URL.Path {
	case api.RouteGenerateDataKey.Path:
		var req api.DataKeyRequest
		if dec.Decode(&req) != nil {
			aerr = badRequest()
			break
		}
		resp, aerr = s.newDataKey(tenantID, req)
	case api.RouteDecryptDataKey.Path:
		var req api.DataKeyDecryptRequest
		if dec.Decode(&req) != nil {
			aerr = badRequest()
			break
		}
		resp, aerr = s.resolve(tenantID, req)
	case api.RouteEncrypt.Path:
		var req api.EncryptRequest
		if dec.Decode(&req) != nil {
			aerr = badRequest()
			break
		}
		resp, aerr = s.encrypt(tenantID, req)
	case api.RouteDecrypt.Path:
		var req api.DecryptRequest
		if dec.Decode(&req) != nil {
			aerr = badRequest()
			break
		}
		resp, aerr = s.decrypt(tenantID, req)
	default:
		writeError(w, http.StatusNotFound, api.CodeNotFound, "Not found", "")
		return
	}
	if aerr != nil {
		st, _ := strconv.Atoi(aerr.Status)
		writeJSON(w, st, api.ErrorResponse{Errors: []api.Error{*aerr}})
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func badRequest() *api.Error {
	return &api.Error{Code: api.CodeBadRequest, Title: "Bad request", Status: "400"}
}

func decryptionFailed() *api.Error {
	return &api.Error{Code: api.CodeDecryptionFailed, Title: "Decryption failed", Status: "400"}
}

func (s *Server) newDataKey(tenantID string, req api.DataKeyRequest) (any, *api.Error) {
	digest, err := envelope.Context(req.Context).Digest()
	if err != nil {
		return nil, badRequest()
	}
	id, _ := envelope.NewKeyID()
	key := make([]byte, envelope.KeySize)
	rand.Read(key)
	bin, _ := envelope.Handle{KeyID: id}.MarshalBinary()
	handle, err := envelope.FormatText(envelope.InternalPrefix(tenantID), bin)
	if err != nil {
		return nil, badRequest()
	}
	s.mu.Lock()
	s.keys[id] = dataKey{tenant: tenantID, key: key, digest: digest}
	s.mu.Unlock()
	return api.DataKeyResponse{Plaintext: base64.StdEncoding.EncodeToString(key), Handle: handle}, nil
}

func (s *Server) resolve(tenantID string, req api.DataKeyDecryptRequest) (any, *api.Error) {
	digest, err := envelope.Context(req.Context).Digest()
	if err != nil {
		return nil, badRequest()
	}
	_, bin, err := envelope.ParseText(req.Handle)
	if err != nil {
		return nil, decryptionFailed()
	}
	h, err := envelope.ParseHandle(bin)
	if err != nil {
		return nil, decryptionFailed()
	}
	s.mu.Lock()
	k, ok := s.keys[h.KeyID]
	s.mu.Unlock()
	if !ok || k.tenant != tenantID || k.digest != digest {
		return nil, decryptionFailed()
	}
	return api.DataKeyDecryptResponse{Plaintext: base64.StdEncoding.EncodeToString(k.key)}, nil
}

func (s *Server) encrypt(tenantID string, req api.EncryptRequest) (any, *api.Error) {
	pt, err := base64.StdEncoding.DecodeString(req.Plaintext)
	if err != nil {
		return nil, badRequest()
	}
	s.mu.Lock()
	t := s.tenant(tenantID)
	s.mu.Unlock()
	aead, _ := envelope.NewAEAD(t.key)
	c, err := envelope.Seal(aead, tenantID, t.id, envelope.Context(req.Context), pt)
	if err != nil {
		return nil, badRequest()
	}
	bin, _ := c.MarshalBinary()
	text, _ := envelope.FormatText(envelope.InternalPrefix(tenantID), bin)
	return api.EncryptResponse{Ciphertext: text}, nil
}

func (s *Server) decrypt(tenantID string, req api.DecryptRequest) (any, *api.Error) {
	_, bin, err := envelope.ParseText(req.Ciphertext)
	if err != nil {
		return nil, decryptionFailed()
	}
	c, err := envelope.ParseCiphertext(bin)
	if err != nil {
		return nil, decryptionFailed()
	}
	s.mu.Lock()
	t := s.tenant(tenantID)
	s.mu.Unlock()
	aead, _ := envelope.NewAEAD(t.key)
	pt, err := envelope.Open(aead, tenantID, c, envelope.Context(req.Context))
	if err != nil {
		return nil, decryptionFailed()
	}
	return api.DecryptResponse{Plaintext: base64.StdEncoding.EncodeToString(pt)}, nil
}
