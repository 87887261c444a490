package auth

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestBearerToken(t *testing.T) {
	const jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzIn0.c2ln"
	tests := []struct {
		name    string
		headers []string
		want    string // token, or the rejection reason if wantErr
		wantErr bool
	}{
		{"bearer", []string{"Bearer " + jwt}, jwt, false},
		{"lower-case scheme", []string{"bearer " + jwt}, jwt, false},
		{"upper-case scheme", []string{"BEARER " + jwt}, jwt, false},
		{"b64token padding", []string{"Bearer abc+/~_-.=="}, "abc+/~_-.==", false},
		{"no header", nil, reasonMissingToken, true},
		{"empty header", []string{""}, reasonMalformedHeader, true},
		{"two headers", []string{"Bearer " + jwt, "Bearer " + jwt}, reasonMalformedHeader, true},
		{"basic", []string{"Basic dXNlcjpwYXNz"}, reasonMalformedHeader, true},
		{"scheme only", []string{"Bearer"}, reasonMalformedHeader, true},
		{"empty token", []string{"Bearer "}, reasonMalformedHeader, true},
		{"two spaces", []string{"Bearer  " + jwt}, reasonMalformedHeader, true},
		{"tab", []string{"Bearer\t" + jwt}, reasonMalformedHeader, true},
		{"trailing space", []string{"Bearer " + jwt + " "}, reasonMalformedHeader, true},
		{"two tokens", []string{"Bearer " + jwt + " " + jwt}, reasonMalformedHeader, true},
		{"comma", []string{"Bearer " + jwt + ",x"}, reasonMalformedHeader, true},
		{"padding in the middle", []string{"Bearer ab=cd"}, reasonMalformedHeader, true},
		{"only padding", []string{"Bearer =="}, reasonMalformedHeader, true},
		{"Bearerx", []string{"Bearerx " + jwt}, reasonMalformedHeader, true},
		{"too large", []string{"Bearer " + strings.Repeat("a", MaxTokenSize+1)}, reasonTooLarge, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/api/v1/encryption/status", nil)
			for _, h := range tt.headers {
				r.Header.Add("Authorization", h)
			}
			got, err := BearerToken(r)
			if !tt.wantErr {
				if err != nil || got != tt.want {
					t.Errorf("BearerToken = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("BearerToken = %q, want an error", got)
			}
			if reason := reasonOf(t, err); reason != tt.want {
				t.Errorf("reason = %q, want %q", reason, tt.want)
			}
		})
	}
}
