package awskms

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// class is what a failed call means, decided once in classify and used
// both by the retryer (retry or not) and by toError (which sentinel).
type class int

const (
	classOther             class = iota // not retried, no sentinel
	classThrottled                      // retried; kms.ErrThrottled
	classUnavailable                    // retried; kms.ErrUnavailable
	classCanceled                       // the caller's context ended; not retried; kms.ErrUnavailable
	classDisabled                       // kms.ErrKeyDisabled
	classInvalidState                   // KMSInvalidStateException: disabled or pending deletion, see keyStateError
	classNotFound                       // kms.ErrKeyNotFound
	classAccessDenied                   // kms.ErrAccessDenied
	classInvalidCiphertext              // kms.ErrInvalidCiphertext (on Decrypt only)
	classInvalidKeyUsage                // InvalidKeyUsageException: kms.ErrInvalidCiphertext on Decrypt, else no sentinel
	classNoCredentials                  // the SDK's credential chain found none; kms.ErrNotConfigured
)

// retryable reports whether the SDK should try again.
func (c class) retryable() bool { return c == classThrottled || c == classUnavailable }

// codeClasses maps AWS error codes, as smithy.APIError.ErrorCode reports
// them, to their meaning. Codes KMS does not model (throttling, access
// denied, signature and token errors) arrive as smithy.GenericAPIError
// with the same code.
var codeClasses = map[string]class{
	// The request rate. KMS answers ThrottlingException; the others are
	// what AWS front ends and older KMS versions answer. LimitExceeded is
	// KMS's resource quota error, which the calls made here (none creates
	// a resource) can only meet as a request-rate quota: throttling.
	"ThrottlingException":      classThrottled,
	"Throttling":               classThrottled,
	"ThrottledException":       classThrottled,
	"TooManyRequestsException": classThrottled,
	"RequestLimitExceeded":     classThrottled,
	"LimitExceededException":   classThrottled,

	// Transient faults on AWS's side.
	"KMSInternalException":        classUnavailable,
	"DependencyTimeoutException":  classUnavailable,
	"KeyUnavailableException":     classUnavailable,
	"InternalFailure":             classUnavailable,
	"InternalFailureException":    classUnavailable,
	"InternalServerError":         classUnavailable,
	"ServiceUnavailable":          classUnavailable,
	"ServiceUnavailableException": classUnavailable,
	"RequestTimeout":              classUnavailable,
	"RequestTimeoutException":     classUnavailable,

	// The key's state.
	"DisabledException":           classDisabled,
	"KMSInvalidStateException":    classInvalidState,
	"NotFoundException":           classNotFound,
	"AccessDeniedException":       classAccessDenied,
	"AccessDenied":                classAccessDenied,
	"NotAuthorized":               classAccessDenied,
	"UnrecognizedClientException": classAccessDenied,
	"InvalidClientTokenId":        classAccessDenied,
	"ExpiredTokenException":       classAccessDenied,
	"InvalidSignatureException":   classAccessDenied,
	"SignatureDoesNotMatch":       classAccessDenied,
	"IncompleteSignature":         classAccessDenied,
	"MissingAuthenticationToken":  classAccessDenied,

	// The ciphertext.
	"InvalidCiphertextException": classInvalidCiphertext,
	"IncorrectKeyException":      classInvalidCiphertext,
	"InvalidKeyUsageException":   classInvalidKeyUsage,
}

// classify decides what err, returned by an SDK call, means: by the AWS
// error code when there is one, never by message text; else by the HTTP
// status; else by the transport failure.
func classify(err error) class {
	if err == nil {
		return classOther
	}
	var noCreds *credentialsError
	if errors.As(err, &noCreds) {
		return classNoCredentials
	}
	var timeout *attemptTimeoutError
	if errors.As(err, &timeout) {
		return classUnavailable
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		if c, ok := codeClasses[apiErr.ErrorCode()]; ok {
			return c
		}
		var status interface{ HTTPStatusCode() int }
		if errors.As(err, &status) {
			switch code := status.HTTPStatusCode(); {
			case code == http.StatusTooManyRequests:
				return classThrottled
			case code == http.StatusNotImplemented:
				// An operation the endpoint lacks (local-kms answers
				// 501 for some): asking again will not help.
				return classOther
			case code >= 500:
				return classUnavailable
			}
		}
		return classOther
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return classCanceled
	}
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) && status.HTTPStatusCode() >= 500 && status.HTTPStatusCode() != http.StatusNotImplemented {
		return classUnavailable
	}
	var (
		sendErr  *smithyhttp.RequestSendError
		deserErr *smithy.DeserializationError
		netErr   net.Error
		opErr    *net.OpError
		dnsErr   *net.DNSError
	)
	switch {
	case errors.As(err, &sendErr), errors.As(err, &deserErr),
		errors.As(err, &netErr), errors.As(err, &opErr), errors.As(err, &dnsErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE):
		// No answer, or half of one: the request may not have reached
		// KMS, and every call made here is safe to repeat.
		return classUnavailable
	}
	return classOther
}

// attemptTimeoutError is one attempt that got no answer within the
// per-attempt timeout while the caller's context was still live. It
// deliberately does not unwrap to context.DeadlineExceeded, which callers
// read as their own deadline.
type attemptTimeoutError struct {
	timeout time.Duration
	cause   string
}

func (e *attemptTimeoutError) Error() string {
	return fmt.Sprintf("no answer within %v (%s)", e.timeout, e.cause)
}

// requestID is the AWS request id of the call that failed with err, if it
// got as far as an answer.
func requestID(err error) string {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.ServiceRequestID()
	}
	return ""
}

// opError is the *kms.Error for a failure of op, which is a provider
// operation ("Unwrap") or an AWS action ("DescribeKey").
func opError(op, ref, region string, kind, cause error) *kms.Error {
	return &kms.Error{Op: op, Provider: ref, Region: region, RequestID: requestID(cause), Kind: kind, Err: cause}
}

// kind is the kms sentinel for c, as a failure of the AWS action action
// (a ciphertext can only be invalid for Decrypt). A KMSInvalidStateException
// becomes ErrKeyDisabled here; see keyStateError for the follow-up that
// tells pending deletion apart.
func (c class) kind(action string) error {
	switch c {
	case classThrottled:
		return kms.ErrThrottled
	case classUnavailable, classCanceled:
		// A caller's own cancellation is ErrUnavailable, as the internal
		// KMS reports it; errors.Is(err, context.Canceled) still holds
		// through the cause.
		return kms.ErrUnavailable
	case classDisabled, classInvalidState:
		return kms.ErrKeyDisabled
	case classNotFound:
		return kms.ErrKeyNotFound
	case classAccessDenied:
		return kms.ErrAccessDenied
	case classNoCredentials:
		return kms.ErrNotConfigured
	case classInvalidCiphertext, classInvalidKeyUsage:
		if action == actionDecrypt {
			return kms.ErrInvalidCiphertext
		}
	}
	// InvalidKeyUsage on GenerateDataKey or Encrypt means a key that
	// cannot encrypt (asymmetric, or for MACs): a configuration error, not
	// a bad ciphertext, and Wrap promises never to report one.
	return nil
}

// AWS actions, as they appear in errors and probe results.
const (
	actionDescribeKey     = "DescribeKey"
	actionGenerateDataKey = "GenerateDataKey"
	actionEncrypt         = "Encrypt"
	actionDecrypt         = "Decrypt"
)

// credentialsError is the SDK's credential chain finding no credentials
// (no environment variables, shared file, web identity, container or
// instance role): the operator's configuration, not the key's state. The
// chain's own errors are plain text; marking them where they come from
// (credentialsGuard) avoids reading that text.
type credentialsError struct{ err error }

func (e *credentialsError) Error() string {
	return "no AWS credentials: " + e.err.Error()
}

func (e *credentialsError) Unwrap() error { return e.err }

// credentialsGuard marks every failure of the credential chain as a
// credentialsError.
type credentialsGuard struct{ aws.CredentialsProvider }

func (g credentialsGuard) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := g.CredentialsProvider.Retrieve(ctx)
	if err != nil && ctx.Err() == nil {
		return c, &credentialsError{err: err}
	}
	return c, err
}
