package testkms

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// TestRetargetToServerWithoutKey: a proxy moved to a server started without
// a key answers for that key as AWS does for a deleted one, and for the
// other keys as before.
func TestRetargetToServerWithoutKey(t *testing.T) {
	ctx := context.Background()
	s := Start(t, Options{})
	p := NewProxy(t, s)
	c := p.Client(t)
	describe := func(id string) error {
		_, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
		return err
	}
	if err := describe(MultiRegionKeyID); err != nil {
		t.Fatalf("before: %v", err)
	}
	p.Retarget(StartWithout(t, Options{}, MultiRegionKeyID))
	var nf *types.NotFoundException
	if err := describe(MultiRegionKeyID); !errors.As(err, &nf) {
		t.Errorf("after Retarget, DescribeKey(%s) = %v, want NotFoundException", MultiRegionKeyID, err)
	}
	if err := describe(SecondMultiRegionKeyID); err != nil {
		t.Errorf("after Retarget, DescribeKey(%s) = %v, want the key", SecondMultiRegionKeyID, err)
	}
}
