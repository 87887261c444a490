package testkms

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// The ids of the keys every server starts with. Their key material is fixed
// (see keyMaterial), so that a ciphertext made by one server decrypts in any
// other server that holds the same key, in this run or a later one.
const (
	// SymmetricKeyID is a single-Region SYMMETRIC_DEFAULT key, enabled.
	// StartPair creates it in the primary Region only.
	SymmetricKeyID = "0b6c1a3e-5f1d-4c2a-9e8b-7d6f5a4b3c21"

	// MultiRegionKeyID is a SYMMETRIC_DEFAULT multi-Region key, enabled, with
	// the same key material in every Region (StartPair creates it in both).
	// local-kms itself knows nothing of multi-Region keys: see
	// Proxy.SetMultiRegion for the DescribeKey metadata.
	MultiRegionKeyID = "mrk-7e5d0c9b8a6f4e3d2c1b0a9f8e7d6c5b"

	// SecondMultiRegionKeyID is another multi-Region key like
	// MultiRegionKeyID, with unrelated key material: the target of a
	// migration from one multi-Region key to another.
	SecondMultiRegionKeyID = "mrk-4c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f"

	// AsymmetricKeyID is an RSA_2048 key with KeyUsage ENCRYPT_DECRYPT: an
	// encryption key that still cannot make data keys, for tests of
	// refusing keys that are not SYMMETRIC_DEFAULT. StartPair creates it in
	// the primary Region only.
	AsymmetricKeyID = "3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a"
)

// seedKey is one key of a seed file.
type seedKey struct {
	id          string
	description string
	rsa         bool // RSA_2048 ENCRYPT_DECRYPT; otherwise SYMMETRIC_DEFAULT
	multiRegion bool
}

// seedKeys are the keys of every server, in seed file order.
var seedKeys = []seedKey{
	{id: SymmetricKeyID, description: "testkms single-Region symmetric key"},
	{id: MultiRegionKeyID, description: "testkms multi-Region symmetric key", multiRegion: true},
	{id: SecondMultiRegionKeyID, description: "testkms second multi-Region symmetric key", multiRegion: true},
	{id: AsymmetricKeyID, description: "testkms RSA_2048 encryption key", rsa: true},
}

// keyMaterial returns the fixed 256-bit key material of a symmetric seeded
// key, derived from its id. It is public test material, never a secret.
func keyMaterial(keyID string) [32]byte {
	return sha256.Sum256([]byte("tenantcrypt/internal/testkms key material\x00" + keyID))
}

// seedYAML returns a seed file in local-kms's format (see its README) with
// the keys for which include returns true.
func seedYAML(include func(seedKey) bool) string {
	var sym, asym strings.Builder
	for _, k := range seedKeys {
		if !include(k) {
			continue
		}
		if k.rsa {
			fmt.Fprintf(&asym, "      - Metadata:\n          KeyId: %s\n          KeyUsage: ENCRYPT_DECRYPT\n          Description: %s\n        PrivateKeyPem: |\n",
				k.id, strconv.Quote(k.description))
			for _, line := range strings.Split(rsaTestKeyPEM(), "\n") {
				fmt.Fprintf(&asym, "          %s\n", line)
			}
			continue
		}
		m := keyMaterial(k.id)
		fmt.Fprintf(&sym, "      - Metadata:\n          KeyId: %s\n          Description: %s\n        BackingKeys:\n          - %s\n",
			k.id, strconv.Quote(k.description), hex.EncodeToString(m[:]))
	}
	var b strings.Builder
	b.WriteString("Keys:\n")
	if sym.Len() > 0 {
		b.WriteString("  Symmetric:\n    Aes:\n")
		b.WriteString(sym.String())
	}
	if asym.Len() > 0 {
		b.WriteString("  Asymmetric:\n    Rsa:\n")
		b.WriteString(asym.String())
	}
	return b.String()
}

// rsaTestKeyPEM returns the private key of AsymmetricKeyID in PKCS #8 PEM
// form, as local-kms's seed file wants it. It is a fixed key made for these
// tests; the "TESTING KEY" label (as in the Go standard library's tests)
// keeps secret scanners from flagging it.
func rsaTestKeyPEM() string {
	return strings.ReplaceAll(rsaTestKey, "TESTING KEY", "PRIVATE KEY")
}

const rsaTestKey = `-----BEGIN TESTING KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCxWZz0MnI2/q5g
dikXD0XOunufVtAWNsKYlv+Ayi1WzlMiFSV6TOtcNz7MtKjs9NM7CuUecF9IkAlp
Nv9cNHnl5Qiqa6SQzr+mI6JanzqghXY/tBr2UZlGdruqimjVI0AXtgnSaT2OI5Iw
XzjdmVoTl/d5qWG/Wb6TMAVSlHdORDk+ieUzIUvT8BrTbs1C6khiqdeMSPferCT3
EZZGh7TByxPn8qEc3JRh0JhoZVear4PB3PPDY7Xh+gPGq2GUwUTxRBLH4driE2Cw
rloyalK4RXsvJXb68Bok5un0ewbm0D5qtzaxgn4XNI4XqSIxSwLcBBHmBUsSJOYT
QipQK6AjAgMBAAECggEAV+M2Zke3lSxaAwCbdUuCxyNgDwMJBPEnN1IhFVRb6pg9
13aOR5Dl1CGmk/B1hFQBd9F64L5EYePLXiI8oxd4TybUyAunFoH2tKEVHH6rIZBy
HLim4elnIWXGs4l60SDyaq2yKV0w/YcAM8uElUChRHN7VwXLJHYXfL5/7MAZbaWL
Tf+CM0QCYNdA27aJw4+PKLi0ijrPNkMhNqDdET0lOghlP/kNbN66NG2xXhdMgssF
/xTMrz+TS1lznpX7BHPv09K981d5wtJ7gMvBqRh4/D4tKWtTVCv+DyiwUFXQgS6E
YXGgtH3Uc70CXNQCom8d/5cBd9uGc0DSQsgqDyYpfQKBgQDacrjSqWx8ortUa7ZL
zejdpjNAia8wDPnEK1/7IJciUaDu5VuZh7yJ1nXHjLB4RVlXZ6nRpA0tdH3jlMdN
fkxjBXmTzzrrkCYU9yoIWFGr8LmYDDZ8w+lr+Koy0t5bqf8K+lE5mKShFOFmY432
CKPYtzh277syLMJdUZtoB3zcDwKBgQDP1kgyf7Gqxdndr5/mqX7mFNZt/6dk1OX1
6ZpU72JUr6kBW/E2datYjRTwrlyg21xGn50UCUXvrPWxJ87/CM7/4kXBKbVq+/3G
eYudfxHMD7ph2VHvTkXL9IbISH2mKEuVEAlGYfOpmIERtIFVFqfQwYNFrwVdSgxz
W+Hw6uR2rQKBgQCNcBQtCdedRzwlZ+xLXpH02UR79+m/Ideh5TerAKn6ZYHezBAn
8xPm5z2xK22jIbu79PmmLCMAGFnePZlhmnHY91WFl3qdxOJzVqkXaB/RRPbV9Kpe
0/ZRm1qPt6qTDRl+QR7QPP3y8fMS+UiUUXnMuqzLjWLWFNbv1wPZMmfsjwKBgHwY
ixUz74ZzCin2wjf8vlts17foLS/kesZBTDgokwLTu8qm9ji5O6zs2DL5OS+Gqus0
RJsBCnQYRr8XcN4QiWB534J9f+g4PAe07SsGAz9fqL7h/q0vhDdKcuvFdNiwOKjx
YUhYFiAOggprR8nhdCQOV25VGZPhMdvzYc3ywqUlAoGBAJerlqlZu+Pb30K+3W+n
J284a6sYAmA6cLFM1L+C0kLhp1oZ4XX3sheK5g8ueLSxCVs6ddfrNmf5l+U7M9aX
8lHRbtLldANGJZObB6v8eM9Yp3t5xA/C3C/1LfMjDub0+9ErulD6C8MH7u8pc7Ya
hIr9PQPw5RVWSdJs/Fgc7d7X
-----END TESTING KEY-----`
