package client

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"

	"github.com/tenantcrypt/tenantcrypt/api"
)

// Encrypt encrypts a small payload in the service under the tenant's data
// key, bound to ectx, and returns the ciphertext's text form. For large
// content use Envelope, which encrypts locally.
func (c *Client) Encrypt(ctx context.Context, plaintext []byte, ectx map[string]string) (string, error) {
	var out api.EncryptResponse
	err := c.do(ctx, to(api.RouteEncrypt),
		api.EncryptRequest{Plaintext: base64.StdEncoding.EncodeToString(plaintext), Context: ectx}, &out)
	return out.Ciphertext, err
}

// Decrypt decrypts a ciphertext made by Encrypt with the same ectx.
func (c *Client) Decrypt(ctx context.Context, ciphertext string, ectx map[string]string) ([]byte, error) {
	var out api.DecryptResponse
	if err := c.do(ctx, to(api.RouteDecrypt),
		api.DecryptRequest{Ciphertext: ciphertext, Context: ectx}, &out); err != nil {
		return nil, err
	}
	return decodeB64(out.Plaintext)
}

// Rewrap re-encrypts a ciphertext under the tenant's current data key.
func (c *Client) Rewrap(ctx context.Context, ciphertext string, ectx map[string]string) (string, error) {
	var out api.RewrapResponse
	err := c.do(ctx, to(api.RouteRewrap),
		api.RewrapRequest{Ciphertext: ciphertext, Context: ectx}, &out)
	return out.Ciphertext, err
}

// DataKey is a fresh data key for local envelope encryption with your own
// format. Keep Plaintext in memory only and clear it after use; store
// Handle with the data. Envelope does all of this for you.
type DataKey struct {
	Plaintext []byte
	Handle    string
}

// GenerateDataKey asks the service for a fresh data key bound to ectx.
// Each call stores a new data key at the service: cache it for many
// objects rather than asking per object (Envelope does).
func (c *Client) GenerateDataKey(ctx context.Context, ectx map[string]string) (DataKey, error) {
	key, handle, err := c.dataKeyCall(ctx, api.RouteGenerateDataKey, api.DataKeyRequest{Context: ectx})
	if err != nil {
		return DataKey{}, err
	}
	return DataKey{Plaintext: key, Handle: handle}, nil
}

// DecryptDataKey resolves a data key's handle back to its plaintext; ectx
// must be the context it was generated with.
func (c *Client) DecryptDataKey(ctx context.Context, handle string, ectx map[string]string) ([]byte, error) {
	key, _, err := c.dataKeyCall(ctx, api.RouteDecryptDataKey,
		api.DataKeyDecryptRequest{Handle: handle, Context: ectx})
	return key, err
}

// EncryptBatch encrypts many payloads in one request; each item answers on
// its own (result or error), in order.
func (c *Client) EncryptBatch(ctx context.Context, items []api.EncryptRequest) ([]api.BatchItem[api.EncryptResponse], error) {
	var out api.BatchResponse[api.EncryptResponse]
	err := c.do(ctx, to(api.RouteEncrypt), api.BatchRequest[api.EncryptRequest]{Items: items}, &out)
	return out.Items, err
}

// DecryptBatch decrypts many ciphertexts in one request.
func (c *Client) DecryptBatch(ctx context.Context, items []api.DecryptRequest) ([]api.BatchItem[api.DecryptResponse], error) {
	var out api.BatchResponse[api.DecryptResponse]
	err := c.do(ctx, to(api.RouteDecrypt), api.BatchRequest[api.DecryptRequest]{Items: items}, &out)
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
