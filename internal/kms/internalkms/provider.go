package internalkms

import (
	"context"
	"fmt"
	"strconv"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// provider is one tenant's view of the Service.
type provider struct {
	s        *Service
	tenantID string
}

var _ kms.Provider = (*provider)(nil)

func (p *provider) Ref() kms.Ref { return kms.InternalRef() }

func (p *provider) GenerateDataKey(ctx context.Context, b kms.Binding) (*secret.Bytes, kms.Wrapped, error) {
	const op = "GenerateDataKey"
	dk, err := secret.Random(kms.DataKeySize)
	if err != nil {
		return nil, kms.Wrapped{}, opError(op, kms.ErrUnavailable, err)
	}
	w, err := p.wrap(ctx, op, dk, b)
	if err != nil {
		dk.Destroy()
		return nil, kms.Wrapped{}, err
	}
	return dk, w, nil
}

// Wrap seals a kms.DataKeySize-byte key under the tenant's newest KEK,
// creating the tenant's first KEK if it has none. Any other size is refused
// rather than wrapped, so that every blob has one fixed size.
func (p *provider) Wrap(ctx context.Context, plaintext *secret.Bytes, b kms.Binding) (kms.Wrapped, error) {
	return p.wrap(ctx, "Wrap", plaintext, b)
}

func (p *provider) wrap(ctx context.Context, op string, dk *secret.Bytes, b kms.Binding) (kms.Wrapped, error) {
	if p.tenantID == "" {
		return kms.Wrapped{}, errNoTenant
	}
	if n := dk.Len(); n != kms.DataKeySize {
		return kms.Wrapped{}, fmt.Errorf("internalkms: %s: data key is %d bytes, want %d", op, n, kms.DataKeySize)
	}
	if err := ctxError(ctx, op); err != nil {
		return kms.Wrapped{}, err
	}
	set, err := p.s.kekSet(ctx, op, p.tenantID, true)
	if err != nil {
		return kms.Wrapped{}, err
	}
	defer p.s.cache.release(set)
	blob, err := sealDataKey(set.keys[set.current], p.tenantID, set.current, dk, b)
	if err != nil {
		return kms.Wrapped{}, opError(op, kms.ErrUnavailable, fmt.Errorf("sealing data key: %w", err))
	}
	return kms.Wrapped{KeyVersion: strconv.FormatUint(uint64(set.current), 10), Blob: blob}, nil
}

// Unwrap opens a blob with the KEK version it names. A blob naming a
// version newer than the cached ones makes the KEKs reload, since another
// process may have rotated; a tenant without any KEK is ErrKeyNotFound
// (deleted); every other failure is the one opaque ErrInvalidCiphertext.
func (p *provider) Unwrap(ctx context.Context, w kms.Wrapped, b kms.Binding) (*secret.Bytes, error) {
	const op = "Unwrap"
	if p.tenantID == "" {
		return nil, errNoTenant
	}
	if err := ctxError(ctx, op); err != nil {
		return nil, err
	}
	version, sealed, ok := parseBlob(w.Blob)
	// KeyVersion is redundant with the blob; a disagreement means the pair
	// was stored or assembled wrongly, and must not be papered over.
	if !ok || (w.KeyVersion != "" && w.KeyVersion != strconv.FormatUint(uint64(version), 10)) {
		return nil, invalidCiphertext(op)
	}
	set, err := p.s.kekSet(ctx, op, p.tenantID, false)
	if err != nil {
		return nil, err
	}
	if version > set.current {
		// Reload once: only a version beyond the newest known one can be a
		// rotation we missed, so a forged blob costs at most one store read.
		p.s.cache.forgetIfSame(set)
		p.s.cache.release(set)
		if set, err = p.s.load(ctx, op, p.tenantID, false); err != nil {
			return nil, err
		}
	}
	defer p.s.cache.release(set)
	kek := set.keys[version]
	if kek == nil {
		return nil, invalidCiphertext(op)
	}
	dk, ok := openDataKey(kek, p.tenantID, version, sealed, b)
	if !ok {
		return nil, invalidCiphertext(op)
	}
	return dk, nil
}

// Describe reports the internal KMS as enabled whenever its root key works:
// the internal KMS has no disabled or pending-deletion states, and a deleted
// tenant is the keyring's to report.
func (p *provider) Describe(ctx context.Context) (kms.KeyInfo, error) {
	if p.tenantID == "" {
		return kms.KeyInfo{}, errNoTenant
	}
	if err := p.s.checkRoot(ctx, "Describe"); err != nil {
		return kms.KeyInfo{}, err
	}
	return kms.KeyInfo{State: kms.KeyEnabled, Detail: "internal KMS"}, nil
}
