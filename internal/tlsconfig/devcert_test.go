package tlsconfig_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/tlsconfig"
)

// devDir returns a directory for a development certificate that does not
// exist yet, as on a fresh machine.
func devDir(t *testing.T) string {
	return filepath.Join(t.TempDir(), "tls")
}

func ensureDev(t *testing.T, dir string, hosts ...string) tlsconfig.DevFiles {
	t.Helper()
	files, err := tlsconfig.EnsureDevCertificate(dir, hosts)
	if err != nil {
		t.Fatalf("EnsureDevCertificate: %v", err)
	}
	return files
}

// devSnapshot is the contents of a development certificate's files.
type devSnapshot struct {
	caCert, caKey, cert, key []byte
}

// snapshot reads the files in dir; a missing one reads as nil.
func snapshot(t *testing.T, dir string) devSnapshot {
	t.Helper()
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return data
	}
	return devSnapshot{
		caCert: read("ca.pem"),
		caKey:  read("ca-key.pem"),
		cert:   read("server.pem"),
		key:    read("server-key.pem"),
	}
}

// checkDevCert checks that the server certificate in files is valid now
// for at least 300 days, was issued by the CA in files and names hosts.
func checkDevCert(t *testing.T, files tlsconfig.DevFiles, hosts ...string) *x509.Certificate {
	t.Helper()
	leaf, _ := loadPair(t, files.Cert, files.Key)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(readFile(t, files.CACert)) {
		t.Fatalf("%s holds no certificate", files.CACert)
	}
	for _, h := range append([]string{"localhost", "127.0.0.1", "::1"}, hosts...) {
		_, err := leaf.Verify(x509.VerifyOptions{
			Roots:     roots,
			DNSName:   h,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			t.Errorf("server certificate for %q: %v", h, err)
		}
	}
	if left := time.Until(leaf.NotAfter); left < 300*24*time.Hour {
		t.Errorf("server certificate expires in %v, want at least 300 days", left)
	}
	return leaf
}

func TestEnsureDevCertificateCreates(t *testing.T) {
	dir := devDir(t)
	files := ensureDev(t, dir, "tenantcrypt.test", "10.1.2.3")

	want := tlsconfig.DevFiles{
		CACert: filepath.Join(dir, "ca.pem"),
		Cert:   filepath.Join(dir, "server.pem"),
		Key:    filepath.Join(dir, "server-key.pem"),
	}
	if files != want {
		t.Errorf("files = %+v, want %+v", files, want)
	}
	if runtime.GOOS != "windows" {
		for _, tt := range []struct {
			path string
			want os.FileMode
		}{
			{dir, 0o700 | os.ModeDir},
			{files.CACert, 0o644},
			{filepath.Join(dir, "ca-key.pem"), 0o600},
			{files.Cert, 0o644},
			{files.Key, 0o600},
		} {
			info, err := os.Stat(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if got := info.Mode(); got != tt.want {
				t.Errorf("mode of %s = %v, want %v", filepath.Base(tt.path), got, tt.want)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".devcert.lock")); !os.IsNotExist(err) {
		t.Errorf("lock file left behind: stat: %v", err)
	}

	ca, caKey := loadPair(t, files.CACert, filepath.Join(dir, "ca-key.pem"))
	if got, want := ca.Subject.CommonName, "tenantcrypt development CA"; got != want {
		t.Errorf("CA name = %q, want %q", got, want)
	}
	if !ca.IsCA || !ca.BasicConstraintsValid || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA certificate: IsCA %v, basic constraints %v, key usage %b; want a CA that signs certificates",
			ca.IsCA, ca.BasicConstraintsValid, ca.KeyUsage)
	}
	if k, ok := caKey.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("CA key is a %T, want an ECDSA P-256 key", caKey)
	}
	if got, want := ca.NotAfter, time.Now().AddDate(10, 0, 0); got.Before(want.Add(-48*time.Hour)) || got.After(want) {
		t.Errorf("CA expires at %v, want about %v", got, want)
	}

	leaf := checkDevCert(t, files, "tenantcrypt.test", "10.1.2.3")
	if got, want := leaf.NotAfter, time.Now().AddDate(1, 0, 0); got.Before(want.Add(-48*time.Hour)) || got.After(want) {
		t.Errorf("server certificate expires at %v, want about %v", got, want)
	}
	if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("server key is a %T, want an ECDSA P-256 key", leaf.PublicKey)
	}
	if leaf.IsCA {
		t.Errorf("server certificate is a CA")
	}
}

// TestEnsureDevCertificateHosts checks that the server certificate is kept
// while it names every requested host and reissued under the same CA as
// soon as one is missing.
func TestEnsureDevCertificateHosts(t *testing.T) {
	for _, tt := range []struct {
		name        string
		first, next []string
		wantReissue bool
	}{
		{"same hosts", []string{"a.test", "10.0.0.1"}, []string{"a.test", "10.0.0.1"}, false},
		{"fewer hosts", []string{"a.test", "10.0.0.1"}, []string{"10.0.0.1"}, false},
		{"defaults only", nil, []string{"localhost", "127.0.0.1", "::1"}, false},
		{"other spelling", []string{"a.test", "2001:db8::1"}, []string{"A.Test.", "[2001:db8:0::1]", " "}, false},
		{"unspecified addresses skipped", nil, []string{"0.0.0.0", "::", ""}, false},
		{"IPv4-mapped address", []string{"10.0.0.1"}, []string{"::ffff:10.0.0.1"}, false},
		{"new DNS name", []string{"a.test"}, []string{"a.test", "b.test"}, true},
		{"new IP address", []string{"a.test"}, []string{"a.test", "192.0.2.7"}, true},
		{"new wildcard", []string{"a.test"}, []string{"*.a.test"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := devDir(t)
			ensureDev(t, dir, tt.first...)
			before := snapshot(t, dir)
			files := ensureDev(t, dir, tt.next...)
			after := snapshot(t, dir)

			if !bytes.Equal(after.caCert, before.caCert) || !bytes.Equal(after.caKey, before.caKey) {
				t.Errorf("the CA changed; it must be kept")
			}
			reissued := !bytes.Equal(after.cert, before.cert)
			if got, want := reissued, tt.wantReissue; got != want {
				t.Errorf("server certificate reissued = %v, want %v", got, want)
			}
			if got, want := !bytes.Equal(after.key, before.key), tt.wantReissue; got != want {
				t.Errorf("server key replaced = %v, want %v", got, want)
			}
			var hosts []string
			for _, h := range tt.next {
				if h = strings.Trim(strings.TrimSpace(h), "[]."); h != "" && h != "0.0.0.0" && h != "::" && !strings.HasPrefix(h, "*") {
					hosts = append(hosts, h)
				}
			}
			leaf := checkDevCert(t, files, hosts...)
			if tt.name == "new wildcard" && !strings.Contains(strings.Join(leaf.DNSNames, " "), "*.a.test") {
				t.Errorf("DNS names = %q, want *.a.test among them", leaf.DNSNames)
			}
		})
	}
}

// TestEnsureDevCertificateReuses checks that a second start changes
// nothing, byte for byte.
func TestEnsureDevCertificateReuses(t *testing.T) {
	dir := devDir(t)
	ensureDev(t, dir, "a.test")
	before := snapshot(t, dir)
	ensureDev(t, dir, "a.test")
	if after := snapshot(t, dir); !bytes.Equal(after.caCert, before.caCert) || !bytes.Equal(after.caKey, before.caKey) ||
		!bytes.Equal(after.cert, before.cert) || !bytes.Equal(after.key, before.key) {
		t.Errorf("a second call rewrote files; want all four kept")
	}
}

// TestEnsureDevCertificateReissues damages the server certificate in the
// ways that happen and checks that a new one is issued by the same CA.
func TestEnsureDevCertificateReissues(t *testing.T) {
	// craft issues a server certificate for files' key from the
	// development CA with the given validity.
	craft := func(t *testing.T, dir string, files tlsconfig.DevFiles, notBefore, notAfter time.Time) {
		ca, caKey := loadPair(t, files.CACert, filepath.Join(dir, "ca-key.pem"))
		_, key := loadPair(t, files.Cert, files.Key)
		tmpl := &x509.Certificate{
			Subject:     pkix.Name{CommonName: "crafted"},
			NotBefore:   notBefore,
			NotAfter:    notAfter,
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			DNSNames:    []string{"localhost"},
		}
		writeFile(t, files.Cert, encodeCert(createCert(t, tmpl, ca, key.Public(), caKey)), 0o644)
	}
	now := time.Now()
	for _, tt := range []struct {
		name   string
		damage func(t *testing.T, dir string, files tlsconfig.DevFiles)
	}{
		{"expired", func(t *testing.T, dir string, files tlsconfig.DevFiles) {
			craft(t, dir, files, now.AddDate(-1, 0, -1), now.AddDate(0, 0, -1))
		}},
		{"expires within 30 days", func(t *testing.T, dir string, files tlsconfig.DevFiles) {
			craft(t, dir, files, now.AddDate(-1, 0, 0), now.AddDate(0, 0, 29))
		}},
		{"not yet valid", func(t *testing.T, dir string, files tlsconfig.DevFiles) {
			craft(t, dir, files, now.AddDate(0, 0, 1), now.AddDate(1, 0, 0))
		}},
		{"signed by another CA", func(t *testing.T, dir string, files tlsconfig.DevFiles) {
			certPEM, keyPEM := newTestCA(t, "tenantcrypt development CA").issue(t, leafOptions{cn: "other", notAfter: now.AddDate(1, 0, 0)})
			writeFile(t, files.Cert, certPEM, 0o644)
			writeFile(t, files.Key, keyPEM, 0o600)
		}},
		{"server key missing", func(t *testing.T, dir string, files tlsconfig.DevFiles) {
			if err := os.Remove(files.Key); err != nil {
				t.Fatal(err)
			}
		}},
		{"server certificate missing", func(t *testing.T, dir string, files tlsconfig.DevFiles) {
			if err := os.Remove(files.Cert); err != nil {
				t.Fatal(err)
			}
		}},
		{"key does not match", func(t *testing.T, dir string, files tlsconfig.DevFiles) {
			writeFile(t, files.Key, encodeKey(t, newECKey(t)), 0o600)
		}},
		{"corrupt certificate", func(t *testing.T, dir string, files tlsconfig.DevFiles) {
			writeFile(t, files.Cert, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644)
		}},
		{"corrupt key", func(t *testing.T, dir string, files tlsconfig.DevFiles) {
			writeFile(t, files.Key, []byte("not a key"), 0o600)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := devDir(t)
			files := ensureDev(t, dir)
			tt.damage(t, dir, files)
			before := snapshot(t, dir)
			ensureDev(t, dir)
			after := snapshot(t, dir)
			if !bytes.Equal(after.caCert, before.caCert) || !bytes.Equal(after.caKey, before.caKey) {
				t.Errorf("the CA changed; it must be kept")
			}
			if bytes.Equal(after.cert, before.cert) {
				t.Errorf("server certificate kept; want a new one")
			}
			checkDevCert(t, files)
		})
	}
}

// TestEnsureDevCertificateCA checks what happens when the CA itself is
// missing or near its end.
func TestEnsureDevCertificateCA(t *testing.T) {
	for _, tt := range []struct {
		name   string
		damage func(t *testing.T, dir string, files tlsconfig.DevFiles)
		// What must stay: the CA key, and the server certificate, which a
		// CA certificate made anew for the same key still verifies.
		wantSameKey, wantSameCert bool
	}{
		{"CA certificate missing", func(t *testing.T, dir string, files tlsconfig.DevFiles) {
			if err := os.Remove(files.CACert); err != nil {
				t.Fatal(err)
			}
		}, true, true},
		{"CA certificate near its end", func(t *testing.T, dir string, files tlsconfig.DevFiles) {
			ca, caKey := loadPair(t, files.CACert, filepath.Join(dir, "ca-key.pem"))
			tmpl := *ca
			tmpl.NotAfter = time.Now().AddDate(0, 6, 0)
			writeFile(t, files.CACert, encodeCert(createCert(t, &tmpl, &tmpl, caKey.Public(), caKey)), 0o644)
		}, true, true},
		{"CA certificate of another key", func(t *testing.T, dir string, files tlsconfig.DevFiles) {
			writeFile(t, files.CACert, newTestCA(t, "tenantcrypt development CA").certPEM(), 0o644)
		}, true, true},
		{"CA key missing", func(t *testing.T, dir string, files tlsconfig.DevFiles) {
			if err := os.Remove(filepath.Join(dir, "ca-key.pem")); err != nil {
				t.Fatal(err)
			}
		}, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := devDir(t)
			files := ensureDev(t, dir)
			before := snapshot(t, dir)
			tt.damage(t, dir, files)
			ensureDev(t, dir)
			after := snapshot(t, dir)
			if got, want := bytes.Equal(after.caKey, before.caKey), tt.wantSameKey; got != want {
				t.Errorf("CA key kept = %v, want %v", got, want)
			}
			if got, want := bytes.Equal(after.cert, before.cert), tt.wantSameCert; got != want {
				t.Errorf("server certificate kept = %v, want %v", got, want)
			}
			ca, _ := loadPair(t, files.CACert, filepath.Join(dir, "ca-key.pem"))
			if left := time.Until(ca.NotAfter); left < 9*365*24*time.Hour {
				t.Errorf("CA expires in %v, want about 10 years", left)
			}
			checkDevCert(t, files)
			// And now it is stable.
			ensureDev(t, dir)
			if again := snapshot(t, dir); !bytes.Equal(again.caCert, after.caCert) || !bytes.Equal(again.cert, after.cert) {
				t.Errorf("a further call rewrote files")
			}
		})
	}
}

func TestEnsureDevCertificateRefuses(t *testing.T) {
	for _, tt := range []struct {
		name    string
		file    string
		mode    os.FileMode
		data    []byte // nil: keep the contents
		wantErr string
	}{
		{"CA key readable by group", "ca-key.pem", 0o640, nil, "chmod 600"},
		{"CA key readable by others", "ca-key.pem", 0o604, nil, "chmod 600"},
		{"server key readable by others", "server-key.pem", 0o644, nil, "chmod 600"},
		{"server key writable by group", "server-key.pem", 0o620, nil, "chmod 600"},
		{"CA key is no key", "ca-key.pem", 0o600, []byte("not a key\n"), "remove it"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if runtime.GOOS == "windows" && tt.data == nil {
				t.Skip("no Unix file modes on Windows")
			}
			dir := devDir(t)
			ensureDev(t, dir)
			path := filepath.Join(dir, tt.file)
			data := tt.data
			if data == nil {
				data = readFile(t, path)
			}
			writeFile(t, path, data, tt.mode)
			before := snapshot(t, dir)

			_, err := tlsconfig.EnsureDevCertificate(dir, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
				t.Fatalf("err = %v, want one naming %s and saying %q", err, path, tt.wantErr)
			}
			// Even when the certificate would need reissuing.
			_, err = tlsconfig.EnsureDevCertificate(dir, []string{"new.test"})
			if err == nil {
				t.Errorf("with a new host: err = nil, want an error")
			}
			if after := snapshot(t, dir); !bytes.Equal(after.caKey, before.caKey) || !bytes.Equal(after.key, before.key) ||
				!bytes.Equal(after.cert, before.cert) {
				t.Errorf("files changed after a refusal")
			}
		})
	}
}

func TestEnsureDevCertificateBadHosts(t *testing.T) {
	for _, host := range []string{
		"localhost:8443",
		"exa mple.test",
		"fe80::1%eth0",
		"-bad.test",
		"a..test",
		"a.*.test",
		"*",
		"https://a.test",
		strings.Repeat("a", 64) + ".test",
	} {
		t.Run(host, func(t *testing.T) {
			dir := devDir(t)
			_, err := tlsconfig.EnsureDevCertificate(dir, []string{"good.test", host})
			if err == nil {
				t.Fatalf("err = nil, want an error for host %q", host)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("directory created despite the error: stat: %v", err)
			}
		})
	}
}

// TestEnsureDevCertificateConcurrent starts several servers on one fresh
// data directory at once: they must agree on one CA and one key pair.
func TestEnsureDevCertificateConcurrent(t *testing.T) {
	dir := devDir(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = tlsconfig.EnsureDevCertificate(dir, []string{"a.test"})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	files := ensureDev(t, dir, "a.test")
	checkDevCert(t, files, "a.test")
}

// TestEnsureDevCertificateStaleLock checks that a lock left by a crashed
// process does not block the next start for long.
func TestEnsureDevCertificateStaleLock(t *testing.T) {
	dir := devDir(t)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, ".devcert.lock")
	if err := os.WriteFile(lock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Minute)
	if err := os.Chtimes(lock, old, old); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	files := ensureDev(t, dir)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v with a stale lock, want it broken at once", took)
	}
	checkDevCert(t, files)
	if _, err := os.Stat(lock); !os.IsNotExist(err) {
		t.Errorf("lock file left behind: stat: %v", err)
	}
}
