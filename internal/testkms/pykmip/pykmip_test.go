package pykmip_test

import (
	"testing"

	"github.com/tenantcrypt/tenantcrypt/internal/testkms/pykmip"
)

// TestLifecycle drives a key through PyKMIP's life cycle with PyKMIP's
// own client; the KMIP client's tests check what each step looks like.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	s := pykmip.Start(t)
	c := s.Client(t, "tenant-a")
	uid := s.CreateKey(t, c, pykmip.KeyOptions{})
	if uid == "" {
		t.Fatal("CreateKey returned no unique identifier")
	}
	pre := s.CreateKey(t, c, pykmip.KeyOptions{PreActive: true, Length: 128})
	s.Activate(t, c, pre)
	s.Revoke(t, c, uid, false)
	s.Destroy(t, c, uid)
	s.Revoke(t, c, pre, true)

	s.Withdraw(t)
	s.Grant(t)
	s.Restart(t)
	s.CreateKey(t, c, pykmip.KeyOptions{})
}
