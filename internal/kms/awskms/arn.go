package awskms

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrMalformedARN is wrapped by every error of ParseARN.
var ErrMalformedARN = errors.New("not a KMS key ARN")

// maxARNLen bounds the input ParseARN looks at. The longest valid key ARN
// (aws-us-gov partition, mrk- id) is under 90 bytes.
const maxARNLen = 256

// ARN names one KMS key in one region:
// arn:<partition>:kms:<region>:<account>:key/<key id>.
type ARN struct {
	Partition string // "aws", "aws-cn", "aws-us-gov", ...
	Region    string // "eu-west-1"
	Account   string // 12 digits
	KeyID     string // a UUID, or "mrk-" and 32 hex digits for a multi-region key
}

var (
	regionRE  = regexp.MustCompile(`^[a-z]{2,4}(-[a-z]{2,12}){1,3}-[1-9][0-9]?$`)
	accountRE = regexp.MustCompile(`^[0-9]{12}$`)
	uuidRE    = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	mrkRE     = regexp.MustCompile(`^mrk-[0-9a-f]{32}$`)
)

// partitionRegions lists the AWS partitions and the region prefix each
// owns; the commercial partition "aws" owns every other region.
var partitionRegions = map[string]string{
	"aws":        "",
	"aws-cn":     "cn-",
	"aws-us-gov": "us-gov-",
	"aws-iso":    "us-iso-",
	"aws-iso-b":  "us-isob-",
	"aws-iso-e":  "eu-isoe-",
	"aws-iso-f":  "us-isof-",
	"aws-eusc":   "eusc-",
}

// ParseARN parses the ARN of a KMS key, strictly: the partition must be
// an AWS partition that owns the region, the account 12 digits, the key
// id a lowercase UUID or mrk- id. An alias (alias/…, as an ARN or not) is
// refused, because an alias can be repointed to another key after
// registration; so is a bare key id. Errors wrap ErrMalformedARN.
func ParseARN(s string) (ARN, error) {
	if len(s) > maxARNLen {
		return ARN{}, fmt.Errorf("%w: %d bytes long, a key ARN has at most %d", ErrMalformedARN, len(s), maxARNLen)
	}
	bad := func(format string, args ...any) (ARN, error) {
		return ARN{}, fmt.Errorf("%w: %q: %s", ErrMalformedARN, s, fmt.Sprintf(format, args...))
	}
	const aliasAdvice = "register the key's ARN, not an alias: aliases can be repointed"
	if !strings.HasPrefix(s, "arn:") {
		switch {
		case s == "":
			return ARN{}, fmt.Errorf("%w: empty", ErrMalformedARN)
		case strings.HasPrefix(s, "alias/"):
			return bad(aliasAdvice)
		case uuidRE.MatchString(s) || mrkRE.MatchString(s) || strings.HasPrefix(s, "key/"):
			return bad("a key id alone names no account or region: register the key's full ARN, arn:aws:kms:REGION:ACCOUNT:key/%s", strings.TrimPrefix(s, "key/"))
		}
		return bad(`want "arn:PARTITION:kms:REGION:ACCOUNT:key/KEY-ID"`)
	}
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 {
		return bad(`want "arn:PARTITION:kms:REGION:ACCOUNT:key/KEY-ID"`)
	}
	a := ARN{Partition: parts[1], Region: parts[3], Account: parts[4]}
	service, resource := parts[2], parts[5]
	if service != "kms" {
		return bad("service %q is not kms", service)
	}
	if strings.HasPrefix(resource, "alias/") {
		return bad(aliasAdvice)
	}
	prefix, ok := partitionRegions[a.Partition]
	if !ok {
		return bad("unknown partition %q", a.Partition)
	}
	if !regionRE.MatchString(a.Region) {
		return bad("region %q is not an AWS region name", a.Region)
	}
	if !inPartition(a.Region, prefix) {
		return bad("region %q is not in partition %q", a.Region, a.Partition)
	}
	if !accountRE.MatchString(a.Account) {
		return bad("account %q is not 12 digits", a.Account)
	}
	id, ok := strings.CutPrefix(resource, "key/")
	if !ok {
		return bad("resource %q is not key/KEY-ID", resource)
	}
	if !uuidRE.MatchString(id) && !mrkRE.MatchString(id) {
		return bad("key id %q is neither a lowercase UUID nor mrk- and 32 lowercase hex digits", id)
	}
	a.KeyID = id
	return a, nil
}

// inPartition reports whether region belongs to the partition whose
// region prefix is prefix ("" for the commercial partition, which owns
// the regions no other partition does).
func inPartition(region, prefix string) bool {
	if prefix != "" {
		return strings.HasPrefix(region, prefix)
	}
	for _, p := range partitionRegions {
		if p != "" && strings.HasPrefix(region, p) {
			return false
		}
	}
	return true
}

// String is the ARN in its canonical form, which ParseARN accepts.
func (a ARN) String() string {
	return "arn:" + a.Partition + ":kms:" + a.Region + ":" + a.Account + ":key/" + a.KeyID
}

// MultiRegion reports whether a names a multi-region key (an mrk- id),
// whose replicas in other regions share its key material and key id.
func (a ARN) MultiRegion() bool { return strings.HasPrefix(a.KeyID, "mrk-") }

// InRegion is the ARN of the same multi-region key in region r: a
// replica's ARN differs from its primary's only in the region. A
// single-region key exists in its own region alone, so for it InRegion
// returns a unchanged.
func (a ARN) InRegion(r string) ARN {
	if a.MultiRegion() {
		a.Region = r
	}
	return a
}

// sameKey reports whether a and b name the same key material: equal, or
// two regions' replicas of one multi-region key.
func (a ARN) sameKey(b ARN) bool {
	return a.Partition == b.Partition && a.Account == b.Account && a.KeyID == b.KeyID &&
		(a.Region == b.Region || a.MultiRegion())
}
