package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestNothingPrintsTheBytes(t *testing.T) {
	raw := []byte("super-secret-key-material-012345")
	s := New(bytes.Clone(raw))
	holder := struct {
		Key  *Bytes
		Name string
	}{s, "k"}
	// An unexported field can't have its methods called by fmt: with a
	// verb a pointer does not support, fmt dumps the target by reflection.
	hidden := struct {
		key  *Bytes
		name string
	}{s, "k"}

	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	logger.Info("key", "key", s, "holder", holder)
	text := slog.New(slog.NewTextHandler(&logs, nil))
	text.Info("key", "key", s)

	jsonOut, err := json.Marshal(holder)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v": fmt.Sprintf("%v", s), "%+v": fmt.Sprintf("%+v", s), "%#v": fmt.Sprintf("%#v", s),
		"%s": fmt.Sprintf("%s", s), "%x": fmt.Sprintf("%x", s), "%X": fmt.Sprintf("%X", s),
		"%q": fmt.Sprintf("%q", s), "%d": fmt.Sprintf("%d", s), "struct %+v": fmt.Sprintf("%+v", holder),
		"struct %#v": fmt.Sprintf("%#v", holder), "json": string(jsonOut), "slog": logs.String(),
		"String": s.String(),
	}
	// Verbs that do not fit the struct: vet would refuse them as constants.
	for _, verb := range []string{"%s", "%q", "%x", "%X", "%d", "%v", "%+v", "%#v"} {
		outputs["hidden "+verb] = fmt.Sprintf(verb, hidden)
	}
	for name, out := range outputs {
		for _, form := range []string{string(raw), fmt.Sprintf("%x", raw), fmt.Sprintf("%X", raw), fmt.Sprint(raw)} {
			if strings.Contains(out, form) {
				t.Errorf("%s shows the key: %s", name, out)
			}
		}
	}
	if !strings.Contains(outputs["%v"], Redacted) || !strings.Contains(outputs["json"], Redacted) || !strings.Contains(outputs["slog"], Redacted) {
		t.Errorf("redaction marker missing: %v", outputs)
	}
}

func TestDestroyZeroes(t *testing.T) {
	buf := []byte("0123456789abcdef0123456789abcdef")
	s := New(buf)
	clone := s.Clone()
	s.Destroy()
	if !bytes.Equal(buf, make([]byte, len(buf))) {
		t.Errorf("backing array not zeroed: %q", buf)
	}
	if got := s.Reveal(); got != nil {
		t.Errorf("Reveal after Destroy = %v, want nil", got)
	}
	if !s.Destroyed() || s.Len() != 0 {
		t.Errorf("Destroyed() = %v, Len() = %d after Destroy", s.Destroyed(), s.Len())
	}
	if got := string(clone.Reveal()); got != "0123456789abcdef0123456789abcdef" {
		t.Errorf("Clone shared the destroyed bytes: %q", got)
	}
	s.Destroy() // idempotent
	var nilBytes *Bytes
	nilBytes.Destroy()
	if nilBytes.Len() != 0 || nilBytes.Reveal() != nil || nilBytes.String() != Redacted {
		t.Errorf("nil *Bytes misbehaves")
	}
}

func TestRandom(t *testing.T) {
	a, err := Random(32)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Random(32)
	if a.Len() != 32 || bytes.Equal(a.Reveal(), b.Reveal()) {
		t.Errorf("Random(32): len %d, equal to another draw: %v", a.Len(), bytes.Equal(a.Reveal(), b.Reveal()))
	}
}
