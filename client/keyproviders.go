package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/tenantcrypt/tenantcrypt/api"
)

// The key-provider API (Qlik Cloud compatible; tenant-admin): the
// tenant is always the token's own.

// KeyProviders lists the tenant's registered AWS KMS keys, oldest first;
// the default provider (the internal KMS) is not among them.
func (c *Client) KeyProviders(ctx context.Context) ([]api.KeyProvider, error) {
	var ps []api.KeyProvider
	err := c.do(ctx, to(api.RouteKeyProviders), nil, &ps)
	return ps, err
}

// AllKeyProviders lists every provider of the tenant: the default provider
// first, then the registered keys. Exactly one is Current.
func (c *Client) AllKeyProviders(ctx context.Context) ([]api.KeyProvider, error) {
	var ps []api.KeyProvider
	err := c.do(ctx, to(api.RouteAllKeyProviders), nil, &ps)
	return ps, err
}

// KeyProvider reads one provider by its fingerprint (the tenant id names
// the default provider). An unknown fingerprint matches ErrNotFound.
func (c *Client) KeyProvider(ctx context.Context, fingerprint string) (api.KeyProvider, error) {
	var p api.KeyProvider
	err := c.do(ctx, to(api.RouteKeyProvider, fingerprint), nil, &p)
	return p, err
}

// RegisterKeyProvider registers an AWS KMS key by its ARN; it is not
// current until the tenant migrates to it. KeyProvider defaults to
// "AWS-KMS". The service checks the key in AWS KMS before answering; see
// docs/api.md for the errors (e.g. Encryption-31, -33, -34, -35).
func (c *Client) RegisterKeyProvider(ctx context.Context, req api.RegisterKeyProviderRequest) (api.KeyProvider, error) {
	if req.KeyProvider == "" && req.KeyProviderOld == "" {
		req.KeyProvider = "AWS-KMS"
	}
	var p api.KeyProvider
	err := c.do(ctx, to(api.RouteRegisterKeyProvider), req, &p)
	return p, err
}

// RegisterKMIPKeyProvider registers a key in the tenant's own KMIP key
// manager: uri is kmip://HOST:PORT/UNIQUE-IDENTIFIER, settings the
// server's CA, the client certificate and key the customer issued for the
// tenant, and the cluster's other servers. The client key is stored
// wrapped and never returned. The service checks the key (an Active
// AES-256 key allowing Encrypt and Decrypt) before answering; see
// docs/kmip.md.
func (c *Client) RegisterKMIPKeyProvider(ctx context.Context, uri, name, description string, settings api.KMIPSettings) (api.KeyProvider, error) {
	raw, err := json.Marshal(settings)
	if err != nil {
		return api.KeyProvider{}, err
	}
	return c.RegisterKeyProvider(ctx, api.RegisterKeyProviderRequest{
		ARN: uri, Name: name, Description: description, KeyProvider: "KMIP", KMIP: raw})
}

// RenewKMIPCredentials replaces a KMIP provider's settings: each non-empty
// field of settings ("/kmip/serverCA", "/kmip/clientCertificate",
// "/kmip/clientKey", and "/kmip/endpoints" when not nil) in one patch,
// which the service checks with a probe of the key before it saves it.
func (c *Client) RenewKMIPCredentials(ctx context.Context, fingerprint string, settings api.KMIPSettings) error {
	var ops []api.PatchOperation
	for _, f := range []struct{ path, value string }{{"/kmip/serverCA", settings.ServerCA},
		{"/kmip/clientCertificate", settings.ClientCertificate}, {"/kmip/clientKey", settings.ClientKey}} {
		if f.value != "" {
			ops = append(ops, api.PatchOperation{Op: "replace", Path: f.path, Value: f.value})
		}
	}
	if settings.Endpoints != nil {
		ops = append(ops, api.PatchOperation{Op: "replace", Path: "/kmip/endpoints", Value: settings.Endpoints})
	}
	if len(ops) == 0 {
		return errors.New("tenantcrypt: RenewKMIPCredentials: nothing to replace")
	}
	return c.PatchKeyProvider(ctx, fingerprint, ops)
}

// PatchKeyProvider changes a provider's name or description: ops are
// "replace" of "/name" or "/description" (see RenameKeyProvider). All
// operations are checked before any applies.
func (c *Client) PatchKeyProvider(ctx context.Context, fingerprint string, ops []api.PatchOperation) error {
	return c.do(ctx, to(api.RoutePatchKeyProvider, fingerprint), ops, nil)
}

// RenameKeyProvider sets a provider's name and, when description is not
// nil, its description.
func (c *Client) RenameKeyProvider(ctx context.Context, fingerprint, name string, description *string) error {
	ops := []api.PatchOperation{{Op: "replace", Path: "/name", Value: name}}
	if description != nil {
		ops = append(ops, api.PatchOperation{Op: "replace", Path: "/description", Value: *description})
	}
	return c.PatchKeyProvider(ctx, fingerprint, ops)
}

// DeleteKeyProvider removes a registered key that is not current and wraps
// none of the tenant's data keys (Encryption-36 otherwise). The key itself
// is untouched in AWS KMS. It is not retried after a 503: see RetryPolicy.
func (c *Client) DeleteKeyProvider(ctx context.Context, fingerprint string) error {
	return c.do(ctx, to(api.RouteDeleteKeyProvider, fingerprint), nil, nil)
}

// TestKeyProvider checks the key again in its region and its DR region and
// returns the provider with fresh DRCompliant and ComplianceError; what is
// wrong with the key is reported there, not as an error.
func (c *Client) TestKeyProvider(ctx context.Context, fingerprint string) (api.KeyProvider, error) {
	var p api.KeyProvider
	err := c.do(ctx, to(api.RouteTestKeyProvider, fingerprint), nil, &p)
	return p, err
}

// MigrateToKeyProvider makes a registered key the tenant's provider and
// starts moving its data keys to it in the background; follow it with
// MigrationDetails. Ciphertexts, handles and streams never change.
func (c *Client) MigrateToKeyProvider(ctx context.Context, fingerprint string) (api.Migration, error) {
	var m api.Migration
	err := c.do(ctx, to(api.RouteMigrateToKeyProvider, fingerprint), nil, &m)
	return m, err
}

// ResetToDefaultProvider moves the tenant back to the internal KMS. It
// returns the new migration and true, or false (and a zero Migration) when
// the tenant is on the default provider already.
func (c *Client) ResetToDefaultProvider(ctx context.Context) (api.Migration, bool, error) {
	data, status, err := c.send(ctx, to(api.RouteResetToDefaultProvider), nil)
	if err != nil {
		return api.Migration{}, false, err
	}
	if status != http.StatusResetContent {
		return api.Migration{}, false, nil
	}
	var m api.Migration
	if err := jsonUnmarshal(data, &m); err != nil {
		// Fetch-based clients drop a 205's body; a proxy may too.
		// The details have it.
		if m, err = c.MigrationDetails(ctx); err != nil {
			return api.Migration{}, true, err
		}
	}
	return m, true, nil
}

// MigrationDetails reads the running migration, or the last one. A tenant
// that never migrated matches ErrNotFound (Encryption-39).
func (c *Client) MigrationDetails(ctx context.Context) (api.Migration, error) {
	var m api.Migration
	err := c.do(ctx, to(api.RouteMigrationDetails), nil, &m)
	return m, err
}
