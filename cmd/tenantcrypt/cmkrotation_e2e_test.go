package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/store/sqlite"
	"github.com/tenantcrypt/tenantcrypt/internal/testkms"
)

// TestCMKRotation: the customer rotates the tenant's CMK in AWS KMS
// (automatic rotation on its date, or RotateKeyOnDemand), and nothing
// changes for the tenant. Once the server's cached keys have expired, every
// data key issued before the rotation is unwrapped by KMS again, and every
// old ciphertext and data-key handle still resolves; new data keys are
// wrapped under the key's new backing key; the tenant stays active.
//
// local-kms answers RotateKeyOnDemand with 501 and rotates automatically
// only a year after EnableKeyRotation, so the rotation is
// testkms.Server.RotateKey: each region's running local-kms gets one more
// backing key for the multi-region key, the same in both, as AWS rotates a
// multi-region key's primary and replicas together; no call to it fails
// meanwhile (the key monitor checks the key all along). Which backing key
// wrapped a cipherkey is read from the server's database and local-kms's
// blob format (testkms.BlobBackingKey); AWS blobs are opaque.
func TestCMKRotation(t *testing.T) {
	t.Parallel()
	// Short cache lifetimes, so that the cached keys are gone soon after
	// the rotation and the old blobs have to go to KMS again.
	e := startCMKEnv(t, "--cache-ttl", "2s", "--cache-idle", "1s")
	ta := e.tenant(t, "acme", "enterprise")
	svc := e.token(auth.RoleService, "acme")
	mrk := e.primary.ARN(testkms.MultiRegionKeyID)
	fp := keyprovider.Fingerprint(mrk)

	// The customer turns on automatic rotation, as in AWS.
	ctx := context.Background()
	customer := e.primary.Client(t)
	if _, err := customer.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: aws.String(mrk)}); err != nil {
		t.Fatalf("EnableKeyRotation: %v", err)
	}

	// The tenant moves onto the CMK.
	if r := e.do("POST", kp, ta, register(mrk, "Acme key")); r.status != 201 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	if r := e.do("POST", kp+"/"+fp+"/actions/migrate", ta, nil); r.status != 200 {
		t.Fatalf("migrate: %d %s", r.status, r.body)
	}
	e.waitMigration(t, ta)

	// Data under the CMK's first backing key.
	const before, after = 20, 10
	oldCTs := encryptSome(t, e.testServer, svc, before)
	oldKeys := newDataKeys(t, e.testServer, svc, 0, before)
	for _, c := range oldCTs {
		if !strings.HasPrefix(c.ciphertext, "#BYOKv1#:"+fp+":") {
			t.Fatalf("ciphertext %.40s… was not issued under the CMK", c.ciphertext)
		}
	}

	// The rotation: the replica first, then the primary, so that a region
	// with the new material always has the old as well.
	for _, s := range []*testkms.Server{e.dr, e.primary} {
		if got := s.RotateKey(t, testkms.MultiRegionKeyID); got != 1 {
			t.Fatalf("rotation in %s made backing key %d, want 1", s.Region, got)
		}
	}
	st, err := customer.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(mrk)})
	if err != nil || !st.KeyRotationEnabled {
		t.Errorf("GetKeyRotationStatus after the rotation = %+v, %v; want rotation enabled", st, err)
	}

	// Nothing of the tenant is left in the cache: what follows needs KMS.
	waitCacheEmpty(t, e.testServer)
	e.pProxy.ResetCalls()
	e.dProx.ResetCalls()
	verifyCiphertexts(t, e.testServer, svc, oldCTs)
	verifyDataKeys(t, e.testServer, svc, oldKeys)
	// At least one Decrypt per old data key and one for the encryption key
	// of the ciphertexts (more if the short cache lifetimes ran out
	// meanwhile).
	n := e.pProxy.Calls("Decrypt") + e.dProx.Calls("Decrypt")
	t.Logf("after the rotation, %d old ciphertexts and %d old data keys resolved with %d Decrypt calls", before, before, n)
	if n < before+1 {
		t.Errorf("%d Decrypt calls to resolve the old data keys after the rotation, want at least %d", n, before+1)
	}

	// New data keys, and new encryptions.
	newCTs := encryptSome(t, e.testServer, svc, after)
	newKeys := newDataKeys(t, e.testServer, svc, before, after)

	// Which backing key wrapped what, as stored by the server: the old
	// data keys and the encryption key (which the CMK's rotation does not
	// replace) under backing key 0, the new data keys under backing key 1.
	// Nothing the server stores beside a blob names a backing key.
	st2, err := sqlite.Open(ctx, filepath.Join(e.dataDir, "tenantcrypt.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	checkBacking := func(what, text string, handle bool, want int) {
		t.Helper()
		_, bin, err := envelope.ParseText(text)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		var id envelope.KeyID
		if handle {
			h, err := envelope.ParseHandle(bin)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			id = h.KeyID
		} else {
			c, err := envelope.ParseCiphertext(bin)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			id = c.KeyID
		}
		ck, err := st2.CipherKey(ctx, "acme", id)
		if err != nil {
			t.Fatalf("%s: cipherkey %s: %v", what, id, err)
		}
		got, arn, err := testkms.BlobBackingKey(ck.Wrapped)
		if err != nil || got != want || arn != mrk {
			t.Errorf("%s: wrapped by backing key %d of %s (%v), want backing key %d of %s", what, got, arn, err, want, mrk)
		}
		if ck.KeyVersion != mrk {
			t.Errorf("%s: stored key version %q, want the key's ARN %s", what, ck.KeyVersion, mrk)
		}
	}
	for i, k := range oldKeys {
		checkBacking("old data key "+strconv.Itoa(i), k.handle, true, 0)
	}
	for i, k := range newKeys {
		checkBacking("new data key "+strconv.Itoa(i), k.handle, true, 1)
	}
	checkBacking("encryption key of the old ciphertexts", oldCTs[0].ciphertext, false, 0)
	checkBacking("encryption key of the new ciphertexts", newCTs[0].ciphertext, false, 0)

	// Old and new, once more from KMS.
	waitCacheEmpty(t, e.testServer)
	e.pProxy.ResetCalls()
	e.dProx.ResetCalls()
	verifyCiphertexts(t, e.testServer, svc, slices.Concat(oldCTs, newCTs))
	verifyDataKeys(t, e.testServer, svc, slices.Concat(oldKeys, newKeys))
	n = e.pProxy.Calls("Decrypt") + e.dProx.Calls("Decrypt")
	t.Logf("%d ciphertexts and %d data keys, old and new, resolved with %d Decrypt calls", before+after, before+after, n)
	if n < before+after+1 {
		t.Errorf("%d Decrypt calls to resolve the old and new data keys, want at least %d", n, before+after+1)
	}

	// The tenant never noticed.
	var status api.EncryptionStatus
	r := e.do("GET", "/api/v1/encryption/status", ta, nil)
	if err := json.Unmarshal(r.body, &status); err != nil || r.status != 200 {
		t.Fatalf("status: %d %s", r.status, r.body)
	}
	if status.State != "active" || status.KeyState != "Enabled" || status.Provider.ARN != mrk {
		t.Errorf("status after the rotation: %s; want active on %s, key Enabled", r.body, mrk)
	}
}
