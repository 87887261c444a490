package server

import "testing"

func TestKindPath(t *testing.T) {
	for path, want := range map[string]bool{
		"/kmip/serverCA": true, "/kmip/endpoints": true,
		"/name": false, "/description": false, "/kmip": false, "/kmip/": false, "//x": false, "kmip/x": false, "": false,
	} {
		if got := kindPath(path); got != want {
			t.Errorf("kindPath(%q) = %v, want %v", path, got, want)
		}
	}
}
