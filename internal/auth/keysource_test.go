package auth

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func jwksJSON(t testing.TB, keys ...jose.JSONWebKey) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseJWKS(t *testing.T) {
	keys := testKeys()
	es, ed, rs := keys["es256"].public(), keys["eddsa"].public(), keys["rs256"].public()
	noKid := es
	noKid.KeyID = ""
	oct := jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "hmac"}
	tests := []struct {
		name     string
		doc      string
		wantKids []string
		wantErr  string // substring of the error; empty: success
	}{
		{"public keys", string(jwksJSON(t, es, ed, rs)), []string{"es-1", "ed-1", "rs-1"}, ""},
		{"empty set", `{"keys":[]}`, nil, ""},
		{"unknown key type skipped", `{"keys":[{"kty":"XYZ","kid":"x"},` + string(must(json.Marshal(es))) + `]}`, []string{"es-1"}, ""},
		{"X25519 key skipped", `{"keys":[{"kty":"OKP","crv":"X25519","kid":"x","x":"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"}]}`, nil, ""},
		{"key without kid skipped", string(jwksJSON(t, noKid, ed)), []string{"ed-1"}, ""},
		{"private EC key", string(jwksJSON(t, keys["es256"].private)), nil, "private keys are refused"},
		{"private RSA key", string(jwksJSON(t, keys["rs256"].private)), nil, "private keys are refused"},
		{"private Ed25519 key", string(jwksJSON(t, keys["eddsa"].private)), nil, "private keys are refused"},
		{"private key among public ones", string(jwksJSON(t, es, keys["eddsa"].private)), nil, "private keys are refused"},
		{"symmetric key", string(jwksJSON(t, oct)), nil, "symmetric keys are refused"},
		{"RSA 1024", string(jwksJSON(t, keys["rsa1024"].public())), nil, "at least 2048 required"},
		{"duplicate kid", string(jwksJSON(t, es, keys["other"].public())), nil, "two keys with key id"},
		{"not JSON", `{"keys":`, nil, "malformed JWKS"},
		{"no keys member", `{}`, nil, `no "keys"`},
		{"keys not an array", `{"keys":{}}`, nil, "malformed JWKS"},
		{"key not an object", `{"keys":[1]}`, nil, "JWKS key 0"},
		{"EC point off the curve", `{"keys":[{"kty":"EC","crv":"P-256","kid":"e","x":"AQ","y":"AQ"}]}`, nil, "JWKS key 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := parseJWKS([]byte(tt.doc))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseJWKS error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseJWKS: %v", err)
			}
			if got, want := len(set.keys), len(tt.wantKids); got != want {
				t.Errorf("got %d keys, want %d", got, want)
			}
			for _, kid := range tt.wantKids {
				k, err := set.Key(context.Background(), kid)
				if err != nil {
					t.Errorf("Key(%q): %v", kid, err)
				} else if !k.IsPublic() {
					t.Errorf("Key(%q) is not public", kid)
				}
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestStaticKeys(t *testing.T) {
	keys := testKeys()
	noKid := keys["es256"].public()
	noKid.KeyID = ""
	tests := []struct {
		name    string
		keys    []jose.JSONWebKey
		wantErr bool
	}{
		{"public", []jose.JSONWebKey{keys["es256"].public(), keys["eddsa"].public(), keys["rs256"].public()}, false},
		{"private", []jose.JSONWebKey{keys["es256"].private}, true},
		{"symmetric", []jose.JSONWebKey{{Key: []byte("secret"), KeyID: "k"}}, true},
		{"RSA 1024", []jose.JSONWebKey{keys["rsa1024"].public()}, true},
		{"no kid", []jose.JSONWebKey{noKid}, true},
		{"duplicate kid", []jose.JSONWebKey{keys["es256"].public(), keys["other"].public()}, true},
		{"nil key", []jose.JSONWebKey{{KeyID: "k"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := StaticKeys(jose.JSONWebKeySet{Keys: tt.keys})
			if got := err != nil; got != tt.wantErr {
				t.Errorf("StaticKeys error = %v, want error: %v", err, tt.wantErr)
			}
		})
	}
	ks := mustStatic(t, keys["es256"].public())
	if _, err := ks.Key(context.Background(), "nope"); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("Key(unknown) error = %v, want ErrKeyNotFound", err)
	}
}

func TestJWKSFile(t *testing.T) {
	keys := testKeys()
	es, ed := keys["es256"].public(), keys["eddsa"].public()
	path := filepath.Join(t.TempDir(), "jwks.json")
	write := func(data []byte, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	write(jwksJSON(t, es), t0)
	src, err := NewJWKSFile(path)
	if err != nil {
		t.Fatal(err)
	}
	clock := newClock()
	src.now = clock.Now
	src.nextCheck.Store(clock.Now().Add(src.checkEvery).UnixNano())
	ctx := context.Background()
	lookup := func(kid string) error {
		_, err := src.Key(ctx, kid)
		return err
	}
	if err := lookup("es-1"); err != nil {
		t.Fatalf("Key(es-1): %v", err)
	}

	// Rotation: es-1 out, ed-1 in; seen only once the check interval passed.
	write(jwksJSON(t, ed), t0.Add(time.Minute))
	if err := lookup("ed-1"); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("before the check interval: Key(ed-1) error = %v, want ErrKeyNotFound", err)
	}
	clock.Advance(jwksFileCheckEvery)
	if err := lookup("ed-1"); err != nil {
		t.Errorf("after the change: Key(ed-1): %v", err)
	}
	if err := lookup("es-1"); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("after the change: Key(es-1) error = %v, want ErrKeyNotFound", err)
	}

	// A broken file keeps the keys we have, and says why a key is unknown.
	write([]byte(`{"keys":[`), t0.Add(2*time.Minute))
	clock.Advance(jwksFileCheckEvery)
	if err := lookup("ed-1"); err != nil {
		t.Errorf("after a bad rewrite: Key(ed-1): %v, want the old key", err)
	}
	if err := lookup("es-1"); !errors.Is(err, ErrKeyNotFound) || !strings.Contains(err.Error(), "reloading") {
		t.Errorf("after a bad rewrite: Key(es-1) error = %v, want ErrKeyNotFound mentioning the reload", err)
	}

	// A file that is removed keeps the keys too.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	clock.Advance(jwksFileCheckEvery)
	if err := lookup("ed-1"); err != nil {
		t.Errorf("after removal: Key(ed-1): %v, want the old key", err)
	}

	// And a good file again is picked up.
	write(jwksJSON(t, es, ed), t0.Add(3*time.Minute))
	clock.Advance(jwksFileCheckEvery)
	if err := lookup("es-1"); err != nil {
		t.Errorf("after repair: Key(es-1): %v", err)
	}
}

func TestNewJWKSFileErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		path string
	}{
		{"missing", filepath.Join(dir, "missing.json")},
		{"directory", dir},
		{"private key", writeFile("private.json", jwksJSON(t, testKeys()["es256"].private))},
		{"too large", writeFile("large.json", []byte(`{"keys":[],"pad":"`+strings.Repeat("x", MaxJWKSSize)+`"}`))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewJWKSFile(tt.path); err == nil {
				t.Errorf("NewJWKSFile(%s) succeeded, want an error", tt.name)
			}
		})
	}
}

func TestJWKSFileVerify(t *testing.T) {
	es := testKeys()["es256"]
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwksJSON(t, es.public()), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := NewJWKSFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := newTestVerifier(t, src, newClock())
	if _, err := v.Verify(context.Background(), sign(t, es, claimsAt(t0), nil)); err != nil {
		t.Errorf("Verify: %v", err)
	}
}
