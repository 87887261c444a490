package kmip

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// ErrMalformedPEM is wrapped by every error of ParseCredentials.
var ErrMalformedPEM = errors.New("malformed PEM")

// Credentials are what a Client needs to reach a customer's KMIP server:
// the CA that issued the server's certificate, and the client certificate
// (and its key) that the customer issued for tenantcrypt.
type Credentials struct {
	RootCAs     *x509.CertPool
	Certificate tls.Certificate
}

// ParseCredentials reads PEM: serverCA holds one or more CA certificates,
// clientCert the client certificate (and possibly its chain), clientKey its
// private key. Errors wrap ErrMalformedPEM and name the field at fault;
// they never quote the key.
func ParseCredentials(serverCA, clientCert, clientKey []byte) (Credentials, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := serverCA; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return Credentials{}, fmt.Errorf("%w: serverCA holds a %q block, want CERTIFICATE", ErrMalformedPEM, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return Credentials{}, fmt.Errorf("%w: serverCA: %v", ErrMalformedPEM, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return Credentials{}, fmt.Errorf("%w: serverCA holds no PEM certificate", ErrMalformedPEM)
	}
	if b, _ := pem.Decode(clientCert); b == nil || b.Type != "CERTIFICATE" {
		return Credentials{}, fmt.Errorf("%w: clientCertificate is not a PEM certificate", ErrMalformedPEM)
	}
	if b, _ := pem.Decode(clientKey); b == nil || !isKeyBlock(b.Type) {
		return Credentials{}, fmt.Errorf("%w: clientKey is not a PEM private key", ErrMalformedPEM)
	}
	pair, err := tls.X509KeyPair(clientCert, clientKey)
	if err != nil {
		// tls's errors name what is wrong without quoting the key.
		return Credentials{}, fmt.Errorf("%w: clientCertificate and clientKey: %v", ErrMalformedPEM, err)
	}
	return Credentials{RootCAs: pool, Certificate: pair}, nil
}

func isKeyBlock(t string) bool {
	return t == "PRIVATE KEY" || t == "EC PRIVATE KEY" || t == "RSA PRIVATE KEY"
}
