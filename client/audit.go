package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
)

// AuditQuery selects audit events. Zero fields select everything.
type AuditQuery struct {
	// TenantID names the chain a platform admin reads (a tenant id, or
	// "_platform"); a tenant admin reads its own tenant's and leaves it
	// empty.
	TenantID  string
	From, To  time.Time
	Action    string // exact, or a prefix ending in "."
	Principal string
	Result    string // "success", "failure" or "denied"
	Cursor    string // a previous page's Next
	Limit     int    // 1 to 1000; default 100
}

func (q AuditQuery) values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("tenantId", q.TenantID)
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.RFC3339))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.RFC3339))
	}
	set("action", q.Action)
	set("principal", q.Principal)
	set("result", q.Result)
	set("cursor", q.Cursor)
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

func tenantQuery(tenantID string) url.Values {
	if tenantID == "" {
		return nil
	}
	return url.Values{"tenantId": {tenantID}}
}

// AuditEvents returns a page of audit events (tenant-admin, platform-admin).
func (c *Client) AuditEvents(ctx context.Context, q AuditQuery) (api.AuditPage, error) {
	var p api.AuditPage
	err := c.do(ctx, to(api.RouteAuditEvents).withQuery(q.values()), nil, &p)
	return p, err
}

// VerifyAudit asks the service to verify a chain as stored.
func (c *Client) VerifyAudit(ctx context.Context, tenantID string) (api.AuditVerification, error) {
	var v api.AuditVerification
	err := c.do(ctx, to(api.RouteVerifyAudit).withQuery(tenantQuery(tenantID)), nil, &v)
	return v, err
}

// AuditPublicKeys returns the keys that sign audit checkpoints.
func (c *Client) AuditPublicKeys(ctx context.Context) (api.AuditPublicKeys, error) {
	var k api.AuditPublicKeys
	err := c.do(ctx, to(api.RouteAuditPublicKeys), nil, &k)
	return k, err
}

// ExportAudit writes a chain's whole log, as JSON Lines, to w.
func (c *Client) ExportAudit(ctx context.Context, tenantID string, w io.Writer) error {
	t := to(api.RouteExportAudit).withQuery(tenantQuery(tenantID))
	req, err := http.NewRequestWithContext(ctx, t.route.Method, c.base.String()+t.path, nil)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	req.Header.Set("Accept", "application/x-ndjson")
	if c.token != nil {
		tok, err := c.token(ctx)
		if err != nil {
			return fmt.Errorf("client: getting a token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("client: GET %s: %w", t.path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return decodeError(resp, data)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("client: reading the export: %w", err)
	}
	return nil
}
