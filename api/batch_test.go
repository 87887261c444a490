package api

import (
	"encoding/json"
	"testing"
)

// TestBatchItemJSON: a batch answer item is the result's own fields, or
// {"error": {...}}, and reads back as what was written.
func TestBatchItemJSON(t *testing.T) {
	tests := []struct {
		name string
		item BatchItem[EncryptResponse]
		want string
	}{
		{"result", BatchItem[EncryptResponse]{Result: &EncryptResponse{Ciphertext: "#QLIKv1#:acme:AQ"}}, `{"ciphertext":"#QLIKv1#:acme:AQ"}`},
		{"error", BatchItem[EncryptResponse]{Error: &Error{Code: CodeDecryptionFailed, Title: "Decryption failed", Status: "400"}},
			`{"error":{"code":"Encryption-09","title":"Decryption failed","status":"400"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.item)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(b); got != tt.want {
				t.Errorf("Marshal = %s, want %s", got, tt.want)
			}
			var back BatchItem[EncryptResponse]
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.item.Result != nil && (back.Result == nil || *back.Result != *tt.item.Result || back.Error != nil):
				t.Errorf("Unmarshal = %+v, want the result", back)
			case tt.item.Error != nil && (back.Error == nil || back.Error.Code != tt.item.Error.Code || back.Result != nil):
				t.Errorf("Unmarshal = %+v, want the error", back)
			}
		})
	}
}
