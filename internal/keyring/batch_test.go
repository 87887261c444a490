package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
)

type batchResult struct {
	text string
	pt   []byte
	err  string
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return fmt.Sprintf("%T %v", err, err)
}

// TestEncryptBatchAsOneByOne: every item of EncryptBatch gets what
// Encrypt gives it alone (a ciphertext that decrypts to its plaintext, or
// the same error), across key rotations within a batch, and the items'
// own errors come before the tenant's.
func TestEncryptBatchAsOneByOne(t *testing.T) {
	ctx := context.Background()
	const maxUses = 10
	h := newHarness(t, keyring.Config{MaxKeyUses: maxUses, UseBlock: maxUses})
	h.tenant("acme")
	h.encrypt("acme", nil, []byte("warm")) // reserves a block of 10 uses
	itemErr := errors.New("the item's own error")
	type in struct {
		ectx envelope.Context
		pt   []byte
		err  error
	}
	items := []in{
		{envelope.Context{"app": "a"}, []byte("one"), nil},
		{nil, []byte("two"), nil},
		{envelope.Context{"": "empty key"}, []byte("three"), nil},
		{nil, nil, itemErr},
		{nil, make([]byte, envelope.MaxPlaintextSize+1), nil},
		{envelope.Context{"app": "a"}, []byte{}, nil},
	}
	for range 3 { // more than the block's uses left: the batch goes item by item
		items = append(items, in{envelope.Context{"app": "b"}, []byte("more"), nil})
	}
	run := func(items []in) []batchResult {
		out := make([]batchResult, len(items))
		next := 0
		h.svc.EncryptBatch(ctx, "acme", len(items), func(i int) (envelope.Context, []byte, error) {
			if i != next {
				t.Fatalf("item(%d), want item(%d)", i, next)
			}
			return items[i].ectx, items[i].pt, items[i].err
		}, func(i int, text []byte, err error) {
			if i != next {
				t.Fatalf("done(%d), want done(%d)", i, next)
			}
			next++
			out[i] = batchResult{text: string(text), err: errText(err)}
		})
		if next != len(items) {
			t.Fatalf("done called %d times, want %d", next, len(items))
		}
		return out
	}
	check := func(name string, items []in, got []batchResult) {
		t.Helper()
		for i, it := range items {
			_, want := h.svc.Encrypt(ctx, "acme", it.ectx, it.pt)
			if it.err != nil {
				want = it.err
			}
			if got[i].err != errText(want) {
				t.Errorf("%s item %d: error %q, want %q", name, i, got[i].err, errText(want))
				continue
			}
			if want != nil {
				continue
			}
			pt, err := h.svc.Decrypt(ctx, "acme", it.ectx, got[i].text)
			if err != nil || !bytes.Equal(pt, it.pt) {
				t.Errorf("%s item %d: Decrypt = %q, %v; want %q", name, i, pt, err, it.pt)
			}
		}
	}
	// A batch within the reserved block, and one beyond it.
	check("small", items[:4], run(items[:4]))
	check("large", items, run(items))
}

// TestBatchTenantState: a tenant that is not active refuses every item of
// a batch that has no fault of its own, as it refuses one by one.
func TestBatchTenantState(t *testing.T) {
	ctx := context.Background()
	clock := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	h := newHarness(t, keyring.Config{TenantRefresh: time.Second, Now: clock.Now})
	tn := h.tenant("acme")
	ct := h.encrypt("acme", nil, []byte("x"))
	if _, _, err := h.store.SetTenantState(ctx, "acme", tn.Provider, keyring.StateLocked, "test", clock.Now()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	var encErrs, decErrs []string
	h.svc.EncryptBatch(ctx, "acme", 2, func(i int) (envelope.Context, []byte, error) {
		return []envelope.Context{nil, {"": "bad"}}[i], []byte("x"), nil
	}, func(i int, text []byte, err error) { encErrs = append(encErrs, errText(err)) })
	h.svc.DecryptBatch(ctx, "acme", 3, func(i int) (envelope.Context, []byte, error) {
		return nil, []byte([]string{ct, "garbage", ct}[i]), nil
	}, func(i int, pt []byte, err error) { decErrs = append(decErrs, errText(err)) })
	_, wantInput := h.svc.Encrypt(ctx, "acme", envelope.Context{"": "bad"}, []byte("x"))
	_, wantState := h.svc.Encrypt(ctx, "acme", nil, []byte("x"))
	_, wantDecrypt := h.svc.Decrypt(ctx, "acme", nil, "garbage")
	var se *keyring.TenantStateError
	if !errors.As(wantState, &se) {
		t.Fatalf("Encrypt of a locked tenant: %v", wantState)
	}
	if got, want := strings.Join(encErrs, "|"), errText(wantState)+"|"+errText(wantInput); got != want {
		t.Errorf("EncryptBatch errors %q, want %q", got, want)
	}
	if got, want := strings.Join(decErrs, "|"), errText(wantState)+"|"+errText(wantDecrypt)+"|"+errText(wantState); got != want {
		t.Errorf("DecryptBatch errors %q, want %q", got, want)
	}
}

// TestDecryptBatchAsOneByOne: every item of DecryptBatch gets what
// Decrypt gives it alone, with items under several data keys (runs of
// one key, broken by other keys and by faulty items), other contexts,
// tampered and foreign ciphertexts.
func TestDecryptBatchAsOneByOne(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, keyring.Config{MaxKeyUses: 3, UseBlock: 3})
	h.tenant("acme")
	h.tenant("other")
	type in struct {
		ectx envelope.Context
		text string
		err  error
	}
	var items []in
	for i := range 8 { // three data keys
		ectx := envelope.Context{"n": fmt.Sprint(i % 2)}
		items = append(items, in{ectx: ectx, text: h.encrypt("acme", ectx, fmt.Appendf(nil, "message %d", i))})
	}
	first := items[0]
	tampered := []byte(first.text)
	tampered[len(tampered)-2] ^= 1
	items = append(items[:3:3], append([]in{
		{first.ectx, first.text, nil},                                            // back to the first key
		{envelope.Context{"n": "other"}, first.text, nil},                        // another context
		{first.ectx, string(tampered), nil},                                      // tampered
		{nil, h.encrypt("other", nil, []byte("theirs")), nil},                    // another tenant's
		{first.ectx, first.text, errors.New("the item's own error")},             // its own error
		{envelope.Context{"": "x"}, first.text, nil},                             // a malformed context
		{first.ectx, "not a ciphertext", nil},                                    // malformed
		{items[1].ectx, items[1].text, nil}, {items[3].ectx, items[3].text, nil}, // the first key again
	}, items[3:]...)...)
	var got []batchResult
	var handed [][]byte // the plaintexts as done saw them, zeroed after
	h.svc.DecryptBatch(ctx, "acme", len(items), func(i int) (envelope.Context, []byte, error) {
		return items[i].ectx, []byte(items[i].text), items[i].err
	}, func(i int, pt []byte, err error) {
		if i != len(got) {
			t.Fatalf("done(%d), want done(%d)", i, len(got))
		}
		got = append(got, batchResult{pt: bytes.Clone(pt), err: errText(err)})
		handed = append(handed, pt)
	})
	if len(got) != len(items) {
		t.Fatalf("done called %d times, want %d", len(got), len(items))
	}
	for i, pt := range handed {
		if bytes.ContainsFunc(pt, func(r rune) bool { return r != 0 }) {
			t.Errorf("item %d: the plaintext was not zeroed after done", i)
		}
	}
	for i, it := range items {
		want, err := h.svc.Decrypt(ctx, "acme", it.ectx, it.text)
		if it.err != nil {
			want, err = nil, it.err
		}
		if got[i].err != errText(err) || !bytes.Equal(got[i].pt, want) {
			t.Errorf("item %d: %q, %s; want %q, %s", i, got[i].pt, got[i].err, want, errText(err))
		}
	}
}
