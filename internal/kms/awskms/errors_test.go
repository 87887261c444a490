package awskms

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// sdkError shapes err as the SDK returns a failed call: an operation
// error around an HTTP response error with a request id.
func sdkError(status int, err error) error {
	return &smithy.OperationError{
		ServiceID:     "KMS",
		OperationName: "Decrypt",
		Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
				Err:      err,
			},
			RequestID: "req-" + fmt.Sprint(status),
		},
	}
}

func apiError(status int, code string) error {
	return sdkError(status, &smithy.GenericAPIError{Code: code, Message: "message text is never read"})
}

// sendError shapes err as the SDK returns a call that got no answer.
func sendError(err error) error {
	return &smithy.OperationError{ServiceID: "KMS", OperationName: "Decrypt", Err: &smithyhttp.RequestSendError{Err: err}}
}

func TestClassifyAPIErrors(t *testing.T) {
	tests := []struct {
		code   string
		status int
		// onDecrypt and onOther are the sentinels for Decrypt and for
		// the other actions (nil: none).
		onDecrypt, onOther error
		retried            bool
	}{
		{"ThrottlingException", 400, kms.ErrThrottled, kms.ErrThrottled, true},
		{"LimitExceededException", 400, kms.ErrThrottled, kms.ErrThrottled, true},
		{"TooManyRequestsException", 429, kms.ErrThrottled, kms.ErrThrottled, true},
		{"Throttling", 400, kms.ErrThrottled, kms.ErrThrottled, true},
		{"RequestLimitExceeded", 400, kms.ErrThrottled, kms.ErrThrottled, true},
		{"KMSInternalException", 500, kms.ErrUnavailable, kms.ErrUnavailable, true},
		{"DependencyTimeoutException", 503, kms.ErrUnavailable, kms.ErrUnavailable, true},
		{"KeyUnavailableException", 500, kms.ErrUnavailable, kms.ErrUnavailable, true},
		{"ServiceUnavailable", 503, kms.ErrUnavailable, kms.ErrUnavailable, true},
		{"ServiceUnavailableException", 503, kms.ErrUnavailable, kms.ErrUnavailable, true},
		{"InternalFailure", 500, kms.ErrUnavailable, kms.ErrUnavailable, true},
		{"DisabledException", 400, kms.ErrKeyDisabled, kms.ErrKeyDisabled, false},
		{"KMSInvalidStateException", 400, kms.ErrKeyDisabled, kms.ErrKeyDisabled, false},
		{"NotFoundException", 400, kms.ErrKeyNotFound, kms.ErrKeyNotFound, false},
		{"AccessDeniedException", 400, kms.ErrAccessDenied, kms.ErrAccessDenied, false},
		{"UnrecognizedClientException", 400, kms.ErrAccessDenied, kms.ErrAccessDenied, false},
		{"InvalidSignatureException", 400, kms.ErrAccessDenied, kms.ErrAccessDenied, false},
		{"ExpiredTokenException", 400, kms.ErrAccessDenied, kms.ErrAccessDenied, false},
		{"InvalidClientTokenId", 403, kms.ErrAccessDenied, kms.ErrAccessDenied, false},
		{"MissingAuthenticationToken", 403, kms.ErrAccessDenied, kms.ErrAccessDenied, false},
		{"InvalidCiphertextException", 400, kms.ErrInvalidCiphertext, nil, false},
		{"IncorrectKeyException", 400, kms.ErrInvalidCiphertext, nil, false},
		{"InvalidKeyUsageException", 400, kms.ErrInvalidCiphertext, nil, false},
		{"ValidationException", 400, nil, nil, false},
		{"InvalidGrantTokenException", 400, nil, nil, false},
		{"UnsupportedOperationException", 400, nil, nil, false},
		// Codes nobody knows: the HTTP status decides.
		{"UnknownError", 400, nil, nil, false},
		{"UnknownError", 429, kms.ErrThrottled, kms.ErrThrottled, true},
		{"UnknownError", 500, kms.ErrUnavailable, kms.ErrUnavailable, true},
		{"UnknownError", 502, kms.ErrUnavailable, kms.ErrUnavailable, true},
		{"UnknownError", 504, kms.ErrUnavailable, kms.ErrUnavailable, true},
		{"UnknownError", 501, nil, nil, false},
		// A known code wins over the status.
		{"AccessDeniedException", 503, kms.ErrAccessDenied, kms.ErrAccessDenied, false},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s/%d", tt.code, tt.status)
		err := apiError(tt.status, tt.code)
		c := classify(err)
		if got := c.retryable(); got != tt.retried {
			t.Errorf("%s: retried = %v, want %v", name, got, tt.retried)
		}
		if got := c.kind(actionDecrypt); got != tt.onDecrypt {
			t.Errorf("%s: on Decrypt = %v, want %v", name, got, tt.onDecrypt)
		}
		for _, action := range []string{actionGenerateDataKey, actionEncrypt, actionDescribeKey} {
			if got := c.kind(action); got != tt.onOther {
				t.Errorf("%s: on %s = %v, want %v", name, action, got, tt.onOther)
			}
		}
		// Wrapped the way the retry loop hands it back.
		if got := classify(&retry.MaxAttemptsError{Attempt: 4, Err: err}); got != c {
			t.Errorf("%s: after max attempts classified %v, want %v", name, got, c)
		}
	}
}

func TestClassifyTransportErrors(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		err     error
		want    error
		retried bool
	}{
		{"connection refused", sendError(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), kms.ErrUnavailable, true},
		{"connection reset", sendError(&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), kms.ErrUnavailable, true},
		{"DNS", sendError(&net.DNSError{Err: "no such host", Name: "kms.eu-west-1.amazonaws.com", IsNotFound: true}), kms.ErrUnavailable, true},
		{"EOF", sendError(io.EOF), kms.ErrUnavailable, true},
		{"answer cut short", &smithy.OperationError{Err: &smithy.DeserializationError{Err: io.ErrUnexpectedEOF}}, kms.ErrUnavailable, true},
		{"attempt timeout", &smithy.OperationError{Err: &attemptTimeoutError{timeout: 5, cause: "x"}}, kms.ErrUnavailable, true},
		{"throttled, retry quota spent", errors.Join(apiError(400, "ThrottlingException"), errors.New("retry quota exceeded")), kms.ErrThrottled, true},
		{"caller canceled", &smithy.OperationError{Err: canceled.Err()}, kms.ErrUnavailable, false},
		{"caller canceled mid-send", sendError(&net.OpError{Op: "read", Err: context.Canceled}), kms.ErrUnavailable, false},
		{"caller's deadline", sendError(context.DeadlineExceeded), kms.ErrUnavailable, false},
		{"no credentials", &smithy.OperationError{Err: fmt.Errorf("get identity: %w", &credentialsError{err: errors.New("no EC2 IMDS role found")})}, kms.ErrNotConfigured, false},
		{"anything else", errors.New("something odd"), nil, false},
	}
	for _, tt := range tests {
		c := classify(tt.err)
		if got := c.retryable(); got != tt.retried {
			t.Errorf("%s: retried = %v, want %v", tt.name, got, tt.retried)
		}
		if got := c.kind(actionDecrypt); got != tt.want {
			t.Errorf("%s: kind = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestOpError(t *testing.T) {
	cause := apiError(400, "DisabledException")
	err := opError("Unwrap", "cmk:abc", "eu-west-1", kms.ErrKeyDisabled, cause)
	if err.RequestID != "req-400" {
		t.Errorf("RequestID = %q, want req-400", err.RequestID)
	}
	if !errors.Is(err, kms.ErrKeyDisabled) || kms.Retryable(err) {
		t.Errorf("errors.Is(ErrKeyDisabled) = %v, Retryable = %v; want true, false", errors.Is(err, kms.ErrKeyDisabled), kms.Retryable(err))
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "DisabledException" {
		t.Errorf("the AWS error is not reachable through the *kms.Error: %v", err)
	}
	if got := opError("Unwrap", "cmk:abc", "eu-west-1", kms.ErrUnavailable, sendError(io.EOF)).RequestID; got != "" {
		t.Errorf("RequestID of a call without an answer = %q, want none", got)
	}

	// A caller's cancellation stays visible as such.
	canceled := opError("Unwrap", "cmk:abc", "eu-west-1", classify(context.Canceled).kind(actionDecrypt), &smithy.OperationError{Err: context.Canceled})
	if !errors.Is(canceled, context.Canceled) {
		t.Errorf("errors.Is(%v, context.Canceled) = false", canceled)
	}
	// An attempt's own timeout is not the caller's deadline.
	timedOut := opError("Unwrap", "cmk:abc", "eu-west-1", kms.ErrUnavailable, &smithy.OperationError{Err: &attemptTimeoutError{timeout: 5, cause: "context deadline exceeded"}})
	if errors.Is(timedOut, context.DeadlineExceeded) {
		t.Errorf("an attempt timeout reads as the caller's deadline: %v", timedOut)
	}
}
