package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/envelope"
)

// dataPlane serves one data-plane operation in its single and batch forms:
// op runs once per item, for the token's own tenant (a token can reach no
// other tenant: the tenant never comes from the request).
func dataPlane[Req, Resp any](s *Server, w http.ResponseWriter, r *http.Request,
	op func(ctx context.Context, tenantID string, req *Req) (*Resp, error)) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	return dataPlaneBody(s, w, r, body, op)
}

// dataPlaneBody is dataPlane with the body read: the general path, which
// encrypt and decrypt take for what their fast path does not read (see
// hotpath.go).
func dataPlaneBody[Req, Resp any](s *Server, w http.ResponseWriter, r *http.Request, body []byte,
	op func(ctx context.Context, tenantID string, req *Req) (*Resp, error)) error {
	tenantID := principalFrom(r).TenantID
	if !isBatch(body) {
		var req Req
		err := decodeStrict(body, &req)
		if err == nil {
			if err := s.admit(w, r, tenantID, 1); err != nil {
				return err
			}
			resp, err := op(r.Context(), tenantID, &req)
			if err != nil {
				return err
			}
			writeJSON(w, http.StatusOK, resp)
			return nil
		}
		if !bytes.Contains(body, []byte(`"items"`)) {
			return err
		}
		// "items" was not the first key: read the body as a batch.
	}
	var batch api.BatchRequest[Req]
	if err := decodeStrict(body, &batch); err != nil {
		return err
	}
	if len(batch.Items) == 0 || len(batch.Items) > api.MaxBatchItems {
		return badRequest(fmt.Sprintf("items must hold 1 to %d requests", api.MaxBatchItems), map[string]any{"field": "items"})
	}
	if err := s.admit(w, r, tenantID, len(batch.Items)); err != nil {
		return err
	}
	out := api.BatchResponse[Resp]{Items: make([]api.BatchItem[Resp], len(batch.Items))}
	// The audit log counts each item by its outcome (see countUse).
	counter, _ := w.(itemCounter)
	for i := range batch.Items {
		resp, err := op(r.Context(), tenantID, &batch.Items[i])
		if err != nil {
			he := toHTTPError(err)
			if he.status >= 500 {
				s.log.ErrorContext(r.Context(), "batch item failed", "request_id", requestIDFrom(r.Context()), "item", i, "error", err.Error())
			}
			out.Items[i].Error = he.apiError()
			if counter != nil {
				counter.countItems(he.code, 1)
			}
			continue
		}
		out.Items[i].Result = resp
		if counter != nil {
			counter.countItems("", 1)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// itemCounter counts a request's items by outcome for the audit log (a
// *statusWriter).
type itemCounter interface {
	countItems(code api.Code, n int)
}

// admit takes n operations from the tenant's quota; a refusal refuses
// every item, and the audit log counts them all as refused.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, tenantID string, n int) error {
	err := s.cfg.Keyring.Admit(r.Context(), tenantID, n)
	if err != nil {
		if c, ok := w.(itemCounter); ok {
			c.countItems(toHTTPError(err).code, n)
		}
	}
	return err
}

// encrypt and decrypt take the fast path of hotpath.go for their usual
// bodies and the general path (dataPlaneBody) for every other.
func (s *Server) encrypt(w http.ResponseWriter, r *http.Request) error {
	return s.hot(w, r, hotEncrypt, func(body []byte) error { return dataPlaneBody(s, w, r, body, s.encryptOne) })
}

func (s *Server) encryptOne(ctx context.Context, tenantID string, req *api.EncryptRequest) (*api.EncryptResponse, error) {
	pt, err := decodeBase64("plaintext", req.Plaintext)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	ct, err := s.cfg.Keyring.Encrypt(ctx, tenantID, envelope.Context(req.Context), pt)
	if err != nil {
		return nil, err
	}
	return &api.EncryptResponse{Ciphertext: ct}, nil
}

func (s *Server) decrypt(w http.ResponseWriter, r *http.Request) error {
	return s.hot(w, r, hotDecrypt, func(body []byte) error { return dataPlaneBody(s, w, r, body, s.decryptOne) })
}

func (s *Server) decryptOne(ctx context.Context, tenantID string, req *api.DecryptRequest) (*api.DecryptResponse, error) {
	if req.Ciphertext == "" {
		return nil, badRequest(`field "ciphertext" is required`, map[string]any{"field": "ciphertext"})
	}
	pt, err := s.cfg.Keyring.Decrypt(ctx, tenantID, envelope.Context(req.Context), req.Ciphertext)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	return &api.DecryptResponse{Plaintext: base64.StdEncoding.EncodeToString(pt)}, nil
}

func (s *Server) rewrap(w http.ResponseWriter, r *http.Request) error {
	return dataPlane(s, w, r, func(ctx context.Context, tenantID string, req *api.RewrapRequest) (*api.RewrapResponse, error) {
		if req.Ciphertext == "" {
			return nil, badRequest(`field "ciphertext" is required`, map[string]any{"field": "ciphertext"})
		}
		ct, err := s.cfg.Keyring.Rewrap(ctx, tenantID, envelope.Context(req.Context), req.Ciphertext)
		if err != nil {
			return nil, err
		}
		return &api.RewrapResponse{Ciphertext: ct}, nil
	})
}

func (s *Server) dataKey(w http.ResponseWriter, r *http.Request) error {
	return dataPlane(s, w, r, func(ctx context.Context, tenantID string, req *api.DataKeyRequest) (*api.DataKeyResponse, error) {
		dk, err := s.cfg.Keyring.IssuePlaintextDataKey(ctx, tenantID, envelope.Context(req.Context))
		if err != nil {
			return nil, err
		}
		defer dk.Plaintext.Destroy()
		return &api.DataKeyResponse{Plaintext: base64.StdEncoding.EncodeToString(dk.Plaintext.Reveal()), Handle: dk.Handle}, nil
	})
}

func (s *Server) dataKeyDecrypt(w http.ResponseWriter, r *http.Request) error {
	return dataPlane(s, w, r, func(ctx context.Context, tenantID string, req *api.DataKeyDecryptRequest) (*api.DataKeyDecryptResponse, error) {
		if req.Handle == "" {
			return nil, badRequest(`field "handle" is required`, map[string]any{"field": "handle"})
		}
		key, err := s.cfg.Keyring.ResolvePlaintextDataKey(ctx, tenantID, envelope.Context(req.Context), req.Handle)
		if err != nil {
			return nil, err
		}
		defer key.Destroy()
		return &api.DataKeyDecryptResponse{Plaintext: base64.StdEncoding.EncodeToString(key.Reveal())}, nil
	})
}
