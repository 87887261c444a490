package awskms

import (
	"context"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// Call is one call to AWS KMS, as Config.OnCall is told of it: for the
// audit log, which must record every call to an external KMS.
type Call struct {
	// Action is the AWS action: "GenerateDataKey", "Encrypt", "Decrypt",
	// "DescribeKey".
	Action string
	Region string
	// KeyARN is the key called, in Region.
	KeyARN string
	// TenantID is the tenant the call is for (from its encryption
	// context, or kms.WithTenant), if known.
	TenantID string
	// RequestID is AWS's request id, when KMS answered.
	RequestID string
	// Err is the call's failure, nil on success.
	Err error
}

// observe tells Config.OnCall of a call; meta is the answer's metadata
// (for its request id) on success.
func (t target) observe(ctx context.Context, action string, b kms.Binding, meta middleware.Metadata, err error) {
	if t.c.cfg.OnCall == nil {
		return
	}
	c := Call{Action: action, Region: t.region, KeyARN: t.key.String(), TenantID: kms.TenantOf(ctx, b), Err: err}
	if err != nil {
		c.RequestID = requestID(err)
	} else if id, ok := awsmiddleware.GetRequestIDMetadata(meta); ok {
		c.RequestID = id
	}
	t.c.cfg.OnCall(c)
}
