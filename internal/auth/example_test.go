package auth_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"os"

	"github.com/tenantcrypt/tenantcrypt/internal/auth"
)

// A server that is its own issuer verifies the tokens it mints.
func Example() {
	dir, err := os.MkdirTemp("", "tenantcrypt")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	issuer, err := auth.LoadOrCreateIssuer(dir, "https://tenantcrypt.local")
	if err != nil {
		log.Fatal(err)
	}
	verifier, err := auth.NewVerifier(auth.VerifierConfig{
		Issuer: issuer.Name(),
		Keys:   issuer.KeySource(),
	})
	if err != nil {
		log.Fatal(err)
	}

	token, err := issuer.Mint(auth.TokenRequest{
		Subject:  "billing-service",
		TenantID: "acme",
		Roles:    []auth.Role{auth.RoleService},
	})
	if err != nil {
		log.Fatal(err)
	}

	r := httptest.NewRequest("POST", "/api/v1/encryption/encrypt", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	bearer, err := auth.BearerToken(r)
	if err != nil {
		log.Fatal(err)
	}
	p, err := verifier.Verify(context.Background(), bearer)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Subject, p.TenantID, p.Roles, p.Has(auth.RoleService))

	_, err = verifier.Verify(context.Background(), "not-a-token")
	fmt.Println(err)
	// Output:
	// billing-service acme [service] true
	// unauthenticated: malformed token
}
