package internalkms

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestNothingPrintsKeyMaterial formats the types that hold keys every way a
// log line or a debug dump might, and looks for any key in any encoding.
func TestNothingPrintsKeyMaterial(t *testing.T) {
	roots := testRoots(t, 1, 2)
	s := New(roots, newMemStore())
	_, _ = wrapOne(t, s, "t1")
	p := s.ForTenant("t1")

	var keys [][]byte
	for _, v := range roots.versions {
		keys = append(keys, v.key.Reveal())
	}
	for _, k := range cachedKeys(s, "t1") {
		keys = append(keys, k.Reveal())
	}
	if len(keys) != 3 {
		t.Fatalf("collected %d keys, want 3", len(keys))
	}

	values := map[string]any{"*RootKeys": roots, "RootKeys": *roots, "*Service": s, "Service": *s, "Provider": p}
	var outputs []string
	for name, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
			outputs = append(outputs, name+" "+verb+": "+fmt.Sprintf(verb, v))
		}
		j, err := json.Marshal(v)
		outputs = append(outputs, fmt.Sprintf("%s json: %s %v", name, j, err))
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("dump", "v", v)
		outputs = append(outputs, name+" slog: "+buf.String())
	}
	for _, out := range outputs {
		for _, k := range keys {
			for _, enc := range []string{
				string(k),
				hex.EncodeToString(k),
				strings.ToUpper(hex.EncodeToString(k)),
				base64.StdEncoding.EncodeToString(k),
				base64.RawURLEncoding.EncodeToString(k),
				fmt.Sprint(k), // [1 2 3 ...]
				fmt.Sprintf("%q", k),
			} {
				if strings.Contains(out, enc) {
					t.Errorf("key material printed by %s", out)
				}
			}
		}
	}
	if got := fmt.Sprint(roots); got != "internalkms.RootKeys{current: 2, versions: [1 2]}" {
		t.Errorf("RootKeys prints %q", got)
	}
}
