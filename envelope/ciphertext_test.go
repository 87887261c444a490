package envelope

import (
	"bytes"
	"errors"
	"testing"
)

// validCiphertext returns the binary form of a ciphertext with an n-byte
// payload (n+TagSize sealed bytes); it need not authenticate.
func validCiphertext(n int) []byte {
	b := make([]byte, ciphertextHeaderSize+n+TagSize)
	b[0], b[1] = Version1, typeCiphertext
	for i := 2; i < len(b); i++ {
		b[i] = byte(i)
	}
	return b
}

func TestSizes(t *testing.T) {
	// The exported sizes are literals so that documentation shows numbers;
	// they must agree with the layout.
	if got, want := MaxCiphertextSize, ciphertextHeaderSize+MaxPlaintextSize+TagSize; got != want {
		t.Errorf("MaxCiphertextSize = %d, want %d", got, want)
	}
	if got, want := MaxPrefixSize, len("#")+maxPrefixTagSize+len("v")+maxPrefixVersionSize+len("#:")+maxPrefixIDSize; got != want {
		t.Errorf("MaxPrefixSize = %d, want %d", got, want)
	}
	if got, want := minCiphertextSize, 46; got != want {
		t.Errorf("minCiphertextSize = %d, want %d", got, want)
	}
}

func TestParseCiphertext(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"empty", nil, false},
		{"one byte", []byte{Version1}, false},
		{"minimum", validCiphertext(0), true},
		{"one short of minimum", validCiphertext(0)[:minCiphertextSize-1], false},
		{"short payload", validCiphertext(5), true},
		{"maximum", validCiphertext(MaxPlaintextSize), true},
		{"one over maximum", validCiphertext(MaxPlaintextSize + 1), false},
		{"version 0", append([]byte{0}, validCiphertext(5)[1:]...), false},
		{"version 2", append([]byte{2}, validCiphertext(5)[1:]...), false},
		{"handle type", append([]byte{Version1, typeHandle}, validCiphertext(5)[2:]...), false},
		{"unknown type", append([]byte{Version1, 0}, validCiphertext(5)[2:]...), false},
		{"handle", Handle{testKeyID}.mustMarshal(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := bytes.Clone(tt.in)
			c, err := ParseCiphertext(tt.in)
			if !bytes.Equal(tt.in, orig) {
				t.Fatal("ParseCiphertext modified its input")
			}
			if got, want := err == nil, tt.ok; got != want {
				t.Fatalf("got ok %v, want %v (err %v)", got, want, err)
			}
			if err != nil {
				checkMalformed(t, err, string(tt.in))
				return
			}
			if got, want := c.KeyID[:], tt.in[2:18]; !bytes.Equal(got, want) {
				t.Errorf("KeyID = %x, want %x", got, want)
			}
			if got, want := c.Nonce[:], tt.in[18:30]; !bytes.Equal(got, want) {
				t.Errorf("Nonce = %x, want %x", got, want)
			}
			if got, want := len(c.Sealed), len(tt.in)-30; got != want {
				t.Errorf("len(Sealed) = %d, want %d", got, want)
			}
			if got, want := cap(c.Sealed), len(c.Sealed); got != want {
				t.Errorf("cap(Sealed) = %d, want %d so appends cannot reach past the input", got, want)
			}
			out, err := c.MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary: %v", err)
			}
			if !bytes.Equal(out, tt.in) {
				t.Error("MarshalBinary(ParseCiphertext(b)) != b")
			}
		})
	}
}

func TestParseCiphertextAliasing(t *testing.T) {
	in := validCiphertext(5)
	spare := append(in, 0xee) // spare capacity past the ciphertext
	in = spare[:len(in)]
	c, err := ParseCiphertext(in)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(c.Sealed, 0x11)
	if got, want := spare[len(in)], byte(0xee); got != want {
		t.Errorf("append to Sealed wrote %#x past the input, want %#x untouched", got, want)
	}
}

func TestCiphertextMarshalBounds(t *testing.T) {
	tests := []struct {
		name   string
		sealed int
		ok     bool
	}{
		{"nil", -1, false},
		{"one short of a tag", TagSize - 1, false},
		{"tag only", TagSize, true},
		{"maximum", MaxPlaintextSize + TagSize, true},
		{"one over maximum", MaxPlaintextSize + TagSize + 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Ciphertext{KeyID: testKeyID, Nonce: testNonce}
			if tt.sealed >= 0 {
				c.Sealed = make([]byte, tt.sealed)
			}
			b, err := c.MarshalBinary()
			if got, want := err == nil, tt.ok; got != want {
				t.Fatalf("got ok %v, want %v (err %v)", got, want, err)
			}
			if err != nil {
				checkMalformed(t, err, "")
				return
			}
			if got, want := len(b), ciphertextHeaderSize+tt.sealed; got != want {
				t.Fatalf("len = %d, want %d", got, want)
			}
			back, err := ParseCiphertext(b)
			if err != nil {
				t.Fatalf("ParseCiphertext(MarshalBinary()): %v", err)
			}
			if back.KeyID != c.KeyID || back.Nonce != c.Nonce || !bytes.Equal(back.Sealed, c.Sealed) {
				t.Error("ParseCiphertext(MarshalBinary(c)) != c")
			}
		})
	}
}

func TestCiphertextAppendBinary(t *testing.T) {
	c := &Ciphertext{KeyID: testKeyID, Nonce: testNonce, Sealed: make([]byte, TagSize+3)}
	want, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.AppendBinary([]byte("xy"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append([]byte("xy"), want...)) {
		t.Errorf("AppendBinary = %x, want %x after \"xy\"", got, want)
	}
}

func (h Handle) mustMarshal() []byte {
	b, err := h.MarshalBinary()
	if err != nil {
		panic(err)
	}
	return b
}

func TestHandle(t *testing.T) {
	valid := Handle{testKeyID}.mustMarshal()
	if got, want := valid, append([]byte{Version1, typeHandle}, testKeyID[:]...); !bytes.Equal(got, want) {
		t.Fatalf("MarshalBinary = %x, want %x", got, want)
	}
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"valid", valid, true},
		{"zero key id", Handle{}.mustMarshal(), true},
		{"empty", nil, false},
		{"one short", valid[:handleSize-1], false},
		{"one over", append(bytes.Clone(valid), 0), false},
		{"version 2", append([]byte{2}, valid[1:]...), false},
		{"ciphertext type", append([]byte{Version1, typeCiphertext}, valid[2:]...), false},
		{"ciphertext", validCiphertext(0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseHandle(tt.in)
			if got, want := err == nil, tt.ok; got != want {
				t.Fatalf("got ok %v, want %v (err %v)", got, want, err)
			}
			if err != nil {
				checkMalformed(t, err, string(tt.in))
				return
			}
			if got := h.mustMarshal(); !bytes.Equal(got, tt.in) {
				t.Errorf("MarshalBinary(ParseHandle(b)) = %x, want %x", got, tt.in)
			}
		})
	}
}

func TestParseErrorsNameTheProblem(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"short", second(ParseCiphertext(validCiphertext(0)[:20])), "envelope: malformed input: ciphertext is 20 bytes, want at least 46"},
		{"version", second(ParseCiphertext([]byte{9, 1})), "envelope: malformed input: ciphertext has an unsupported version"},
		{"handle for ciphertext", second(ParseCiphertext(Handle{}.mustMarshal())), "envelope: malformed input: not a ciphertext: the type byte names a handle"},
		{"ciphertext for handle", second(ParseHandle(validCiphertext(0))), "envelope: malformed input: not a handle: the type byte names a ciphertext"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatal("got nil error")
			}
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if !errors.Is(tt.err, ErrMalformed) {
				t.Error("error does not wrap ErrMalformed")
			}
		})
	}
}
