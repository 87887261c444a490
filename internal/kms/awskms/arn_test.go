package awskms

import (
	"errors"
	"strings"
	"testing"
)

const (
	testUUID = "1234abcd-12ab-34cd-56ef-1234567890ab"
	testMRK  = "mrk-1234abcd12ab34cd56ef1234567890ab"
)

func TestParseARN(t *testing.T) {
	tests := []struct {
		in   string
		want ARN
	}{
		{"arn:aws:kms:eu-west-1:111122223333:key/" + testUUID, ARN{"aws", "eu-west-1", "111122223333", testUUID}},
		{"arn:aws:kms:us-east-1:111122223333:key/" + testMRK, ARN{"aws", "us-east-1", "111122223333", testMRK}},
		{"arn:aws:kms:ap-southeast-2:000000000000:key/" + testUUID, ARN{"aws", "ap-southeast-2", "000000000000", testUUID}},
		{"arn:aws-cn:kms:cn-north-1:111122223333:key/" + testUUID, ARN{"aws-cn", "cn-north-1", "111122223333", testUUID}},
		{"arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/" + testMRK, ARN{"aws-us-gov", "us-gov-west-1", "111122223333", testMRK}},
		{"arn:aws-iso:kms:us-iso-east-1:111122223333:key/" + testUUID, ARN{"aws-iso", "us-iso-east-1", "111122223333", testUUID}},
		{"arn:aws-iso-b:kms:us-isob-east-1:111122223333:key/" + testUUID, ARN{"aws-iso-b", "us-isob-east-1", "111122223333", testUUID}},
		{"arn:aws-iso-e:kms:eu-isoe-west-1:111122223333:key/" + testUUID, ARN{"aws-iso-e", "eu-isoe-west-1", "111122223333", testUUID}},
		{"arn:aws-iso-f:kms:us-isof-south-1:111122223333:key/" + testUUID, ARN{"aws-iso-f", "us-isof-south-1", "111122223333", testUUID}},
		{"arn:aws-eusc:kms:eusc-de-east-1:111122223333:key/" + testUUID, ARN{"aws-eusc", "eusc-de-east-1", "111122223333", testUUID}},
	}
	for _, tt := range tests {
		got, err := ParseARN(tt.in)
		if err != nil {
			t.Errorf("ParseARN(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseARN(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if s := got.String(); s != tt.in {
			t.Errorf("ParseARN(%q).String() = %q", tt.in, s)
		}
	}
}

func TestParseARNRefuses(t *testing.T) {
	good := "arn:aws:kms:eu-west-1:111122223333:key/" + testUUID
	tests := []struct {
		name, in string
		// wantMsg is part of the message: the reason a person can act on.
		wantMsg string
	}{
		{"empty", "", "empty"},
		{"alias ARN", "arn:aws:kms:eu-west-1:111122223333:alias/tenant-key", "register the key's ARN, not an alias: aliases can be repointed"},
		{"alias name", "alias/tenant-key", "register the key's ARN, not an alias: aliases can be repointed"},
		{"bare key id", testUUID, "full ARN"},
		{"bare mrk id", testMRK, "full ARN"},
		{"key/ id", "key/" + testUUID, "full ARN"},
		{"not an ARN", "hello", "want"},
		{"too few parts", "arn:aws:kms:eu-west-1:111122223333", "want"},
		{"other service", "arn:aws:s3:eu-west-1:111122223333:key/" + testUUID, "not kms"},
		{"unknown partition", "arn:aws-xx:kms:eu-west-1:111122223333:key/" + testUUID, "unknown partition"},
		{"empty partition", "arn::kms:eu-west-1:111122223333:key/" + testUUID, "unknown partition"},
		{"empty region", "arn:aws:kms::111122223333:key/" + testUUID, "region"},
		{"region upper case", "arn:aws:kms:EU-WEST-1:111122223333:key/" + testUUID, "region"},
		{"region without number", "arn:aws:kms:eu-west:111122223333:key/" + testUUID, "region"},
		{"region with space", "arn:aws:kms:eu-west-1 :111122223333:key/" + testUUID, "region"},
		{"region of another partition", "arn:aws:kms:cn-north-1:111122223333:key/" + testUUID, "not in partition"},
		{"gov region in aws", "arn:aws:kms:us-gov-west-1:111122223333:key/" + testUUID, "not in partition"},
		{"aws region in aws-cn", "arn:aws-cn:kms:eu-west-1:111122223333:key/" + testUUID, "not in partition"},
		{"short account", "arn:aws:kms:eu-west-1:11112222333:key/" + testUUID, "12 digits"},
		{"long account", "arn:aws:kms:eu-west-1:1111222233334:key/" + testUUID, "12 digits"},
		{"letters in account", "arn:aws:kms:eu-west-1:11112222333a:key/" + testUUID, "12 digits"},
		{"other resource", "arn:aws:kms:eu-west-1:111122223333:grant/" + testUUID, "not key/"},
		{"no key id", "arn:aws:kms:eu-west-1:111122223333:key/", "key id"},
		{"upper-case uuid", "arn:aws:kms:eu-west-1:111122223333:key/" + strings.ToUpper(testUUID), "key id"},
		{"short uuid", "arn:aws:kms:eu-west-1:111122223333:key/" + testUUID[1:], "key id"},
		{"uuid without dashes", "arn:aws:kms:eu-west-1:111122223333:key/" + strings.ReplaceAll(testUUID, "-", ""), "key id"},
		{"short mrk", "arn:aws:kms:eu-west-1:111122223333:key/" + testMRK[:len(testMRK)-1], "key id"},
		{"mrk not hex", "arn:aws:kms:eu-west-1:111122223333:key/mrk-" + strings.Repeat("g", 32), "key id"},
		{"trailing colon part", good + ":extra", "key id"},
		{"trailing slash", good + "/", "key id"},
		{"trailing newline", good + "\n", "key id"},
		{"leading space", " " + good, "want"},
		{"too long", good + strings.Repeat("a", maxARNLen), "bytes long"},
	}
	for _, tt := range tests {
		got, err := ParseARN(tt.in)
		if err == nil {
			t.Errorf("%s: ParseARN(%q) = %+v, want an error", tt.name, tt.in, got)
			continue
		}
		if !errors.Is(err, ErrMalformedARN) {
			t.Errorf("%s: ParseARN error %v does not wrap ErrMalformedARN", tt.name, err)
		}
		if !strings.Contains(err.Error(), tt.wantMsg) {
			t.Errorf("%s: ParseARN error %q, want it to say %q", tt.name, err, tt.wantMsg)
		}
		if got != (ARN{}) {
			t.Errorf("%s: ParseARN returned %+v with its error, want the zero ARN", tt.name, got)
		}
	}
}

func TestARNMultiRegion(t *testing.T) {
	mrk := mustARN(t, "arn:aws:kms:eu-west-1:111122223333:key/"+testMRK)
	single := mustARN(t, "arn:aws:kms:eu-west-1:111122223333:key/"+testUUID)
	if !mrk.MultiRegion() {
		t.Errorf("%v.MultiRegion() = false, want true", mrk)
	}
	if single.MultiRegion() {
		t.Errorf("%v.MultiRegion() = true, want false", single)
	}
	if got, want := mrk.InRegion("eu-west-3").String(), "arn:aws:kms:eu-west-3:111122223333:key/"+testMRK; got != want {
		t.Errorf("InRegion(eu-west-3) = %s, want %s", got, want)
	}
	if got := single.InRegion("eu-west-3"); got != single {
		t.Errorf("single-region InRegion(eu-west-3) = %s, want the key unchanged, %s", got, single)
	}

	tests := []struct {
		a, b ARN
		want bool
	}{
		{mrk, mrk, true},
		{mrk, mrk.InRegion("eu-west-3"), true},
		{single, single, true},
		{single, ARN{single.Partition, "eu-west-3", single.Account, single.KeyID}, false},
		{mrk, ARN{mrk.Partition, mrk.Region, "444455556666", mrk.KeyID}, false},
		{mrk, ARN{"aws-cn", mrk.Region, mrk.Account, mrk.KeyID}, false},
		{mrk, single, false},
	}
	for _, tt := range tests {
		if got := tt.a.sameKey(tt.b); got != tt.want {
			t.Errorf("%s.sameKey(%s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func mustARN(t testing.TB, s string) ARN {
	t.Helper()
	a, err := ParseARN(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
