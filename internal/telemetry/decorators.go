package telemetry

import (
	"context"
	"errors"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// Attribute keys of tenantcrypt's own spans.
const (
	AttrTenant      = attribute.Key("tenantcrypt.tenant.id")
	AttrKMSProvider = attribute.Key("tenantcrypt.kms.provider")
	AttrKMSOutcome  = attribute.Key("tenantcrypt.kms.outcome")
)

// KMSProvider returns p with a client span around each call: the
// provider's ref ("internal" or "cmk:<fingerprint>"), the tenant, the
// operation and its outcome (kms.Outcome), never the key, the wrapped
// blob or the encryption context. With tracing off it returns p.
func (t *Tracing) KMSProvider(p kms.Provider) kms.Provider {
	if t == nil {
		return p
	}
	return tracedProvider{Provider: p, tracer: t.tracer}
}

type tracedProvider struct {
	kms.Provider
	tracer trace.Tracer
}

func (p tracedProvider) start(ctx context.Context, op string, b kms.Binding) (context.Context, trace.Span) {
	attrs := []attribute.KeyValue{AttrKMSProvider.String(p.Ref().String()), attribute.String("rpc.method", op)}
	if tenant := b[kms.BindingTenant]; tenant != "" {
		attrs = append(attrs, AttrTenant.String(tenant))
	}
	return p.tracer.Start(ctx, "kms."+op, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

func endKMS(span trace.Span, err error) {
	outcome := kms.Outcome(err)
	span.SetAttributes(AttrKMSOutcome.String(outcome))
	if err != nil {
		span.SetStatus(codes.Error, outcome) // the outcome, not the error's text
	}
	span.End()
}

func (p tracedProvider) GenerateDataKey(ctx context.Context, b kms.Binding) (*secret.Bytes, kms.Wrapped, error) {
	ctx, span := p.start(ctx, "GenerateDataKey", b)
	k, w, err := p.Provider.GenerateDataKey(ctx, b)
	endKMS(span, err)
	return k, w, err
}

func (p tracedProvider) Wrap(ctx context.Context, plaintext *secret.Bytes, b kms.Binding) (kms.Wrapped, error) {
	ctx, span := p.start(ctx, "Wrap", b)
	w, err := p.Provider.Wrap(ctx, plaintext, b)
	endKMS(span, err)
	return w, err
}

func (p tracedProvider) Unwrap(ctx context.Context, w kms.Wrapped, b kms.Binding) (*secret.Bytes, error) {
	ctx, span := p.start(ctx, "Unwrap", b)
	k, err := p.Provider.Unwrap(ctx, w, b)
	endKMS(span, err)
	return k, err
}

func (p tracedProvider) Describe(ctx context.Context) (kms.KeyInfo, error) {
	ctx, span := p.start(ctx, "Describe", nil)
	info, err := p.Provider.Describe(ctx)
	endKMS(span, err)
	return info, err
}

// AWSMiddleware returns an AWS SDK stack option that makes a client span
// of every AWS API call (retries included): service, operation, region,
// the AWS request id and the error code, never the request or the answer.
// Give it to the awskms client. With tracing off it returns nil.
func (t *Tracing) AWSMiddleware() func(*middleware.Stack) error {
	if t == nil {
		return nil
	}
	return func(stack *middleware.Stack) error {
		return stack.Initialize.Add(awsSpans{t.tracer}, middleware.After)
	}
}

type awsSpans struct{ tracer trace.Tracer }

func (awsSpans) ID() string { return "tenantcrypt/telemetry.Spans" }

func (m awsSpans) HandleInitialize(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (
	middleware.InitializeOutput, middleware.Metadata, error,
) {
	service, op := awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx)
	ctx, span := m.tracer.Start(ctx, service+"."+op, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("rpc.system", "aws-api"), attribute.String("rpc.service", service),
		attribute.String("rpc.method", op), attribute.String("cloud.region", awsmiddleware.GetRegion(ctx))))
	defer span.End()
	out, md, err := next.HandleInitialize(ctx, in)
	if id, ok := awsmiddleware.GetRequestIDMetadata(md); ok && id != "" {
		span.SetAttributes(attribute.String("aws.request_id", id))
	}
	if err != nil {
		code := "error"
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) {
			code = apiErr.ErrorCode()
		} else if errors.Is(err, context.DeadlineExceeded) {
			code = "timeout"
		}
		span.SetAttributes(attribute.String("error.type", code))
		span.SetStatus(codes.Error, code)
	}
	return out, md, err
}

// KeyringStore returns st with an internal span around each call of the
// keyring's store interface: the method and the tenant, never a key, a
// wrapped blob or a record's contents. With tracing off it returns st.
func (t *Tracing) KeyringStore(st keyring.Store) keyring.Store {
	if t == nil {
		return st
	}
	return tracedStore{Store: st, tracer: t.tracer}
}

// tracedStore embeds the store, so that a method added to keyring.Store
// later still compiles (untraced until it is added here).
type tracedStore struct {
	keyring.Store
	tracer trace.Tracer
}

func (s tracedStore) span(ctx context.Context, op, tenant string) (context.Context, func(error)) {
	ctx, span := s.tracer.Start(ctx, "store."+op, trace.WithAttributes(
		attribute.String("db.operation.name", op), AttrTenant.String(tenant)))
	return ctx, func(err error) {
		switch {
		case errors.Is(err, fault.ErrNotFound):
			// An answer, not a failure (e.g. no data key yet).
			span.SetAttributes(attribute.Bool("tenantcrypt.store.found", false))
		case err != nil:
			span.SetAttributes(attribute.String("error.type", "error"))
			span.SetStatus(codes.Error, "error")
		}
		span.End()
	}
}

func (s tracedStore) CreateTenant(ctx context.Context, t keyring.Tenant) (err error) {
	ctx, end := s.span(ctx, "CreateTenant", t.ID)
	defer func() { end(err) }()
	return s.Store.CreateTenant(ctx, t)
}

func (s tracedStore) Tenant(ctx context.Context, id string) (_ keyring.Tenant, err error) {
	ctx, end := s.span(ctx, "Tenant", id)
	defer func() { end(err) }()
	return s.Store.Tenant(ctx, id)
}

func (s tracedStore) UpdateTenant(ctx context.Context, t keyring.Tenant) (err error) {
	ctx, end := s.span(ctx, "UpdateTenant", t.ID)
	defer func() { end(err) }()
	return s.Store.UpdateTenant(ctx, t)
}

func (s tracedStore) SwitchTenantProvider(ctx context.Context, id string, from, to kms.Ref, at time.Time) (err error) {
	ctx, end := s.span(ctx, "SwitchTenantProvider", id)
	defer func() { end(err) }()
	return s.Store.SwitchTenantProvider(ctx, id, from, to, at)
}

func (s tracedStore) SetTenantState(ctx context.Context, id string, provider kms.Ref, state keyring.TenantState, reason string, at time.Time) (_ keyring.Tenant, _ bool, err error) {
	ctx, end := s.span(ctx, "SetTenantState", id)
	defer func() { end(err) }()
	return s.Store.SetTenantState(ctx, id, provider, state, reason, at)
}

func (s tracedStore) ListTenants(ctx context.Context, after string, limit int) (_ []keyring.Tenant, err error) {
	ctx, end := s.span(ctx, "ListTenants", "")
	defer func() { end(err) }()
	return s.Store.ListTenants(ctx, after, limit)
}

func (s tracedStore) DeleteTenant(ctx context.Context, id string) (err error) {
	ctx, end := s.span(ctx, "DeleteTenant", id)
	defer func() { end(err) }()
	return s.Store.DeleteTenant(ctx, id)
}

func (s tracedStore) InsertCipherKey(ctx context.Context, k keyring.CipherKey) (err error) {
	ctx, end := s.span(ctx, "InsertCipherKey", k.TenantID)
	defer func() { end(err) }()
	return s.Store.InsertCipherKey(ctx, k)
}

func (s tracedStore) CipherKey(ctx context.Context, tenantID string, id envelope.KeyID) (_ keyring.CipherKey, err error) {
	ctx, end := s.span(ctx, "CipherKey", tenantID)
	defer func() { end(err) }()
	return s.Store.CipherKey(ctx, tenantID, id)
}

func (s tracedStore) ActiveCipherKey(ctx context.Context, tenantID string) (_ keyring.CipherKey, err error) {
	ctx, end := s.span(ctx, "ActiveCipherKey", tenantID)
	defer func() { end(err) }()
	return s.Store.ActiveCipherKey(ctx, tenantID)
}

func (s tracedStore) ActivateCipherKey(ctx context.Context, tenantID string, prev *envelope.KeyID, next keyring.CipherKey) (err error) {
	ctx, end := s.span(ctx, "ActivateCipherKey", tenantID)
	defer func() { end(err) }()
	return s.Store.ActivateCipherKey(ctx, tenantID, prev, next)
}

func (s tracedStore) ReserveUses(ctx context.Context, tenantID string, id envelope.KeyID, n, max int64) (_ int64, err error) {
	ctx, end := s.span(ctx, "ReserveUses", tenantID)
	defer func() { end(err) }()
	return s.Store.ReserveUses(ctx, tenantID, id, n, max)
}

func (s tracedStore) CountCipherKeys(ctx context.Context, tenantID string) (_ map[kms.Ref]int, err error) {
	ctx, end := s.span(ctx, "CountCipherKeys", tenantID)
	defer func() { end(err) }()
	return s.Store.CountCipherKeys(ctx, tenantID)
}
