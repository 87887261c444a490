package awskind

import "testing"

func TestDRRegion(t *testing.T) {
	drs := map[string]string{"eu-west-1": "eu-west-3", "us-east-1": "us-west-2", "eu-west-3": "eu-west-3"}
	for _, tc := range []struct{ service, key, want string }{
		{"eu-west-1", "eu-west-1", "eu-west-3"},
		{"eu-west-1", "us-east-1", "us-west-2"},  // the key's own region's DR region
		{"us-east-1", "ap-south-1", "us-west-2"}, // none for the key's region: the service's
		{"ap-south-1", "ap-south-1", ""},         // none at all
		{"eu-west-1", "eu-west-3", ""},           // mapped to itself
		{"eu-west-3", "eu-west-3", ""},           // the service's own DR region is the key's
	} {
		if got := DRRegion(drs, tc.service, tc.key); got != tc.want {
			t.Errorf("DRRegion(service %s, key %s) = %q, want %q", tc.service, tc.key, got, tc.want)
		}
	}
}
