package client

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"

	"github.com/tenantcrypt/tenantcrypt/api"
)

// Encrypt encrypts a small payload in the service under the tenant's data
// key, bound to ectx, and returns the ciphertext's text form.
func (c *Client) Encrypt(ctx context.Context, plaintext []byte, ectx map[string]string) (string, error) {
	var out api.EncryptResponse
	err := c.do(ctx, http.MethodPost, "/api/v1/encryption/encrypt",
		api.EncryptRequest{Plaintext: base64.StdEncoding.EncodeToString(plaintext), Context: ectx}, &out)
	return out.Ciphertext, err
}

// Decrypt decrypts a ciphertext made by Encrypt with the same ectx.
func (c *Client) Decrypt(ctx context.Context, ciphertext string, ectx map[string]string) ([]byte, error) {
	var out api.DecryptResponse
	if err := c.do(ctx, http.MethodPost, "/api/v1/encryption/decrypt",
		api.DecryptRequest{Ciphertext: ciphertext, Context: ectx}, &out); err != nil {
		return nil, err
	}
	return decodeB64(out.Plaintext)
}

// Rewrap re-encrypts a ciphertext under the tenant's current data key.
func (c *Client) Rewrap(ctx context.Context, ciphertext string, ectx map[string]string) (string, error) {
	var out api.RewrapResponse
	err := c.do(ctx, http.MethodPost, "/api/v1/encryption/rewrap",
		api.RewrapRequest{Ciphertext: ciphertext, Context: ectx}, &out)
	return out.Ciphertext, err
}

// DataKey is a fresh data key for local envelope encryption. Keep Plaintext
// in memory only and clear it after use; store Handle with the data.
type DataKey struct {
	Plaintext []byte
	Handle    string
}

// GenerateDataKey asks the service for a fresh data key bound to ectx.
func (c *Client) GenerateDataKey(ctx context.Context, ectx map[string]string) (DataKey, error) {
	var out api.DataKeyResponse
	if err := c.do(ctx, http.MethodPost, "/api/v1/encryption/datakeys", api.DataKeyRequest{Context: ectx}, &out); err != nil {
		return DataKey{}, err
	}
	pt, err := decodeB64(out.Plaintext)
	return DataKey{Plaintext: pt, Handle: out.Handle}, err
}

// DecryptDataKey resolves a data key's handle back to its plaintext.
func (c *Client) DecryptDataKey(ctx context.Context, handle string, ectx map[string]string) ([]byte, error) {
	var out api.DataKeyDecryptResponse
	if err := c.do(ctx, http.MethodPost, "/api/v1/encryption/datakeys/decrypt",
		api.DataKeyDecryptRequest{Handle: handle, Context: ectx}, &out); err != nil {
		return nil, err
	}
	return decodeB64(out.Plaintext)
}

// EncryptBatch encrypts many payloads in one request; each item answers on
// its own (result or error), in order.
func (c *Client) EncryptBatch(ctx context.Context, items []api.EncryptRequest) ([]api.BatchItem[api.EncryptResponse], error) {
	var out api.BatchResponse[api.EncryptResponse]
	err := c.do(ctx, http.MethodPost, "/api/v1/encryption/encrypt", api.BatchRequest[api.EncryptRequest]{Items: items}, &out)
	return out.Items, err
}

// DecryptBatch decrypts many ciphertexts in one request.
func (c *Client) DecryptBatch(ctx context.Context, items []api.DecryptRequest) ([]api.BatchItem[api.DecryptResponse], error) {
	var out api.BatchResponse[api.DecryptResponse]
	err := c.do(ctx, http.MethodPost, "/api/v1/encryption/decrypt", api.BatchRequest[api.DecryptRequest]{Items: items}, &out)
	return out.Items, err
}

func decodeB64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("client: the service sent invalid base64: %w", err)
	}
	return b, nil
}

func itoa(n int) string { return strconv.Itoa(n) }
