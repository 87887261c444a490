//go:build cgo

package pkcs11

import (
	"testing"
)

func TestSeeLateTokens(t *testing.T) {
	a := softHSM(t)
	h, err := Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	b := softHSM(t)
	h2, err := Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
}
