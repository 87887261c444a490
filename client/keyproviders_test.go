package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/api"
)

// TestKeyProviderCalls checks each key-provider method's method, path and
// body against a fake that records them. (The end-to-end test in
// cmd/tenantcrypt runs them against the real service.)
func TestKeyProviderCalls(t *testing.T) {
	s := newFake(t)
	type seen struct{ method, path, body string }
	var last seen
	answer := func(status int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			last = seen{r.Method, r.URL.Path, string(b)}
			if r.Header.Get("Authorization") != "Bearer admin" {
				status, body = 401, `{"errors":[{"code":"Encryption-02","title":"Unauthorized"}]}`
			}
			w.WriteHeader(status)
			io.WriteString(w, body)
		}
	}
	kp := api.RouteKeyProviders.Path
	provider := `{"arn":"arn:aws:kms:eu-west-1:111122223333:key/mrk-1","name":"k","keyprovider":"AWS-KMS","arnFingerPrint":"fp1","replicaKeys":[],"complianceError":{"code":"","region":"","message":""}}`
	migration := `{"id":"m1","state":"New","progress":0,"migratingTo":"arn:aws:kms:eu-west-1:111122223333:key/mrk-1"}`
	s.Route("GET "+kp, answer(200, "["+provider+"]"))
	s.Route("GET "+kp+"/actions/list", answer(200, `[{"arn":"#QLIK_MANAGED_KEY_PROVIDER#","keyprovider":"Qlik","current":true},`+provider+"]"))
	s.Route("GET "+kp+"/fp1", answer(200, provider))
	s.Route("GET "+kp+"/nope", answer(404, `{"errors":[{"code":"Encryption-30","title":"Key provider not found"}]}`))
	s.Route("POST "+kp, answer(201, provider))
	s.Route("PATCH "+kp+"/fp1", answer(204, ""))
	s.Route("DELETE "+kp+"/fp1", answer(204, ""))
	s.Route("POST "+kp+"/fp1/actions/test", answer(201, provider))
	s.Route("POST "+kp+"/fp1/actions/migrate", answer(200, migration))
	s.Route("GET "+kp+"/migration/actions/details", answer(200, migration))

	c, _ := newTestClient(t, s, "acme", WithToken("admin"))
	ctx := context.Background()
	check := func(method, path, body string) {
		t.Helper()
		if last.method != method || last.path != path {
			t.Errorf("sent %s %s, want %s %s", last.method, last.path, method, path)
		}
		if body != "" && last.body != body {
			t.Errorf("%s %s body = %s, want %s", method, path, last.body, body)
		}
	}

	ps, err := c.KeyProviders(ctx)
	if err != nil || len(ps) != 1 || ps[0].ARNFingerPrint != "fp1" {
		t.Fatalf("KeyProviders: %v %v", ps, err)
	}
	check("GET", kp, "")
	ps, err = c.AllKeyProviders(ctx)
	if err != nil || len(ps) != 2 || !ps[0].Current || ps[0].ARN != api.DefaultProviderARN {
		t.Fatalf("AllKeyProviders: %v %v", ps, err)
	}
	check("GET", kp+"/actions/list", "")
	if p, err := c.KeyProvider(ctx, "fp1"); err != nil || p.Name != "k" {
		t.Fatalf("KeyProvider: %v %v", p, err)
	}
	if _, err := c.KeyProvider(ctx, "nope"); !errors.Is(err, ErrNotFound) || !IsCode(err, api.CodeKeyProviderNotFound) {
		t.Errorf("unknown provider: %v", err)
	}
	if _, err := c.RegisterKeyProvider(ctx, api.RegisterKeyProviderRequest{ARN: "arn:x", Name: "k"}); err != nil {
		t.Fatal(err)
	}
	check("POST", kp, `{"arn":"arn:x","name":"k","keyprovider":"AWS-KMS"}`)
	desc := "rotated yearly"
	if err := c.RenameKeyProvider(ctx, "fp1", "k2", &desc); err != nil {
		t.Fatal(err)
	}
	check("PATCH", kp+"/fp1", `[{"op":"replace","path":"/name","value":"k2"},{"op":"replace","path":"/description","value":"rotated yearly"}]`)
	if p, err := c.TestKeyProvider(ctx, "fp1"); err != nil || p.ARNFingerPrint != "fp1" {
		t.Fatalf("TestKeyProvider: %v %v", p, err)
	}
	check("POST", kp+"/fp1/actions/test", "")
	if m, err := c.MigrateToKeyProvider(ctx, "fp1"); err != nil || m.State != "New" {
		t.Fatalf("MigrateToKeyProvider: %v %v", m, err)
	}
	check("POST", kp+"/fp1/actions/migrate", "")
	if m, err := c.MigrationDetails(ctx); err != nil || m.ID != "m1" {
		t.Fatalf("MigrationDetails: %v %v", m, err)
	}
	if err := c.DeleteKeyProvider(ctx, "fp1"); err != nil {
		t.Fatal(err)
	}
	check("DELETE", kp+"/fp1", "")

	// Reset: 205 with the migration, 205 whose body a proxy dropped, and
	// 200 when on the default already.
	reset := "POST " + kp + "/actions/reset-to-default-provider"
	for _, tc := range []struct {
		status  int
		body    string
		started bool
	}{
		{205, migration, true},
		{205, "", true},
		{200, `{"message":"the tenant already uses the default key provider"}`, false},
	} {
		s.Route(reset, answer(tc.status, tc.body))
		m, started, err := c.ResetToDefaultProvider(ctx)
		if err != nil || started != tc.started || (started && m.ID != "m1") {
			t.Errorf("reset answering %d %q: %+v %v %v", tc.status, tc.body, m, started, err)
		}
	}

	bad, _ := newTestClient(t, s, "acme", WithToken("other"))
	if _, err := bad.KeyProviders(ctx); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("with a bad token: %v", err)
	}
	var raw []json.RawMessage
	_ = raw
}
