package awskms

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssdkkms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
	"github.com/tenantcrypt/tenantcrypt/internal/testkms"
)

// rotationItem is a data key wrapped by the provider, and what the test
// knows of it.
type rotationItem struct {
	what      string
	plaintext []byte // a copy, to compare with what Unwrap returns
	b         kms.Binding
	w         kms.Wrapped
	backing   int // the local-kms backing key that made w.Blob
}

// TestRotationIsTransparent: AWS KMS rotation of a customer managed key
// (automatic, or RotateKeyOnDemand) gives the key new backing key material
// and keeps the old; the key's id and ARN stay. The provider stores nothing
// that depends on the backing key, so data keys wrapped before a rotation
// unwrap after it to the same keys, new data keys are wrapped under the new
// backing key, and all of them keep unwrapping, in both regions of a
// multi-region key.
//
// local-kms answers RotateKeyOnDemand with 501 and rotates automatically
// only a year after EnableKeyRotation, so the rotation itself is
// testkms.Server.RotateKey (a local-kms restart with one more backing key
// in its database, the same in both regions, as AWS keeps a multi-region
// key's material). Which backing key a blob was made with is read from
// local-kms's blob format (testkms.BlobBackingKey); AWS blobs are opaque.
func TestRotationIsTransparent(t *testing.T) {
	primary, dr := testkms.StartPair(t, primaryRegion, drRegion)
	pp, dp := testkms.NewProxy(t, primary), testkms.NewProxy(t, dr)
	c := newTestClient(t, testConfig(t, map[string]string{primaryRegion: pp.URL, drRegion: dp.URL}))
	key := mustARN(t, primary.ARN(testkms.MultiRegionKeyID))
	providers := map[string]kms.Provider{
		primaryRegion: c.Provider(kms.MustCMKRef("mrk"), key),
		drRegion:      c.Provider(kms.MustCMKRef("mrk"), key.InRegion(drRegion)),
	}
	regions := []string{primaryRegion, drRegion}

	// The customer turns automatic rotation on, through the SDK, as in AWS.
	admin := primary.Client(t)
	if _, err := admin.EnableKeyRotation(t.Context(), &awssdkkms.EnableKeyRotationInput{KeyId: aws.String(key.String())}); err != nil {
		t.Fatalf("EnableKeyRotation: %v", err)
	}
	rotationEnabled := func(when string) {
		t.Helper()
		st, err := admin.GetKeyRotationStatus(t.Context(), &awssdkkms.GetKeyRotationStatusInput{KeyId: aws.String(key.String())})
		if err != nil || !st.KeyRotationEnabled {
			t.Fatalf("GetKeyRotationStatus %s = %+v, %v; want rotation enabled", when, st, err)
		}
	}
	rotationEnabled("after EnableKeyRotation")

	var items []rotationItem
	// wrapSome makes data keys in both regions, with GenerateDataKey and
	// with Wrap, and checks that local-kms made them with backing key
	// want.
	wrapSome := func(want int) {
		t.Helper()
		for _, region := range regions {
			p := providers[region]
			b := kms.Binding{kms.BindingTenant: "t1", kms.BindingKeyID: fmt.Sprintf("dk-%d", len(items))}
			dk, w, err := p.GenerateDataKey(t.Context(), b)
			if err != nil {
				t.Fatalf("GenerateDataKey in %s with backing key %d: %v", region, want, err)
			}
			items = append(items, rotationItem{fmt.Sprintf("GenerateDataKey in %s with backing key %d", region, want), bytes.Clone(dk.Reveal()), b, w, want})
			dk.Destroy()

			b = kms.Binding{kms.BindingTenant: "t1", kms.BindingKeyID: fmt.Sprintf("dk-%d", len(items))}
			pt := bytes.Repeat([]byte{byte(len(items))}, kms.DataKeySize)
			w, err = p.Wrap(t.Context(), secret.New(bytes.Clone(pt)), b)
			if err != nil {
				t.Fatalf("Wrap in %s with backing key %d: %v", region, want, err)
			}
			items = append(items, rotationItem{fmt.Sprintf("Wrap in %s with backing key %d", region, want), pt, b, w, want})
		}
		for _, it := range items[len(items)-2*len(regions):] {
			// What tenantcrypt stores beside the blob names the key, never
			// its backing key: a rotation changes nothing there.
			if arn := key.InRegion(regionOf(t, it.w.KeyVersion)).String(); it.w.KeyVersion != arn {
				t.Errorf("%s: KeyVersion %q, want the key's ARN %s", it.what, it.w.KeyVersion, arn)
			}
			got, arn, err := testkms.BlobBackingKey(it.w.Blob)
			if err != nil || got != it.backing || arn != it.w.KeyVersion {
				t.Errorf("%s: blob made with backing key %d of %s (%v), want backing key %d of %s", it.what, got, arn, err, it.backing, it.w.KeyVersion)
			}
		}
	}
	// unwrapAll unwraps every data key so far in both regions, and checks
	// that each is the key it was and that every one was a call to KMS.
	unwrapAll := func(when string) {
		t.Helper()
		pp.ResetCalls()
		dp.ResetCalls()
		for _, region := range regions {
			for _, it := range items {
				got, err := providers[region].Unwrap(t.Context(), it.w, it.b)
				if err != nil {
					t.Errorf("%s: Unwrap in %s of the data key from %s: %v", when, region, it.what, err)
					continue
				}
				if !bytes.Equal(got.Reveal(), it.plaintext) {
					t.Errorf("%s: Unwrap in %s of the data key from %s gave another key", when, region, it.what)
				}
				got.Destroy()
			}
		}
		if n, d := pp.Calls("Decrypt"), dp.Calls("Decrypt"); n != len(items) || d != len(items) {
			t.Errorf("%s: %d Decrypt calls in %s and %d in %s, want %d in each", when, n, primaryRegion, d, drRegion, len(items))
		}
	}

	wrapSome(0)
	unwrapAll("before any rotation")

	const rotations = 2
	for want := 1; want <= rotations; want++ {
		// The replica first, then the primary: at every moment a region
		// that has the new material has the old as well.
		for _, s := range []*testkms.Server{dr, primary} {
			if got := s.RotateKey(t, testkms.MultiRegionKeyID); got != want {
				t.Fatalf("rotation %d in %s made backing key %d, want %d", want, s.Region, got, want)
			}
		}
		when := fmt.Sprintf("after rotation %d", want)
		rotationEnabled(when)
		for _, region := range regions {
			info, err := providers[region].Describe(t.Context())
			if err != nil || info.State != kms.KeyEnabled {
				t.Errorf("Describe in %s %s = %+v, %v; want the key enabled", region, when, info, err)
			}
		}
		// Every data key wrapped so far, under every older backing key.
		unwrapAll(when)
		// New data keys get the new backing key...
		wrapSome(want)
		// ...and unwrap in both regions, beside the old ones.
		unwrapAll(when + ", with new data keys")
	}
	if want := 2 * len(regions) * (rotations + 1); len(items) != want {
		t.Errorf("%d data keys wrapped, want %d", len(items), want)
	}
}

// regionOf returns the region of a key ARN.
func regionOf(t *testing.T, arn string) string {
	t.Helper()
	a, err := ParseARN(arn)
	if err != nil {
		t.Fatalf("KeyVersion %q: %v", arn, err)
	}
	return a.Region
}
