package keyring

import (
	"context"
	"crypto/cipher"
	"fmt"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
)

// The batch forms of Encrypt and Decrypt give each item exactly the result
// that Encrypt or Decrypt would give it, in the same order of checks (an
// item's own faults, then the tenant's state, then the key), but do the
// work that does not depend on the item once per batch instead of once per
// item: the tenant check, the reservation of uses of the active data key
// (n at once), the cache lookup of the data key and the AES-GCM instance
// (an AES key schedule and GCM tables) built from it. For 100 items of
// 1 KiB that is most of the keyring's own cost beside AES-GCM itself
// (docs/PERFORMANCE.md). The AES-GCM instance lives only for the batch,
// as for one operation: no long-lived key schedule exists outside the
// zeroable cache.

// EncryptBatch encrypts n items for one tenant. item(i) returns the i-th
// item's context and plaintext, or the item's own error (which done then
// receives unchanged); done(i, text, err) receives its result, the text
// form as Encrypt returns it or Encrypt's error. Each index is passed to
// item and to done once, in order, item(i) before done(i); the plaintext
// item returns is not used after done(i) is called, so done may zero it.
func (s *Service) EncryptBatch(ctx context.Context, tenantID string, n int,
	item func(i int) (envelope.Context, []byte, error), done func(i int, text string, err error)) {
	te, _, shared := s.usableTenant(ctx, tenantID)
	var ak *activeKey
	if shared == nil {
		ak = s.reserveActiveKey(te, n)
		if ak == nil {
			// The reserved block cannot cover the batch (or the key is to
			// be rotated): item by item, which refills or rotates.
			for i := range n {
				ectx, pt, err := item(i)
				var text string
				if err == nil {
					text, err = s.Encrypt(ctx, tenantID, ectx, pt)
				}
				done(i, text, err)
			}
			return
		}
	}
	i := 0
	// next runs the item checks of Encrypt before the tenant's state.
	next := func() (envelope.Context, []byte, error) {
		ectx, pt, err := item(i)
		if err == nil {
			err = checkEncryptInput(ectx, pt)
		}
		return ectx, pt, err
	}
	if shared == nil {
		shared = s.withAEAD(ctx, tenantID, ak.id, func(aead cipher.AEAD) error {
			for ; i < n; i++ {
				ectx, pt, err := next()
				var text string
				if err == nil {
					text, err = sealText(aead, tenantID, ak, ectx, pt)
				}
				done(i, text, err)
			}
			return nil
		})
	}
	// The tenant or its key refused the batch: what is left of it (all of
	// it, but for a failure in the middle of the cache's work, which
	// cannot happen after the first item) gets that refusal.
	for ; i < n; i++ {
		_, _, err := next()
		if err == nil {
			err = shared
		}
		done(i, "", err)
	}
}

// checkEncryptInput is Encrypt's check of an item's own input.
func checkEncryptInput(ectx envelope.Context, plaintext []byte) error {
	if len(plaintext) > envelope.MaxPlaintextSize {
		return &fault.InputError{Field: "plaintext", Reason: fmt.Sprintf("must be at most %d bytes", envelope.MaxPlaintextSize)}
	}
	if err := ectx.Validate(); err != nil {
		return &fault.InputError{Field: "context", Reason: err.Error()}
	}
	return nil
}

// sealText seals one plaintext and returns its text form, as Encrypt does
// after its checks.
func sealText(aead cipher.AEAD, tenantID string, ak *activeKey, ectx envelope.Context, plaintext []byte) (string, error) {
	ct, err := envelope.Seal(aead, tenantID, ak.id, ectx, plaintext)
	if err != nil {
		return "", err
	}
	bin, err := ct.MarshalBinary()
	if err != nil {
		return "", fmt.Errorf("keyring: marshalling ciphertext: %w", err)
	}
	return envelope.FormatText(ak.prefix, bin)
}

// reserveActiveKey takes n uses of the tenant's active key at once, or
// returns nil when the block this process reserved cannot cover them or
// the key is due for rotation (the caller then goes item by item, and
// useActiveKey refills or rotates). Uses taken but not used are lost,
// which only brings the key's rotation forward.
func (s *Service) reserveActiveKey(te *tenantEntry, n int) *activeKey {
	if ak := te.active.Load(); ak != nil && s.fresh(ak) && ak.left.Add(-int64(n)) >= 0 {
		return ak
	}
	return nil
}

// DecryptBatch decrypts n items for one tenant. item(i) returns the i-th
// item's context and text form, or the item's own error (which done then
// receives unchanged); done(i, plaintext, err) receives its result as
// Decrypt returns it (done owns the plaintext and should zero it when it
// is done with it). Each index is passed to item and to done once, in
// order. Consecutive items under the same data key share one AES-GCM
// instance.
func (s *Service) DecryptBatch(ctx context.Context, tenantID string, n int,
	item func(i int) (envelope.Context, string, error), done func(i int, plaintext []byte, err error)) {
	_, _, shared := s.usableTenant(ctx, tenantID)
	// The item at i, read and checked as Decrypt checks its input.
	var (
		i    int
		ectx envelope.Context
		ct   *envelope.Ciphertext
		err  error
	)
	read := func() {
		var text string
		ectx, text, err = item(i)
		if err != nil {
			return
		}
		if ct, err = parseCiphertext(text); err != nil {
			return
		}
		if verr := ectx.Validate(); verr != nil {
			err = &fault.InputError{Field: "context", Reason: verr.Error()}
		}
	}
	advance := func(pt []byte, err error) {
		done(i, pt, err)
		if i++; i < n {
			read()
		}
	}
	if n > 0 {
		read()
	}
	for i < n {
		if err == nil {
			err = shared
		}
		if err != nil {
			advance(nil, err)
			continue
		}
		// A run of items under ct's key: one cache lookup and one AES-GCM
		// instance for all of them. It ends at an item under another key
		// or with a fault of its own, which the next round takes.
		id := ct.KeyID
		ran := false
		lerr := s.withAEAD(ctx, tenantID, id, func(aead cipher.AEAD) error {
			ran = true
			for i < n && err == nil && ct.KeyID == id {
				pt, oerr := envelope.Open(aead, tenantID, ct, ectx)
				if oerr != nil {
					pt, oerr = nil, ErrDecrypt
				}
				advance(pt, oerr)
			}
			return nil
		})
		if !ran {
			// The key did not load: this item has Decrypt's error; the
			// next ones try again, as they would one by one.
			advance(nil, lerr)
		}
	}
}
