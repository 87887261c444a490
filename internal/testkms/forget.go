package testkms

import (
	"slices"
	"testing"
)

// StartWithout starts a server like Start, without the seeded keys keyIDs:
// the same Region and account as a server whose keys were deleted. local-kms
// keeps a key pending deletion for its whole waiting period (7 days at
// least), so a test that needs a key really gone points a Proxy at such a
// server with Proxy.Retarget, and KMS itself answers NotFoundException.
func StartWithout(t testing.TB, opts Options, keyIDs ...string) *Server {
	t.Helper()
	s := spawn(t, opts, func(k seedKey) bool { return !slices.Contains(keyIDs, k.id) })
	s.waitReady(t)
	return s
}
