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
// form as Encrypt returns it (as bytes) or Encrypt's error. text is valid
// only until done returns: EncryptBatch writes the next item's over it.
// Each index is passed to item and to done once, in order, item(i) before
// done(i); the plaintext item returns is not used after done(i) is called,
// so done may zero it.
//
// Under one data key, each item is sealed and rendered into two buffers
// that the whole batch reuses (envelope.Sealer, envelope.AppendText): no
// allocation per item, where Encrypt makes about six (the associated
// data, the AEAD's output, the *Ciphertext, the binary form, the text
// form twice).
func (s *Service) EncryptBatch(ctx context.Context, tenantID string, n int,
	item func(i int) (envelope.Context, []byte, error), done func(i int, text []byte, err error)) {
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
				done(i, []byte(text), err)
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
			sealer, err := envelope.NewSealer(aead, tenantID, ak.id)
			if err != nil {
				return err
			}
			// bin holds the binary form and text the text form of the
			// current item; both are ciphertext, not secret.
			var bin, text []byte
			for ; i < n; i++ {
				ectx, pt, err := next()
				if err == nil {
					bin, err = sealer.AppendSeal(bin[:0], ectx, pt)
				}
				if err == nil {
					text, err = envelope.AppendText(text[:0], ak.prefix, bin)
				}
				if err != nil {
					done(i, nil, err)
					continue
				}
				done(i, text, nil)
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
		done(i, nil, err)
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
// Decrypt returns it. plaintext is valid only until done returns:
// DecryptBatch then zeroes it and opens the next item into the same
// memory. Each index is passed to item and to done once, in order.
// Consecutive items under the same data key share one AES-GCM instance.
//
// Per item nothing is allocated: the text form is read from the caller's
// bytes (no string copy) and decoded into a buffer the batch reuses
// (envelope.AppendParseText), and an envelope.Opener opens that binary
// form in place into another (no *Ciphertext, no copy to join nonce and
// sealed bytes, one associated-data buffer).
func (s *Service) DecryptBatch(ctx context.Context, tenantID string, n int,
	item func(i int) (envelope.Context, []byte, error), done func(i int, plaintext []byte, err error)) {
	_, _, shared := s.usableTenant(ctx, tenantID)
	// The item at i, read and checked as Decrypt checks its input: bin is
	// its binary form (in a buffer reused by every item), id its key.
	var (
		i    int
		ectx envelope.Context
		bin  []byte
		id   envelope.KeyID
		err  error
		// ptBuf is the plaintexts' buffer, zeroed after each item.
		ptBuf []byte
	)
	read := func() {
		var text []byte
		ectx, text, err = item(i)
		if err != nil {
			return
		}
		var perr error
		if bin, perr = envelope.AppendParseText(bin[:0], text); perr != nil {
			err = ErrDecrypt
			return
		}
		if id, perr = envelope.CiphertextKeyID(bin); perr != nil {
			err = ErrDecrypt
			return
		}
		if verr := ectx.Validate(); verr != nil {
			err = &fault.InputError{Field: "context", Reason: verr.Error()}
		}
	}
	advance := func(pt []byte, err error) {
		done(i, pt, err)
		clear(pt)
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
		// A run of items under this item's key: one cache lookup and one
		// AES-GCM instance for all of them. It ends at an item under
		// another key or with a fault of its own, which the next round
		// takes.
		runID, start := id, i
		lerr := s.withAEAD(ctx, tenantID, runID, func(aead cipher.AEAD) error {
			opener, oerr := envelope.NewOpener(aead, tenantID)
			if oerr != nil {
				return oerr
			}
			for i < n && err == nil && id == runID {
				pt, oerr := opener.AppendOpen(ptBuf[:0], bin, ectx)
				if oerr != nil {
					advance(nil, ErrDecrypt)
					continue
				}
				ptBuf = pt
				advance(pt, nil)
			}
			return nil
		})
		if i == start {
			// The key did not load: this item has Decrypt's error; the
			// next ones try again, as they would one by one.
			advance(nil, lerr)
		}
	}
}
