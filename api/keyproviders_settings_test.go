package api

import (
	"encoding/json"
	"testing"
)

// TestKeyProviderSettingsMembers: a kind's settings are written as members
// of their own beside the Qlik fields, and a provider without any is
// written as before.
func TestKeyProviderSettingsMembers(t *testing.T) {
	p := KeyProvider{ARN: "kmip://h:5696/k", KeyProvider: "KMIP", ReplicaKeys: []ReplicaKey{}}
	plain, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(plain, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["Settings"]; ok || len(m) != 13 {
		t.Errorf("without settings: %s", plain)
	}
	p.Settings = map[string]json.RawMessage{"kmip": json.RawMessage(`{"endpoints":["a:5696"]}`)}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	m = nil
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if got := string(m["kmip"]); got != `{"endpoints":["a:5696"]}` || string(m["keyprovider"]) != `"KMIP"` {
		t.Errorf("with settings: %s", b)
	}
}
