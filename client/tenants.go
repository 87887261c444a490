package client

import (
	"context"
	"net/url"

	"github.com/tenantcrypt/tenantcrypt/api"
)

// CreateTenant creates a tenant (platform-admin).
func (c *Client) CreateTenant(ctx context.Context, req api.CreateTenantRequest) (api.Tenant, error) {
	var t api.Tenant
	err := c.do(ctx, to(api.RouteCreateTenant), req, &t)
	return t, err
}

// Tenant reads a tenant (platform-admin).
func (c *Client) Tenant(ctx context.Context, id string) (api.Tenant, error) {
	var t api.Tenant
	err := c.do(ctx, to(api.RouteTenant, id), nil, &t)
	return t, err
}

// ListTenants lists up to limit tenants after the given id (platform-admin).
func (c *Client) ListTenants(ctx context.Context, after string, limit int) (api.TenantList, error) {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", itoa(limit))
	}
	var l api.TenantList
	err := c.do(ctx, to(api.RouteListTenants).withQuery(q), nil, &l)
	return l, err
}

// UpdateTenant changes a tenant's name, edition or hipaa flag
// (platform-admin).
func (c *Client) UpdateTenant(ctx context.Context, id string, req api.UpdateTenantRequest) (api.Tenant, error) {
	var t api.Tenant
	err := c.do(ctx, to(api.RouteUpdateTenant, id), req, &t)
	return t, err
}

// DeleteTenant deletes a tenant and destroys its keys, irreversibly
// (platform-admin).
func (c *Client) DeleteTenant(ctx context.Context, id string) error {
	return c.do(ctx, to(api.RouteDeleteTenant, id), nil, nil)
}

// EncryptionStatus reports the caller's tenant's encryption status
// (tenant-admin or service). A state other than active (key-unavailable,
// locked, destroyed) purges the data keys the Client has cached, as an
// error saying so would.
func (c *Client) EncryptionStatus(ctx context.Context) (api.EncryptionStatus, error) {
	var s api.EncryptionStatus
	err := c.do(ctx, to(api.RouteEncryptionStatus), nil, &s)
	if err == nil && s.State != "" && s.State != "active" {
		c.keys.purge()
	}
	return s, err
}
