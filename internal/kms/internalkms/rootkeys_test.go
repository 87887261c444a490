package internalkms

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestParseRootKeys(t *testing.T) {
	k1, k2 := randomKeyB64(), randomKeyB64()
	tests := []struct {
		name     string
		in       string
		current  uint32
		versions []uint32
	}{
		{"one", "1:" + k1, 1, []uint32{1}},
		{"two", "1:" + k1 + ",2:" + k2, 2, []uint32{1, 2}},
		{"highest is current whatever the order", "7:" + k2 + ",3:" + k1, 7, []uint32{3, 7}},
		{"spaces around entries", " 1 : " + k1 + " ,\t2:" + k2 + "\n", 2, []uint32{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRootKeys(tt.in)
			if err != nil {
				t.Fatalf("ParseRootKeys: %v", err)
			}
			defer r.Destroy()
			if got := r.Current(); got != tt.current {
				t.Errorf("Current() = %d, want %d", got, tt.current)
			}
			if got := r.Versions(); !slices.Equal(got, tt.versions) {
				t.Errorf("Versions() = %v, want %v", got, tt.versions)
			}
		})
	}
	// The keys are the decoded bytes.
	r, _ := ParseRootKeys("1:" + k1)
	if got := base64.StdEncoding.EncodeToString(r.key(1).Reveal()); got != k1 {
		t.Error("ParseRootKeys did not keep the decoded key")
	}
}

func TestParseRootKeysRefusesBadInput(t *testing.T) {
	k := randomKeyB64()
	short := base64.StdEncoding.EncodeToString(make([]byte, 16))
	zero := base64.StdEncoding.EncodeToString(make([]byte, keySize))
	tests := []struct {
		name, in, wantErr string
	}{
		{"empty", "", "empty value"},
		{"blank", "  ", "empty value"},
		{"no version", k, `entry 1 has no "version:" prefix`},
		{"empty version", ":" + k, "entry 1: version is not an integer"},
		{"version zero", "0:" + k, "entry 1: version is not an integer from 1 to 4294967295"},
		{"negative version", "-1:" + k, "entry 1: version is not an integer"},
		{"version too large", "4294967296:" + k, "entry 1: version is not an integer"},
		{"version not decimal", "0x1:" + k, "entry 1: version is not an integer"},
		{"empty entry", "1:" + k + ",,2:" + k, "entry 2 is empty"},
		{"trailing comma", "1:" + k + ",", "entry 2 is empty"},
		{"empty key", "1:", "key is 0 bytes, want 32"},
		{"short key", "1:" + short, "root key version 1: key is 16 bytes, want 32"},
		{"long key", "1:" + base64.StdEncoding.EncodeToString(make([]byte, 33)), "key is 33 bytes"},
		{"all-zero key", "1:" + zero, "key is all zeros"},
		{"not base64", "1:" + strings.Repeat("!", 44), "entry 1 (version 1): key is not standard base64"},
		{"url-safe base64", "1:" + strings.ReplaceAll(strings.ReplaceAll(k, "+", "-"), "/", "_") + "-_", "not standard base64"},
		{"unpadded base64", "1:" + strings.TrimRight(k, "="), "not standard base64"},
		{"duplicate version", "1:" + k + ",1:" + randomKeyB64(), "root key version 1 appears twice"},
		{"second entry bad", "1:" + k + ",2:" + short, "root key version 2: key is 16 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRootKeys(tt.in)
			if err == nil {
				r.Destroy()
				t.Fatalf("ParseRootKeys(%s) succeeded, want an error", tt.name)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), k) || strings.Contains(err.Error(), short[:8]) {
				t.Errorf("error %q contains key text", err)
			}
		})
	}
}

func TestLoadOrCreateRootKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root-keys.json")
	r, err := LoadOrCreateRootKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("new root key file has mode %#o, want 0600", perm)
	}
	if r.Current() != 1 || !slices.Equal(r.Versions(), []uint32{1}) {
		t.Errorf("new root keys: %v, want version 1 current", r)
	}

	// The documented format, field by field.
	data, _ := os.ReadFile(path)
	var f struct {
		Current  uint32 `json:"current"`
		Versions []struct {
			Version   uint32 `json:"version"`
			Key       string `json:"key"`
			CreatedAt string `json:"createdAt"`
		} `json:"versions"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("root key file is not the documented JSON: %v", err)
	}
	if f.Current != 1 || len(f.Versions) != 1 || f.Versions[0].Version != 1 || f.Versions[0].CreatedAt == "" {
		t.Errorf("root key file = %+v, want current 1 and one version 1 with createdAt", f)
	}
	if raw, err := base64.StdEncoding.DecodeString(f.Versions[0].Key); err != nil || len(raw) != keySize {
		t.Errorf("root key file key is not base64 of %d bytes", keySize)
	}

	// Loading again yields the same key, and writes nothing.
	again, err := LoadOrCreateRootKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(again.key(1).Reveal()) != string(r.key(1).Reveal()) {
		t.Error("second load returned another key")
	}
	if data2, _ := os.ReadFile(path); string(data2) != string(data) {
		t.Error("second load rewrote the file")
	}
	assertOnlyFile(t, path)
}

// assertOnlyFile checks that nothing but path (no temporary or lock file)
// is left in its directory.
func assertOnlyFile(t *testing.T, path string) {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if e.Name() != filepath.Base(path) {
			t.Errorf("stray file %s left beside the root key file", e.Name())
		}
	}
}

func TestLoadOrCreateRootKeyFileConcurrently(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root-keys.json")
	const n = 8
	keys := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := LoadOrCreateRootKeyFile(path)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = string(r.key(1).Reveal())
		})
	}
	wg.Wait()
	for i := range keys {
		if keys[i] != keys[0] {
			t.Fatal("processes starting together ended up with different root keys")
		}
	}
	assertOnlyFile(t, path)
}

func TestRootKeyFileRefusesInsecureMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "root-keys.json")
	if _, err := LoadOrCreateRootKeyFile(path); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660, 0o666, 0o620, 0o601} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		r, err := LoadOrCreateRootKeyFile(path)
		if err == nil {
			r.Destroy()
			t.Errorf("mode %#o: root key file accepted", mode)
			continue
		}
		if !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("mode %#o: error %q does not tell the operator to chmod 600", mode, err)
		}
		if _, err := RotateRootKeyFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %#o: RotateRootKeyFile = %v, want the same refusal", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateRootKeyFile(path); err != nil {
			t.Errorf("mode %#o refused: %v", mode, err)
		}
	}
}

func TestRootKeyFileRefusesBadContent(t *testing.T) {
	k1, k2 := randomKeyB64(), randomKeyB64()
	v := func(n, key string) string { return `{"version": ` + n + `, "key": "` + key + `"}` }
	tests := []struct {
		name, content, wantErr string
	}{
		{"empty", "", "not a root key file"},
		{"not JSON", "1:" + k1, "not a root key file"},
		{"unknown field", `{"current": 1, "versions": [` + v("1", k1) + `], "retired": []}`, `unknown field "retired"`},
		{"trailing data", `{"current": 1, "versions": [` + v("1", k1) + `]} {}`, "data after the JSON object"},
		{"no versions", `{"current": 1, "versions": []}`, "no root key versions"},
		{"current missing", `{"current": 2, "versions": [` + v("1", k1) + `]}`, "current root key version 2 is not among the versions [1]"},
		{"no current", `{"versions": [` + v("1", k1) + `]}`, "current root key version 0"},
		{"version zero", `{"current": 1, "versions": [` + v("0", k1) + `, ` + v("1", k2) + `]}`, "versions start at 1"},
		{"duplicate version", `{"current": 1, "versions": [` + v("1", k1) + `, ` + v("1", k2) + `]}`, "appears twice"},
		{"short key", `{"current": 1, "versions": [` + v("1", base64.StdEncoding.EncodeToString(make([]byte, 15))) + `]}`, "key is 15 bytes, want 32"},
		{"bad base64", `{"current": 1, "versions": [` + v("1", "!!!!") + `]}`, "not a root key file"},
		{"negative version", `{"current": 1, "versions": [` + v("-1", k1) + `]}`, "not a root key file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "root-keys.json")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			r, err := LoadOrCreateRootKeyFile(path)
			if err == nil {
				r.Destroy()
				t.Fatal("bad root key file accepted")
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
				t.Errorf("error = %q, want it to name the file and contain %q", err, tt.wantErr)
			}
			for _, k := range []string{k1, k2} {
				if strings.Contains(err.Error(), k[:16]) {
					t.Errorf("error %q contains key text", err)
				}
			}
			// A broken file is never replaced by a fresh key.
			if data, _ := os.ReadFile(path); string(data) != tt.content {
				t.Error("the bad file was rewritten")
			}
			if _, err := RotateRootKeyFile(path); err == nil {
				t.Error("RotateRootKeyFile built on a bad file")
			}
		})
	}
}

func TestRootKeyFileMustBeRegular(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreateRootKeyFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("LoadOrCreateRootKeyFile(a directory) = %v, want a 'not a regular file' error", err)
	}
	if _, err := LoadOrCreateRootKeyFile(filepath.Join(dir, "missing", "root-keys.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadOrCreateRootKeyFile in a missing directory = %v, want fs.ErrNotExist", err)
	}
}

func TestRotateRootKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root-keys.json")
	r1, err := LoadOrCreateRootKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for want := uint32(2); want <= 3; want++ {
		v, err := RotateRootKeyFile(path)
		if err != nil || v != want {
			t.Fatalf("RotateRootKeyFile = %d, %v; want %d, nil", v, err, want)
		}
	}
	r, err := LoadOrCreateRootKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Current() != 3 || !slices.Equal(r.Versions(), []uint32{1, 2, 3}) {
		t.Errorf("after two rotations: %v, want versions [1 2 3], current 3", r)
	}
	if string(r.key(1).Reveal()) != string(r1.key(1).Reveal()) {
		t.Error("rotation changed version 1's key")
	}
	if string(r.key(2).Reveal()) == string(r.key(3).Reveal()) {
		t.Error("rotation reused a key")
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Errorf("rotated file has mode %#o, want 0600", info.Mode().Perm())
	}
	assertOnlyFile(t, path)

	// A rotation in progress (or a crashed one) blocks another.
	if err := os.WriteFile(path+".lock", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := RotateRootKeyFile(path); err == nil || !strings.Contains(err.Error(), "another rotation") {
		t.Errorf("RotateRootKeyFile with a lock present = %v, want a refusal naming the lock", err)
	}
	if r, _ := LoadOrCreateRootKeyFile(path); r.Current() != 3 {
		t.Error("a refused rotation changed the file")
	}
	if _, err := RotateRootKeyFile(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("RotateRootKeyFile of a missing file = %v, want fs.ErrNotExist", err)
	}
}
