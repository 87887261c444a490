package awskind_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/awskms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/awskms/awskind"
)

// These test the kind's decisions with AWS KMS replaced by a fake; the
// end-to-end tests in cmd/tenantcrypt make the same calls to local-kms.

const (
	home   = "eu-west-1"
	dr     = "eu-west-3"
	mrk    = "arn:aws:kms:eu-west-1:111122223333:key/mrk-0123456789abcdef0123456789abcdef"
	single = "arn:aws:kms:eu-west-1:111122223333:key/01234567-89ab-cdef-0123-456789abcdef"
)

type fakeClient struct {
	desc      awskms.KeyDescription
	descErr   error
	probeErrs map[string]error // by region: the error of Decrypt there
	opened    []string         // replica regions given to Provider
}

func (f *fakeClient) DescribeKey(context.Context, awskms.ARN) (awskms.KeyDescription, error) {
	return f.desc, f.descErr
}

func (f *fakeClient) Probe(_ context.Context, _ awskms.ARN, region string, _ kms.Binding) []awskms.ProbeResult {
	return []awskms.ProbeResult{{Action: "GenerateDataKey", Region: region}, {Action: "Decrypt", Region: region, Err: f.probeErrs[region]}}
}

func (f *fakeClient) Provider(ref kms.Ref, _ awskms.ARN, replicas ...string) kms.Provider {
	f.opened = replicas
	return nil
}

func enabledKey() awskms.KeyDescription {
	return awskms.KeyDescription{State: kms.KeyEnabled, AWSState: "Enabled", Spec: "SYMMETRIC_DEFAULT", Usage: "ENCRYPT_DECRYPT", MultiRegion: true}
}

func newKind(t *testing.T, c *fakeClient, allowSingle bool) *awskind.Kind {
	t.Helper()
	k, err := awskind.New(awskind.Config{Client: c, Region: home, DRRegions: map[string]string{home: dr}, AllowSingleRegion: allowSingle})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func target(t *testing.T, k *awskind.Kind, arn string) *keyprovider.Target {
	t.Helper()
	key, err := k.ParseKey(arn)
	if err != nil {
		t.Fatal(err)
	}
	return &keyprovider.Target{Provider: keyprovider.Provider{TenantID: "acme", Fingerprint: keyprovider.Fingerprint(key.String()), ARN: key.String(), Key: key}}
}

func TestRegistrationTest(t *testing.T) {
	denied := &kms.Error{Op: "Decrypt", Kind: kms.ErrAccessDenied}
	tests := []struct {
		name        string
		arn         string
		client      fakeClient
		allowSingle bool
		refused     bool  // *RefusedError
		err         error // a kms sentinel
		compliant   bool
	}{
		{"multi-region key with its DR replica", mrk, fakeClient{desc: enabledKey()}, false, false, nil, true},
		{"replica refuses in the DR region", mrk, fakeClient{desc: enabledKey(), probeErrs: map[string]error{dr: denied}}, false, false, nil, false},
		{"refused in its own region", mrk, fakeClient{desc: enabledKey(), probeErrs: map[string]error{home: denied}}, false, false, kms.ErrAccessDenied, false},
		{"single-region key", single, fakeClient{desc: func() awskms.KeyDescription { d := enabledKey(); d.MultiRegion = false; return d }()}, false, true, nil, false},
		{"single-region key allowed", single, fakeClient{desc: func() awskms.KeyDescription { d := enabledKey(); d.MultiRegion = false; return d }()}, true, false, nil, false},
		{"asymmetric", mrk, fakeClient{desc: func() awskms.KeyDescription { d := enabledKey(); d.Spec = "RSA_2048"; return d }()}, false, true, nil, false},
		{"disabled", mrk, fakeClient{desc: func() awskms.KeyDescription { d := enabledKey(); d.State = kms.KeyDisabled; return d }()}, false, true, nil, false},
		{"not found", mrk, fakeClient{descErr: &kms.Error{Op: "DescribeKey", Kind: kms.ErrKeyNotFound}}, false, true, nil, false},
		{"KMS out", mrk, fakeClient{descErr: &kms.Error{Op: "DescribeKey", Kind: kms.ErrUnavailable}}, false, false, kms.ErrUnavailable, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := newKind(t, &tc.client, tc.allowSingle)
			tg := target(t, k, tc.arn)
			err := k.Test(t.Context(), tg, true)
			var refused *keyprovider.RefusedError
			switch {
			case tc.refused && !errors.As(err, &refused):
				t.Fatalf("Test = %v, want *RefusedError", err)
			case tc.err != nil && !errors.Is(err, tc.err):
				t.Fatalf("Test = %v, want %v", err, tc.err)
			case !tc.refused && tc.err == nil && err != nil:
				t.Fatalf("Test = %v", err)
			}
			if err == nil && tg.DRCompliant != tc.compliant {
				t.Errorf("DRCompliant = %v (%+v), want %v", tg.DRCompliant, tg.Compliance, tc.compliant)
			}
			if err == nil && tg.MultiRegion && !slices.ContainsFunc(tg.Replicas, func(r keyprovider.Replica) bool { return r.Region == dr }) {
				t.Errorf("replicas %+v, want one in %s", tg.Replicas, dr)
			}
		})
	}
}

func TestTestOfARegisteredKeyRecords(t *testing.T) {
	c := &fakeClient{descErr: &kms.Error{Op: "DescribeKey", Kind: kms.ErrAccessDenied}}
	k := newKind(t, c, false)
	tg := target(t, k, mrk)
	tg.DRCompliant = true
	if err := k.Test(t.Context(), tg, false); err != nil {
		t.Fatalf("Test = %v; a refusal of a registered key is recorded", err)
	}
	if tg.DRCompliant || tg.Compliance.Code != keyprovider.CodeNotCompliant || tg.Compliance.Region != home {
		t.Errorf("recorded %v, %+v", tg.DRCompliant, tg.Compliance)
	}
}

func TestOpenFailsOverToTheDRRegion(t *testing.T) {
	for _, tc := range []struct {
		arn  string
		want []string
	}{{mrk, []string{dr}}, {single, nil}} {
		c := &fakeClient{}
		k := newKind(t, c, false)
		tg := target(t, k, tc.arn)
		if _, err := k.Open(t.Context(), *tg, kms.MustCMKRef(tg.Fingerprint)); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(c.opened, tc.want) {
			t.Errorf("Open(%s) replicas %q, want %q", tc.arn, c.opened, tc.want)
		}
	}
}

func TestParseKeyAndSameKey(t *testing.T) {
	k := newKind(t, &fakeClient{}, false)
	if k.Name() != "AWS-KMS" {
		t.Errorf("Name() = %q", k.Name())
	}
	if _, err := k.ParseKey("alias/tenant"); !errors.Is(err, keyprovider.ErrMalformedARN) {
		t.Errorf("ParseKey(alias) = %v, want ErrMalformedARN", err)
	}
	a, _ := k.ParseKey(mrk)
	b, _ := k.ParseKey(strings.Replace(mrk, home, dr, 1))
	s, _ := k.ParseKey(single)
	if !k.SameKey(a, b) || k.SameKey(a, s) {
		t.Errorf("SameKey: replica %v, other key %v; want true, false", k.SameKey(a, b), k.SameKey(a, s))
	}
}
