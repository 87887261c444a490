package client

import (
	"context"

	"github.com/tenantcrypt/tenantcrypt/api"
)

// InternalKMS describes the internal KMS's root keys and the answering
// server's background rotation job (platform-admin).
func (c *Client) InternalKMS(ctx context.Context) (api.InternalKMS, error) {
	var d api.InternalKMS
	err := c.do(ctx, to(api.RouteInternalKMS), nil, &d)
	return d, err
}

// RotateRootKey adds a root key version to the answering server's key file,
// loads it and starts resealing every tenant KEK under it in the background
// (platform-admin). Root keys from the environment are refused (409).
func (c *Client) RotateRootKey(ctx context.Context) (api.InternalKMS, error) {
	var d api.InternalKMS
	err := c.do(ctx, to(api.RouteRotateRootKey), nil, &d)
	return d, err
}

// ReloadRootKeys makes the answering server load its root key file again
// and reseal, in the background, the KEKs not under its current version
// (platform-admin).
func (c *Client) ReloadRootKeys(ctx context.Context) (api.InternalKMS, error) {
	var d api.InternalKMS
	err := c.do(ctx, to(api.RouteReloadRootKeys), nil, &d)
	return d, err
}

// RotateTenantKey adds a version of the tenant's internal KMS key and starts
// moving its data keys under it in the background (platform-admin).
func (c *Client) RotateTenantKey(ctx context.Context, tenantID string) (api.TenantKeyRotation, error) {
	var r api.TenantKeyRotation
	err := c.do(ctx, to(api.RouteRotateTenantKey, tenantID), nil, &r)
	return r, err
}
