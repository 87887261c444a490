package awskms_test

import (
	"errors"
	"fmt"

	"github.com/tenantcrypt/tenantcrypt/internal/kms/awskms"
)

func ExampleParseARN() {
	key, err := awskms.ParseARN("arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab")
	if err != nil {
		panic(err)
	}
	fmt.Println(key.Region, key.MultiRegion())
	fmt.Println(key.InRegion("eu-west-3"))

	_, err = awskms.ParseARN("arn:aws:kms:eu-west-1:111122223333:alias/payroll")
	fmt.Println(errors.Is(err, awskms.ErrMalformedARN))
	fmt.Println(err)
	// Output:
	// eu-west-1 true
	// arn:aws:kms:eu-west-3:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab
	// true
	// not a KMS key ARN: "arn:aws:kms:eu-west-1:111122223333:alias/payroll": register the key's ARN, not an alias: aliases can be repointed
}
