package envelope

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
)

func TestContextCanonical(t *testing.T) {
	tests := []struct {
		name string
		ctx  Context
		want string // hex
	}{
		{"nil", nil, "00000000"},
		{"empty", Context{}, "00000000"},
		{"one pair", Context{"a": "bc"}, "00000001" + "00000001" + "61" + "00000002" + "6263"},
		{"empty value", Context{"k": ""}, "00000001" + "00000001" + "6b" + "00000000"},
		{"sorted bytewise", Context{"b": "2", "a": "1", "B": "0"},
			"00000003" + "00000001" + "42" + "00000001" + "30" + "00000001" + "61" + "00000001" + "31" + "00000001" + "62" + "00000001" + "32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ctx.Canonical()
			if err != nil {
				t.Fatalf("Canonical: %v", err)
			}
			if want := mustHex(t, tt.want); !bytes.Equal(got, want) {
				t.Errorf("Canonical = %x, want %x", got, want)
			}
			digest, err := tt.ctx.Digest()
			if err != nil {
				t.Fatalf("Digest: %v", err)
			}
			if want := sha256.Sum256(append([]byte("tenantcrypt/context/v1\x00"), got...)); digest != want {
				t.Errorf("Digest = %x, want %x", digest, want)
			}
		})
	}
}

func TestContextOrderIndependent(t *testing.T) {
	// Maps iterate in random order: build the same context many times and
	// in different insertion orders; the encoding must not change.
	want, err := ctxOfSize(MaxContextPairs).Canonical()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		c := Context{}
		src := ctxOfSize(MaxContextPairs)
		for k, v := range src {
			c[k] = v
		}
		got, err := c.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("round %d: Canonical differs between equal contexts", i)
		}
	}
}

func TestContextUnambiguous(t *testing.T) {
	pairs := [][2]Context{
		{{"a": "bc"}, {"ab": "c"}},
		{{"a": "b"}, {"a": "b", "c": ""}},
		{{"a": ""}, {}},
		{{"a\x00": "b"}, {"a": "\x00b"}},
	}
	for _, p := range pairs {
		c1, err1 := p[0].Canonical()
		c2, err2 := p[1].Canonical()
		if err1 != nil || err2 != nil {
			t.Fatalf("Canonical: %v, %v", err1, err2)
		}
		if bytes.Equal(c1, c2) {
			t.Errorf("%v and %v have the same canonical form %x", p[0], p[1], c1)
		}
		d1, _ := p[0].Digest()
		d2, _ := p[1].Digest()
		if d1 == d2 {
			t.Errorf("%v and %v have the same digest", p[0], p[1])
		}
	}
}

func TestContextBounds(t *testing.T) {
	tests := []struct {
		name string
		ctx  Context
		ok   bool
	}{
		{"pairs at limit", ctxOfSize(MaxContextPairs), true},
		{"pairs over limit", ctxOfSize(MaxContextPairs + 1), false},
		{"key at limit", Context{strings.Repeat("k", MaxContextKeySize): "v"}, true},
		{"key over limit", Context{strings.Repeat("k", MaxContextKeySize+1): "v"}, false},
		{"value at limit", Context{"k": strings.Repeat("v", MaxContextValueSize)}, true},
		{"value over limit", Context{"k": strings.Repeat("v", MaxContextValueSize+1)}, false},
		{"empty key", Context{"": "v"}, false},
		{"empty value", Context{"k": ""}, true},
		{"utf-8", Context{"clé": "värde ✓"}, true},
		{"key not utf-8", Context{"k\xff": "v"}, false},
		{"value not utf-8", Context{"k": "\xc3"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for name, err := range map[string]error{
				"Validate":  tt.ctx.Validate(),
				"Canonical": second(tt.ctx.Canonical()),
				"Digest":    second(tt.ctx.Digest()),
				"Seal":      second(Seal(mustAEAD(t, testKey), "acme", testKeyID, tt.ctx, nil)),
				"AD":        second(AssociatedData("acme", testKeyID, tt.ctx)),
			} {
				if got, want := err == nil, tt.ok; got != want {
					t.Fatalf("%s: got ok %v, want %v (err %v)", name, got, want, err)
				}
				if err != nil {
					checkMalformed(t, err, "")
				}
			}
		})
	}
}

func second[T any](_ T, err error) error { return err }
