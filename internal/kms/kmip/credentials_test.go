package kmip

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "c"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

func TestParseCredentials(t *testing.T) {
	cert, key := selfSigned(t)
	otherCert, otherKey := selfSigned(t)
	if _, err := ParseCredentials(cert, cert, key); err != nil {
		t.Fatalf("ParseCredentials: %v", err)
	}
	tests := []struct {
		name          string
		ca, cert, key []byte
		field         string
	}{
		{"no CA", nil, cert, key, "serverCA"},
		{"CA not PEM", []byte("hello"), cert, key, "serverCA"},
		{"CA is a key", key, cert, key, "serverCA"},
		{"CA garbled", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2}}), cert, key, "serverCA"},
		{"no certificate", cert, nil, key, "clientCertificate"},
		{"certificate is a key", cert, key, key, "clientCertificate"},
		{"no key", cert, cert, nil, "clientKey"},
		{"key is a certificate", cert, cert, cert, "clientKey"},
		{"key of another certificate", cert, cert, otherKey, "clientKey"},
		{"certificate of another key", cert, otherCert, key, "clientKey"},
	}
	for _, tt := range tests {
		_, err := ParseCredentials(tt.ca, tt.cert, tt.key)
		if !errors.Is(err, ErrMalformedPEM) || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%s: ParseCredentials = %v, want ErrMalformedPEM naming %s", tt.name, err, tt.field)
		}
		if err != nil && strings.Contains(err.Error(), "PRIVATE KEY") && strings.Contains(err.Error(), string(key[40:60])) {
			t.Errorf("%s: the error quotes the key", tt.name)
		}
	}
}

func TestResultErrorKind(t *testing.T) {
	tests := []struct {
		op     Operation
		reason ResultReason
		want   error
	}{
		{OpGetAttributes, ReasonItemNotFound, kms.ErrKeyNotFound},
		{OpDecrypt, ReasonObjectDestroyed, kms.ErrKeyNotFound},
		{OpEncrypt, ReasonPermissionDenied, kms.ErrAccessDenied},
		{OpEncrypt, ReasonAuthenticationNotSuccessful, kms.ErrAccessDenied},
		{OpEncrypt, ReasonNotAuthorised, kms.ErrAccessDenied},
		{OpEncrypt, ReasonWrongKeyLifecycleState, kms.ErrKeyDisabled},
		{OpEncrypt, ReasonServerLimitExceeded, kms.ErrThrottled},
		{OpDecrypt, ReasonGeneralFailure, kms.ErrUnavailable},
		{OpDecrypt, ReasonCryptographicFailure, kms.ErrInvalidCiphertext},
		{OpEncrypt, ReasonCryptographicFailure, nil},
		{OpEncrypt, ReasonInvalidField, nil},
	}
	for _, tt := range tests {
		e := &ResultError{Op: tt.op, Reason: tt.reason}
		if got := e.Kind(); got != tt.want {
			t.Errorf("%v refused with %v: Kind() = %v, want %v", tt.op, tt.reason, got, tt.want)
		}
	}
}
