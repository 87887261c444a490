package kmip

import (
	"context"
	"errors"
	"fmt"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// Provider is a tenant's AES-256 key in a KMIP server, as a kms.Provider:
// data keys are wrapped with KMIP Encrypt (AES-GCM, 16-byte tag, an IV the
// server makes), the binding's canonical form as associated data.
type Provider struct {
	ref kms.Ref
	key KeyURI
	c   *Client
}

var _ kms.Provider = (*Provider)(nil)

// Close closes the idle connections of the provider's client, when the
// provider is replaced (its settings changed) or dropped; a call in flight
// finishes, and the provider stays usable.
func (p *Provider) Close() { p.c.Close() }

// NewProvider returns the provider of key, named ref, reached through c
// (whose endpoints should include key.Endpoint).
func NewProvider(ref kms.Ref, key KeyURI, c *Client) *Provider {
	return &Provider{ref: ref, key: key, c: c}
}

// Ref implements kms.Provider.
func (p *Provider) Ref() kms.Ref { return p.ref }

// Key is the key's URI.
func (p *Provider) Key() KeyURI { return p.key }

// GenerateDataKey makes a random data key here and wraps it.
func (p *Provider) GenerateDataKey(ctx context.Context, b kms.Binding) (*secret.Bytes, kms.Wrapped, error) {
	dk, err := secret.Random(kms.DataKeySize)
	if err != nil {
		return nil, kms.Wrapped{}, &kms.Error{Op: "GenerateDataKey", Provider: p.ref.String(), Err: err}
	}
	w, err := p.Wrap(ctx, dk, b)
	if err != nil {
		dk.Destroy()
		return nil, kms.Wrapped{}, err
	}
	return dk, w, nil
}

// Wrap encrypts plaintext with KMIP Encrypt.
func (p *Provider) Wrap(ctx context.Context, plaintext *secret.Bytes, b kms.Binding) (kms.Wrapped, error) {
	if n := plaintext.Len(); n != kms.DataKeySize {
		return kms.Wrapped{}, &kms.Error{Op: "Wrap", Provider: p.ref.String(), Err: fmt.Errorf("a data key of %d bytes, want %d", n, kms.DataKeySize)}
	}
	ctx = kms.WithTenant(ctx, kms.TenantOf(ctx, b))
	s, err := p.c.Encrypt(ctx, p.key.UID, plaintext, b.Canonical())
	if err != nil {
		return kms.Wrapped{}, p.refine(ctx, err, false)
	}
	if len(s.IV) > maxIV {
		return kms.Wrapped{}, &kms.Error{Op: "Encrypt", Provider: p.ref.String(), Err: fmt.Errorf("the server made an IV of %d bytes, more than %d", len(s.IV), maxIV)}
	}
	return kms.Wrapped{KeyVersion: p.key.UID, Blob: marshalBlob(s)}, nil
}

// Unwrap decrypts w with KMIP Decrypt. A blob that is not one Wrap made
// is refused here, without asking the server.
func (p *Provider) Unwrap(ctx context.Context, w kms.Wrapped, b kms.Binding) (*secret.Bytes, error) {
	s, ok := parseBlob(w.Blob)
	if !ok {
		return nil, &kms.Error{Op: "Unwrap", Provider: p.ref.String(), Kind: kms.ErrInvalidCiphertext}
	}
	ctx = kms.WithTenant(ctx, kms.TenantOf(ctx, b))
	pt, err := p.c.Decrypt(ctx, p.key.UID, s, b.Canonical())
	if err != nil {
		return nil, p.refine(ctx, err, true)
	}
	return pt, nil
}

// Describe reads the key's state with Get Attributes: Active is enabled;
// Pre-Active, Deactivated and Compromised are disabled (the last two are
// revocations, which KMIP cannot undo: Detail says so); Destroyed, or a
// key the server does not know, is kms.ErrKeyNotFound.
func (p *Provider) Describe(ctx context.Context) (kms.KeyInfo, error) {
	a, err := p.c.GetAttributes(ctx, p.key.UID)
	if err != nil {
		return kms.KeyInfo{}, err
	}
	info := kms.KeyInfo{State: KeyState(a.State), Detail: StateDetail(a.State)}
	if info.State == kms.KeyDestroyed {
		return kms.KeyInfo{}, &kms.Error{Op: "GetAttributes", Provider: p.ref.String(), Kind: kms.ErrKeyNotFound, Err: errors.New(info.Detail)}
	}
	return info, nil
}

// KeyState is the kms state of a KMIP state.
func KeyState(s State) kms.KeyState {
	switch s {
	case StateActive:
		return kms.KeyEnabled
	case StatePreActive, StateDeactivated, StateCompromised:
		return kms.KeyDisabled
	case StateDestroyed, StateDestroyedCompromised:
		return kms.KeyDestroyed
	}
	return kms.KeyStateUnknown
}

// StateDetail words a KMIP state for a tenant's admins.
func StateDetail(s State) string {
	switch s {
	case StateActive:
		return "the key is Active"
	case StatePreActive:
		return "the key is Pre-Active: its owner must activate it"
	case StateDeactivated, StateCompromised:
		return fmt.Sprintf("the key was revoked (%v): KMIP cannot make it Active again, so what it protects is lost unless the key manager can restore the key from a backup", s)
	case StateDestroyed, StateDestroyedCompromised:
		return fmt.Sprintf("the key was destroyed (%v)", s)
	}
	return fmt.Sprintf("the key is in %v, which tenantcrypt does not know", s)
}

// refine makes a refusal of Encrypt or Decrypt precise. Servers answer
// Permission Denied for a key that is not Active (PyKMIP does) as for a
// client that may not use it, and PyKMIP answers General Failure for a
// wrong GCM tag: the key's state, read with Get Attributes, tells which.
// Connection failures and other refusals are returned as they are.
func (p *Provider) refine(ctx context.Context, err error, decrypt bool) error {
	var re *ResultError
	if !errors.As(err, &re) {
		return err
	}
	switch re.Reason {
	case ReasonPermissionDenied, ReasonGeneralFailure, ReasonCryptographicFailure, ReasonWrongKeyLifecycleState:
	default:
		return err
	}
	a, aerr := p.c.GetAttributes(ctx, p.key.UID)
	switch {
	case errors.Is(aerr, kms.ErrKeyNotFound), errors.Is(aerr, kms.ErrAccessDenied):
		return aerr
	case aerr != nil:
		return err
	}
	op := re.Op.String()
	switch KeyState(a.State) {
	case kms.KeyEnabled:
		if decrypt && (re.Reason == ReasonGeneralFailure || re.Reason == ReasonCryptographicFailure) {
			return &kms.Error{Op: op, Provider: p.ref.String(), Kind: kms.ErrInvalidCiphertext}
		}
		return err
	case kms.KeyDestroyed:
		return &kms.Error{Op: op, Provider: p.ref.String(), Kind: kms.ErrKeyNotFound, Err: fmt.Errorf("%w; %s", re, StateDetail(a.State))}
	default:
		return &kms.Error{Op: op, Provider: p.ref.String(), Kind: kms.ErrKeyDisabled, Err: fmt.Errorf("%w; %s", re, StateDetail(a.State))}
	}
}

// The blob: a version byte, the IV's length, the IV, the GCM tag and the
// ciphertext of the data key.
const (
	blobVersion = 1
	minIV       = 12
	maxIV       = 16
)

func marshalBlob(s Sealed) []byte {
	b := make([]byte, 0, 2+len(s.IV)+len(s.Tag)+len(s.Ciphertext))
	b = append(b, blobVersion, byte(len(s.IV)))
	b = append(b, s.IV...)
	b = append(b, s.Tag...)
	return append(b, s.Ciphertext...)
}

func parseBlob(b []byte) (Sealed, bool) {
	if len(b) < 2 || b[0] != blobVersion {
		return Sealed{}, false
	}
	n := int(b[1])
	if n < minIV || n > maxIV || len(b) != 2+n+gcmTagLength+kms.DataKeySize {
		return Sealed{}, false
	}
	return Sealed{IV: b[2 : 2+n], Tag: b[2+n : 2+n+gcmTagLength], Ciphertext: b[2+n+gcmTagLength:]}, true
}
