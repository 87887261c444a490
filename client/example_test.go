package client_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tenantcrypt/tenantcrypt/client"
	"github.com/tenantcrypt/tenantcrypt/client/internal/fakeservice"
)

// The examples run against a small in-memory stand-in for the service
// (client/internal/fakeservice), started once per test binary. In real use
// the URL is your deployment's, the token a JWT from your identity
// provider (or `tenantcrypt token`) and the TLS configuration trusts its
// CA.
var (
	fakeOnce sync.Once
	fake     *fakeservice.Server
)

func exampleService(tenant string) (url, token string, tlsConfig *tls.Config) {
	fakeOnce.Do(func() { fake = fakeservice.New() })
	return fake.URL(), fakeservice.Token(tenant), fake.TLSConfig()
}

// A service of tenant acme encrypts a small secret in the service and
// decrypts it again.
func Example() {
	serviceURL, token, tlsConfig := exampleService("acme")
	c, err := client.New(serviceURL, client.WithToken(token), client.WithTLSConfig(tlsConfig))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	ectx := map[string]string{"table": "credentials", "row": "42"}
	ct, err := c.Encrypt(ctx, []byte("hunter2"), ectx)
	if err != nil {
		log.Fatal(err)
	}
	pt, err := c.Decrypt(ctx, ct, ectx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.HasPrefix(ct, "#QLIKv1#:acme:"), string(pt))
	// Output: true hunter2
}

// Large content is encrypted locally under a data key from the service;
// the encryption context names the object and must be given again to
// decrypt.
func ExampleEnvelope_Encrypt() {
	serviceURL, token, tlsConfig := exampleService("acme")
	c, err := client.New(serviceURL, client.WithToken(token), client.WithTLSConfig(tlsConfig))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	report := bytes.Repeat([]byte("quarterly figures\n"), 10000)
	ectx := map[string]string{"object": "reports/q1.txt"}

	sealed, err := c.Envelope().Encrypt(ctx, report, ectx)
	if err != nil {
		log.Fatal(err)
	}
	opened, err := c.Envelope().Decrypt(ctx, sealed, ectx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(report), bytes.Equal(opened, report))

	// Another context (another object) does not open it.
	_, err = c.Envelope().Decrypt(ctx, sealed, map[string]string{"object": "reports/q2.txt"})
	fmt.Println(errors.Is(err, client.ErrDecryptionFailed))
	// Output:
	// 180000 true
	// true
}

// Streams of any size are encrypted and decrypted in constant memory.
func ExampleEnvelope_NewEncryptWriter() {
	serviceURL, token, tlsConfig := exampleService("acme")
	c, err := client.New(serviceURL, client.WithToken(token), client.WithTLSConfig(tlsConfig))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	ectx := map[string]string{"object": "exports/customers.csv"}

	var stored bytes.Buffer // a file, an object store upload, …
	w, err := c.Envelope().NewEncryptWriter(ctx, &stored, ectx)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := io.Copy(w, strings.NewReader("id,name\n1,Ada\n2,Grace\n")); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil { // writes the last segment: never skip it
		log.Fatal(err)
	}

	r, err := c.Envelope().NewDecryptReader(ctx, &stored, ectx)
	if err != nil {
		log.Fatal(err)
	}
	// Plaintext arrives segment by segment, each authenticated; the
	// stream is whole only once io.Copy returns without an error.
	if _, err := io.Copy(os.Stdout, r); err != nil {
		log.Fatal(err)
	}
	// Output:
	// id,name
	// 1,Ada
	// 2,Grace
}

// A stream is bound to its tenant: another tenant's service cannot
// decrypt it, even with the right context.
func ExampleEnvelope_Decrypt_otherTenant() {
	ctx := context.Background()
	ectx := map[string]string{"object": "a"}
	newClient := func(tenant string) *client.Client {
		serviceURL, token, tlsConfig := exampleService(tenant)
		c, err := client.New(serviceURL, client.WithToken(token), client.WithTLSConfig(tlsConfig))
		if err != nil {
			log.Fatal(err)
		}
		return c
	}
	sealed, err := newClient("tenant-a").Envelope().Encrypt(ctx, []byte("A's data"), ectx)
	if err != nil {
		log.Fatal(err)
	}
	_, err = newClient("tenant-b").Envelope().Decrypt(ctx, sealed, ectx)
	fmt.Println(errors.Is(err, client.ErrDecryptionFailed))
	// Output: true
}

// Errors from the service match the package's sentinels: branch on what
// happened, not on status codes.
func ExampleError() {
	serviceURL, token, tlsConfig := exampleService("acme")
	c, err := client.New(serviceURL, client.WithToken(token), client.WithTLSConfig(tlsConfig))
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Decrypt(context.Background(), "#QLIKv1#:acme:AQIAESIzRFVmd4iZqrvM3e7_", nil)
	switch {
	case errors.Is(err, client.ErrRetryLater):
		fmt.Println("unavailable: retry later")
	case errors.Is(err, client.ErrKeyRevoked), errors.Is(err, client.ErrTenantLocked):
		fmt.Println("the tenant's key is revoked: stop and alert")
	case errors.Is(err, client.ErrDecryptionFailed):
		var e *client.Error
		errors.As(err, &e)
		fmt.Println("not decryptable:", e.StatusCode, e.Code)
	}
	// Output: not decryptable: 400 Encryption-09
}

// Tokens expire: a token source is asked for one per request (and per
// retry), so it can refresh in time. The cache bounds and the retry
// policy are options too.
func ExampleWithTokenSource() {
	serviceURL, _, tlsConfig := exampleService("acme")
	var mu sync.Mutex
	var token string
	var expires time.Time
	refresh := func(ctx context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if time.Until(expires) < time.Minute {
			// Ask the identity provider; here, the fake's token.
			token, expires = "fake:acme", time.Now().Add(time.Hour)
		}
		return token, nil
	}
	c, err := client.New(serviceURL,
		client.WithTokenSource(refresh),
		client.WithTLSConfig(tlsConfig),
		client.WithKeyCache(client.KeyCacheConfig{MaxAge: 30 * time.Second, MaxUses: 10000}),
		client.WithRetryPolicy(client.RetryPolicy{MaxAttempts: 3}),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer c.PurgeKeys() // zero the cached data keys when done
	sealed, err := c.Envelope().Encrypt(context.Background(), []byte("x"), nil)
	fmt.Println(len(sealed) > 0, err)
	// Output: true <nil>
}
