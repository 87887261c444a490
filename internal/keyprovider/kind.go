package keyprovider

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// A provider kind is one sort of key manager that tenants can register
// their keys in (AWS KMS, a KMIP server). The composition root (cmd/) hands
// the kinds it supports to New; nothing else knows a concrete kind. A kind
// is a Kind plus any of the optional capabilities below, each a separate
// interface that the service checks with a type assertion:
//
//   - Configurer: registration fields of its own (the API's "kmip" object),
//     JSON Patch paths below them, and a secret stored wrapped by the
//     internal KMS;
//   - Tester: checks a key at registration and on an admin's test;
//   - Inspector: the key monitor's periodic check, which moves the tenant
//     through its lifecycle states;
//   - FailoverReporter: whether calls go to a replica now (for the status).
//
// Kinds are called with a Target: the registration and its secret.

// Kind is one sort of key manager.
type Kind interface {
	// Name is the kind as the API's "keyprovider" field spells it ("AWS-KMS",
	// "KMIP"); it is stored in the registration and never changes.
	Name() string

	// ParseKey reads the identity of a key in this kind's key manager, as
	// registered (the API's "arn" field) or as stored, and returns it in
	// canonical form: its String is what the registration stores and what
	// its fingerprint hashes.
	// Errors: an error wrapping ErrMalformedARN, with a cause that says
	// what is wrong (never secret).
	ParseKey(s string) (Key, error)

	// Open returns the provider that wraps tenant t.TenantID's data keys
	// under the registered key t, with ref as its Ref. It does not call the
	// key manager: failures of the key manager surface, as kms errors, from
	// the provider's calls. The Target's secret belongs to the caller, who
	// destroys it after Open returns: a kind that needs it later copies it.
	// Errors: only for a registration the kind cannot serve (a config it
	// cannot read); never a kms sentinel.
	Open(ctx context.Context, t Target, ref kms.Ref) (kms.Provider, error)
}

// Key is a kind's parsed, canonical identity of a key (an AWS key ARN, a
// kmip:// URI). Only its kind looks inside; everyone else prints it.
type Key interface {
	// String is the canonical text form; ParseKey of it returns an equal
	// Key.
	String() string
}

// Target is a registered key as a kind's methods receive it: the
// registration, its parsed key, and its secret unwrapped (nil when the kind
// keeps none). The secret stays the caller's.
type Target struct {
	Provider
	Secret *secret.Bytes
}

// Settings is the kind-specific part of a registration: Config is stored
// as is and returned by the API under the kind's field (it must hold no
// secret); Secret is stored wrapped by the internal KMS and never returned
// (nil: none). Whoever receives Settings owns Secret and destroys it.
type Settings struct {
	Config json.RawMessage
	Secret *secret.Bytes
}

// Configurer is a Kind whose registrations carry fields of their own: a
// JSON object in the registration request under Field, and JSON Patch
// paths below "/"+Field.
type Configurer interface {
	Kind

	// Field is the name of the registration request's member that carries
	// the kind's settings ("kmip").
	Field() string

	// Configure reads the kind's registration member (nil when the request
	// has none) for key and returns the settings to store.
	// Errors: *fault.InputError for a member that is missing or has the
	// wrong shape; an error wrapping ErrMalformedARN for malformed content
	// (a PEM block that does not parse).
	Configure(key Key, raw json.RawMessage) (Settings, error)

	// Patch replaces the value at path, below the kind's field ("/serverCA"
	// for the request path "/kmip/serverCA"), in cur and returns the new
	// settings; cur stays the caller's. The service tests the result
	// (Tester) before it stores it.
	// Errors: *fault.InputError for a path the kind does not know or a
	// value of the wrong type; an error wrapping ErrMalformedARN for
	// malformed content.
	Patch(cur Settings, path string, value json.RawMessage) (Settings, error)
}

// Tester is a Kind whose keys are checked at registration and when an
// admin tests them.
type Tester interface {
	Kind

	// Test checks that the key can serve as a tenant's key provider, and
	// its DR compliance, and records what it found in t's MultiRegion,
	// Replicas, DRCompliant and Compliance (TestedAt is the caller's).
	//
	// With strict (registration), a key that cannot serve is an error:
	// *RefusedError for a key that is unsuitable (wrong type or usage, not
	// enabled, missing, not multi-region where that is required), or a
	// kms error for a key manager that refuses this service
	// (kms.ErrAccessDenied), does not answer (kms.ErrUnavailable,
	// kms.ErrThrottled) or has no credentials (kms.ErrNotConfigured).
	//
	// Without strict (a test of a registered key), what is wrong with the
	// key is recorded in t.Compliance and DRCompliant is false; only a key
	// manager that does not answer is an error (kms.ErrUnavailable,
	// kms.ErrThrottled, kms.ErrNotConfigured), and a *RefusedError may be
	// returned beside a recorded compliance, which the caller stores.
	Test(ctx context.Context, t *Target, strict bool) error
}

// Inspector is a Kind whose keys the key monitor (package lifecycle)
// watches.
type Inspector interface {
	Kind

	// Inspect checks the key wherever it is served from (AWS: its own
	// region, a primary key's region, the DR region) and concludes what
	// the tenant's state should be. probe asks that a key that answers
	// usable also pass real calls before the verdict is active (the tenant
	// is not active now: a policy may allow describing the key and refuse
	// using it).
	//
	// Inspect never fails: every failure is a Check's Result, and an
	// Inspection that saw only outages has Known false. Checks carry no
	// TenantID or Provider: the caller adds them.
	Inspect(ctx context.Context, t Target, probe bool) Inspection
}

// FailoverReporter is a Kind whose keys fail over to a replica when their
// home is out (AWS multi-region keys).
type FailoverReporter interface {
	Kind

	// Failover says whether calls for t's key go to its replica now. It
	// asks no key manager; the zero Failover means no failover.
	Failover(t Target) Failover
}

// Failover says whether a tenant's key is served by its replica now: its
// home (region) had an outage, and calls go to the DR region until a probe
// finds the home back.
type Failover struct {
	Active   bool
	From, To string
	Since    time.Time
}

// Inspection is what a key check found.
type Inspection struct {
	// Checks are the key's checks, one per place, the deciding one first.
	Checks []Check
	// Known is false when the checks found nothing about the key (only
	// outages, throttling): the tenant's state stays as it is.
	Known bool
	// State and Reason are the tenant's state, when Known.
	State  keyring.TenantState
	Reason string
	// Compliance, when not nil, is the registration's DR compliance as
	// this check found it, to be recorded if it changed.
	Compliance *Compliance
}

// Compliance is a registration's DR compliance.
type Compliance struct {
	DRCompliant bool
	Error       ComplianceError
}

// Check is the outcome of checking a key in one place.
type Check struct {
	// Place is where the key was checked: an AWS region, a KMIP endpoint.
	Place string
	// Key is the key's identity there (the key's ARN in that region).
	Key       string
	CheckedAt time.Time
	// Result is one of the Result* constants.
	Result string
	// KeyState is the key's state as its key manager spells it
	// ("Enabled", "PendingDeletion"), empty when it did not say.
	KeyState string
	// Detail explains the result for the tenant's admins; never secret.
	Detail string
}

// Results of a key check, as stored.
const (
	// ResultOK: the key is usable.
	ResultOK = "ok"
	// ResultDisabled: the key (or a state like a disconnected key store)
	// refuses cryptographic operations.
	ResultDisabled = "disabled"
	// ResultPendingDeletion: the key is scheduled for deletion.
	ResultPendingDeletion = "pending-deletion"
	// ResultNotFound: the key does not exist (any more).
	ResultNotFound = "not-found"
	// ResultAccessDenied: the key manager refuses this service.
	ResultAccessDenied = "access-denied"
	// ResultThrottled: the key manager throttled the check; nothing is
	// known.
	ResultThrottled = "throttled"
	// ResultUnavailable: the key manager did not answer in time; nothing
	// is known.
	ResultUnavailable = "unavailable"
	// ResultError: the check failed for another reason (see Detail).
	ResultError = "error"
)

// ResultOf is the result of a check that failed with err, a kms sentinel
// (or the caller's deadline, which counts as no answer); every kind's
// inspection reads its key manager's failures through it.
func ResultOf(err error) string {
	switch {
	case errors.Is(err, kms.ErrKeyNotFound):
		return ResultNotFound
	case errors.Is(err, kms.ErrAccessDenied):
		return ResultAccessDenied
	case errors.Is(err, kms.ErrKeyDisabled):
		return ResultDisabled
	case errors.Is(err, kms.ErrKeyPendingDeletion):
		return ResultPendingDeletion
	case errors.Is(err, kms.ErrThrottled):
		return ResultThrottled
	case errors.Is(err, kms.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return ResultUnavailable
	}
	return ResultError
}

// ErrUnknownKind: a registration names a kind this service was not given.
var ErrUnknownKind = errors.New("unknown key provider kind")

// ErrMalformedKey is ErrMalformedARN under the name that fits every kind.
var ErrMalformedKey = ErrMalformedARN

// HomeReporter is a Kind whose keys have a home among the places they are
// checked in (AWS: the key's own region), whose check decides the tenant's
// state; the stored checks are listed home first.
type HomeReporter interface {
	Kind

	// Home is the place of t's key whose check decides, "" if none.
	Home(t Target) string
}

// KeyComparer is a Kind whose keys can have several identities (an AWS
// multi-region key's replicas): a tenant registers each key once.
type KeyComparer interface {
	Kind

	// SameKey reports whether a and b (both of this kind) are one key.
	SameKey(a, b Key) bool
}
