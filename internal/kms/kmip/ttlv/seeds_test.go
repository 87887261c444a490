package ttlv

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestSeedsDecode: the captured pykmip messages decode, so that the
// fuzzer starts from valid messages.
func TestSeedsDecode(t *testing.T) {
	seeds, _ := filepath.Glob("testdata/fuzz/FuzzDecode/pykmip-*")
	for _, path := range seeds {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lit := strings.TrimSpace(strings.TrimPrefix(string(raw), "go test fuzz v1\n"))
		lit = strings.TrimSuffix(strings.TrimPrefix(lit, "[]byte("), ")")
		s, err := strconv.Unquote(lit)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if _, err := Decode([]byte(s)); err != nil {
			t.Errorf("%s: %v", filepath.Base(path), err)
		}
	}
}
