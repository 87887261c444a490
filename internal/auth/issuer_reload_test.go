package auth

import (
	"context"
	"testing"
	"time"
)

// TestIssuerSeesRotationByAnotherProcess: the server's issuer picks up a key
// that the CLI rotated in, so that tokens signed with it verify, and the
// key it replaced stays published.
func TestIssuerSeesRotationByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	server, err := LoadOrCreateIssuer(dir, "tc")
	if err != nil {
		t.Fatal(err)
	}
	cli, err := LoadOrCreateIssuer(dir, "tc")
	if err != nil {
		t.Fatal(err)
	}
	old := cli.JWKS().Keys[0].KeyID
	if err := cli.Rotate(time.Hour); err != nil {
		t.Fatal(err)
	}
	fresh := cli.JWKS().Keys[0].KeyID
	if fresh == old {
		t.Fatal("Rotate kept the key id")
	}
	for _, kid := range []string{fresh, old} {
		if _, err := server.KeySource().Key(context.Background(), kid); err != nil {
			t.Errorf("server's key source: Key(%s) = %v", kid, err)
		}
	}
	if got := len(server.JWKS().Keys); got != 2 {
		t.Errorf("server publishes %d keys after the rotation, want 2", got)
	}
}
