package kmipkind

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/kmip"
)

// detailedError is a failure with the words the API shows for it
// (PublicDetail): what the KMIP server answered and what to change.
type detailedError struct {
	err    error
	detail string
}

func (e *detailedError) Error() string        { return e.err.Error() }
func (e *detailedError) Unwrap() error        { return e.err }
func (e *detailedError) PublicDetail() string { return e.detail }

// malformed is a setting that does not parse: keyprovider.ErrMalformedARN
// (the API's 417), worded for the kmip member.
func malformed(err error) error {
	return &detailedError{err: fmt.Errorf("%w: %w", keyprovider.ErrMalformedARN, err), detail: "the kmip settings are malformed: " + err.Error()}
}

// explain words a failure of the key manager during a registration or a
// patch; other errors are returned as they are.
func explain(err error, endpoints []string) error {
	var ee *kmip.EndpointError
	var re *kmip.ResultError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee) && ee.Refused:
		return &detailedError{err: err, detail: fmt.Sprintf(
			"TLS refused the connection to %s (%v): serverCA must have issued the KMIP server's certificate for that host, and the key manager must trust clientCertificate", ee.Endpoint, ee.Err)}
	case errors.As(err, &re) && errors.Is(err, kms.ErrAccessDenied):
		return &detailedError{err: err, detail: fmt.Sprintf(
			"the KMIP server refused %v for the client certificate (%v: %s): grant its identity Get Attributes, Encrypt and Decrypt on the key", re.Op, re.Reason, re.Message)}
	case errors.Is(err, kms.ErrUnavailable), errors.Is(err, kms.ErrThrottled):
		return &detailedError{err: err, detail: fmt.Sprintf(
			"no KMIP server answered in time (%s): %v", strings.Join(endpoints, ", "), errors.Unwrap(err))}
	case errors.Is(err, kms.ErrKeyDisabled), errors.Is(err, kms.ErrKeyNotFound):
		return &detailedError{err: err, detail: "the key is not usable: " + err.Error()}
	}
	return err
}
