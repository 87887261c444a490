package kmip

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/internal/kms/kmip/ttlv"
)

// FuzzResponse: whatever a server sends, reading it as the answer to each
// operation, and its payload with every payload parser, never panics, and a refusal is a *ResultError or an
// *EndpointError. The seeds are the answers of a pykmip-server.
func FuzzResponse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/fuzz/FuzzResponse/pykmip-*")
	if len(seeds) < 5 {
		f.Fatalf("seed corpus missing: %d pykmip answers in testdata/fuzz/FuzzResponse, want at least 5", len(seeds))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		it, err := ttlv.Decode(b)
		if err != nil {
			return
		}
		for _, op := range []Operation{OpDiscoverVersions, OpQuery, OpGetAttributes, OpEncrypt, OpDecrypt} {
			p, err := parseResponse(op, "127.0.0.1:5696", it)
			var re *ResultError
			var ee *EndpointError
			if err != nil && !errors.As(err, &re) && !errors.As(err, &ee) {
				t.Fatalf("parseResponse(%v) error %T", op, err)
			}
			// The payload parsers, whatever the operation.
			_, _ = parseVersions(p)
			_ = parseServerInfo(p)
			_, _ = parseAttributes(p)
			_, _ = parseSealed(p, 32)
			if pt, err := parsePlaintext(p, 32); err == nil {
				pt.Destroy()
			}
		}
	})
}
