// Package secret holds key material in a type that never prints its contents.
//
// A *Bytes redacts itself in every formatting path a program is likely to use
// (fmt verbs, JSON, text marshalling, log/slog), and its raw bytes are reached
// only through Reveal, so every place that touches plaintext key material can
// be found with `grep -rn 'Reveal()'`. Destroy zeroes the bytes; a destroyed
// value reveals nil.
package secret

import (
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"sync"
)

// Redacted is what a Bytes prints in place of its contents.
const Redacted = "[REDACTED]"

// Bytes is key material. The zero value and a nil *Bytes are empty.
//
// A Bytes may be read concurrently; Destroy must not race with a Reveal whose
// result is still in use (callers that share a Bytes across goroutines guard
// its lifetime themselves, as the keyring's cache does).
type Bytes struct {
	// The bytes sit behind a second pointer: fmt, when it prints a struct
	// that holds a *Bytes with a verb the pointer does not support (%s on
	// a by-value struct), dumps the pointer's target by reflection without
	// calling Format; here that target shows only an address.
	p *payload
}

type payload struct {
	mu sync.Mutex
	b  []byte
}

// New takes ownership of b: the caller must not use b afterwards.
func New(b []byte) *Bytes {
	return &Bytes{p: &payload{b: b}}
}

// Random returns n bytes from crypto/rand.
func Random(n int) (*Bytes, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return nil, fmt.Errorf("secret: reading random bytes: %w", err)
	}
	return New(b), nil
}

// Clone returns an independent copy, which the caller must Destroy separately.
func (s *Bytes) Clone() *Bytes {
	if s == nil {
		return nil
	}
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if s.p.b == nil {
		return New(nil)
	}
	return New(append([]byte(nil), s.p.b...))
}

// Reveal returns the plaintext bytes themselves (not a copy). The slice is
// valid until Destroy; the caller must neither retain nor modify it.
func (s *Bytes) Reveal() []byte {
	if s == nil || s.p == nil {
		return nil
	}
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	return s.p.b
}

// Len is the length of the key material, 0 once destroyed.
func (s *Bytes) Len() int {
	if s == nil || s.p == nil {
		return 0
	}
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	return len(s.p.b)
}

// Destroy overwrites the bytes with zeros and forgets them. It is idempotent.
func (s *Bytes) Destroy() {
	if s == nil || s.p == nil {
		return
	}
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	clear(s.p.b)
	s.p.b = nil
}

// Destroyed reports whether Destroy has been called (or the value was empty).
func (s *Bytes) Destroyed() bool {
	return s.Len() == 0
}

// String implements fmt.Stringer with a redaction.
func (s *Bytes) String() string { return Redacted }

// GoString implements fmt.GoStringer with a redaction.
func (s *Bytes) GoString() string { return "secret.Bytes(" + Redacted + ")" }

// Format implements fmt.Formatter so that every verb, %x and %q included,
// prints the redaction.
func (s *Bytes) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, s.GoString())
		return
	}
	_, _ = io.WriteString(f, Redacted)
}

// MarshalJSON implements json.Marshaler with a redaction.
func (s *Bytes) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler with a redaction.
func (s *Bytes) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// LogValue implements slog.LogValuer with a redaction.
func (s *Bytes) LogValue() slog.Value { return slog.StringValue(Redacted) }

var _ slog.LogValuer = (*Bytes)(nil)
