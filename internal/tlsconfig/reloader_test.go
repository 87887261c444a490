package tlsconfig_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/tlsconfig"
)

// reloadSetup is a server with an operator's certificate, CN "one".
type reloadSetup struct {
	dir                       string
	ca                        *testCA
	certFile, keyFile, caFile string
	reloader                  *tlsconfig.Reloader
	addr                      string
}

func newReloadSetup(t *testing.T) *reloadSetup {
	t.Helper()
	s := &reloadSetup{dir: t.TempDir(), ca: newTestCA(t, "operator CA")}
	s.certFile, s.keyFile, s.caFile = operatorFiles(t, s.dir, s.ca, "one")
	cfg, r := newServerConfig(t, tlsconfig.Options{CertFile: s.certFile, KeyFile: s.keyFile})
	s.reloader, s.addr = r, startServer(t, cfg)
	if got, want := servedCN(t, s.addr, clientConfig(t, s.caFile)), "one"; got != want {
		t.Fatalf("served certificate %q at first, want %q", got, want)
	}
	return s
}

// install writes a new certificate with CN cn and a new key: the key first,
// as most tools do.
func (s *reloadSetup) install(t *testing.T, cn string) {
	t.Helper()
	certPEM, keyPEM := s.ca.issue(t, leafOptions{cn: cn})
	writeFile(t, s.keyFile, keyPEM, 0o600)
	writeFile(t, s.certFile, certPEM, 0o644)
}

func TestReload(t *testing.T) {
	s := newReloadSetup(t)
	first := s.reloader.Leaf()
	s.install(t, "two")

	// Nothing changes before the reload...
	if got, want := servedCN(t, s.addr, clientConfig(t, s.caFile)), "one"; got != want {
		t.Errorf("before Reload: served %q, want %q", got, want)
	}
	if err := s.reloader.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	// ...and a new connection sees the new certificate after it.
	if got, want := servedCN(t, s.addr, clientConfig(t, s.caFile)), "two"; got != want {
		t.Errorf("after Reload: served %q, want %q", got, want)
	}
	leaf := s.reloader.Leaf()
	if got, want := leaf.Subject.CommonName, "two"; got != want {
		t.Errorf("Leaf().Subject.CommonName = %q, want %q", got, want)
	}
	if leaf.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Errorf("Leaf() has the first certificate's serial number %v", first.SerialNumber)
	}
}

// TestReloadKeepsOldOnError checks that a reload that fails changes
// nothing: the previous certificate is still served.
func TestReloadKeepsOldOnError(t *testing.T) {
	for _, tt := range []struct {
		name    string
		damage  func(t *testing.T, s *reloadSetup)
		wantErr string
	}{
		{"garbage certificate", func(t *testing.T, s *reloadSetup) {
			writeFile(t, s.certFile, []byte("garbage\n"), 0o644)
		}, "server.pem"},
		{"truncated certificate", func(t *testing.T, s *reloadSetup) {
			certPEM, _ := s.ca.issue(t, leafOptions{cn: "two"})
			writeFile(t, s.certFile, certPEM[:len(certPEM)/2], 0o644)
		}, "server.pem"},
		{"empty key", func(t *testing.T, s *reloadSetup) {
			writeFile(t, s.keyFile, nil, 0o600)
		}, "server-key.pem"},
		{"new certificate, old key", func(t *testing.T, s *reloadSetup) {
			certPEM, _ := s.ca.issue(t, leafOptions{cn: "two"})
			writeFile(t, s.certFile, certPEM, 0o644)
		}, "does not match"},
		{"certificate removed", func(t *testing.T, s *reloadSetup) {
			if err := os.Remove(s.certFile); err != nil {
				t.Fatal(err)
			}
		}, "server.pem"},
		{"expired certificate", func(t *testing.T, s *reloadSetup) {
			certPEM, keyPEM := s.ca.issue(t, leafOptions{cn: "two", notAfter: time.Now().Add(-time.Second)})
			writeFile(t, s.keyFile, keyPEM, 0o600)
			writeFile(t, s.certFile, certPEM, 0o644)
		}, "expired"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newReloadSetup(t)
			before := s.reloader.Leaf()
			tt.damage(t, s)
			err := s.reloader.Reload()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Reload: err = %v, want one saying %q", err, tt.wantErr)
			}
			if got, want := servedCN(t, s.addr, clientConfig(t, s.caFile)), "one"; got != want {
				t.Errorf("after a failed Reload: served %q, want %q", got, want)
			}
			if s.reloader.Leaf() != before {
				t.Errorf("Leaf() changed after a failed Reload")
			}
			// Once the files are right again, a reload succeeds.
			s.install(t, "three")
			if err := s.reloader.Reload(); err != nil {
				t.Fatalf("Reload after repair: %v", err)
			}
			if got, want := servedCN(t, s.addr, clientConfig(t, s.caFile)), "three"; got != want {
				t.Errorf("after repair: served %q, want %q", got, want)
			}
		})
	}
}

// TestWatch checks that Watch picks up new files, reports a broken file
// once while the old certificate stays, and stops with its context.
func TestWatch(t *testing.T) {
	s := newReloadSetup(t)
	errs := make(chan error, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.reloader.Watch(ctx, 5*time.Millisecond, func(err error) { errs <- err })
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("Watch did not return after its context was cancelled")
		}
	}()
	client := clientConfig(t, s.caFile)

	// waitFor waits until the Reloader serves cn.
	waitFor := func(cn string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for s.reloader.Leaf().Subject.CommonName != cn {
			if time.Now().After(deadline) {
				t.Fatalf("Watch did not install %q; still serving %q", cn, s.reloader.Leaf().Subject.CommonName)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if got := servedCN(t, s.addr, client); got != cn {
			t.Errorf("served %q, want %q", got, cn)
		}
	}
	// drain discards errors from Watch catching the key written and the
	// certificate not yet: it reports them, and then installs the pair.
	drain := func() {
		for {
			select {
			case <-errs:
			default:
				return
			}
		}
	}

	s.install(t, "two")
	waitFor("two")
	drain()

	// A broken certificate is reported, once, and the old one stays.
	writeFile(t, s.certFile, []byte("garbage\n"), 0o644)
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "server.pem") {
			t.Errorf("reported %v, want an error naming server.pem", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Watch reported no error for a broken certificate file")
	}
	time.Sleep(50 * time.Millisecond) // ten intervals
	select {
	case err := <-errs:
		t.Errorf("Watch reported the same broken file again: %v", err)
	default:
	}
	if got, want := servedCN(t, s.addr, client), "two"; got != want {
		t.Errorf("with a broken file: served %q, want %q", got, want)
	}

	// Repaired files are picked up.
	s.install(t, "three")
	waitFor("three")
}

// TestWatchUnchanged checks that Watch leaves unchanged files alone.
func TestWatchUnchanged(t *testing.T) {
	s := newReloadSetup(t)
	before := s.reloader.Leaf()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	s.reloader.Watch(ctx, time.Millisecond, func(err error) { t.Errorf("Watch reported %v", err) })
	if s.reloader.Leaf() != before {
		t.Errorf("Watch reloaded files that did not change")
	}
}

// TestReloadDuringHandshakes reloads while clients connect, for the race
// detector: every handshake sees one whole certificate.
func TestReloadDuringHandshakes(t *testing.T) {
	s := newReloadSetup(t)
	client := clientConfig(t, s.caFile)
	pairs := map[string][2][]byte{}
	for _, cn := range []string{"one", "two"} {
		certPEM, keyPEM := s.ca.issue(t, leafOptions{cn: cn})
		pairs[cn] = [2][]byte{certPEM, keyPEM}
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := get(s.addr, client)
				if err != nil {
					t.Errorf("request during reloads: %v", err)
					return
				}
				if cn := resp.state.PeerCertificates[0].Subject.CommonName; cn != "one" && cn != "two" {
					t.Errorf("served %q, want one or two", cn)
				}
			}
		})
	}
	for i := range 40 {
		cn := []string{"one", "two"}[i%2]
		// Write both files before reloading: this test is about
		// handshakes racing reloads, not about half-written pairs.
		writeFile(t, s.keyFile, pairs[cn][1], 0o600)
		writeFile(t, s.certFile, pairs[cn][0], 0o644)
		if err := s.reloader.Reload(); err != nil {
			t.Errorf("Reload: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
}
