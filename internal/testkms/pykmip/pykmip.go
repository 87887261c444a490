// Package pykmip gives tests a real KMIP server: Debian's pykmip-server
// (python3-pykmip), started on a free 127.0.0.1 port with certificates
// made for the test, and a customer's administrator's tools to manage
// keys in it through PyKMIP's own Python client.
//
// Start starts a server and stops it when the test ends; it skips the test
// when pykmip-server is not installed. Server.Client issues a client
// certificate; PyKMIP gives each object to the certificate (its common
// name) that created it, so a test creates a key with the certificate it
// hands to the code under test. CreateKey, Activate, Revoke and Destroy
// are the key's life cycle. Withdraw and Grant switch the operation policy
// of every key CreateKey made between refusing and allowing its owner's
// use of it (the reversible pause); Distrust and Trust restart the server
// with a CA that no longer trusts, or again trusts, the client
// certificates; Stop and Restart simulate an outage.
//
// Every certificate is ECDSA P-256: PyKMIP's only AEAD TLS 1.2 suites are
// ECDHE-ECDSA with AES-GCM, and Go refuses its CBC suites. The server
// speaks TLS 1.2 only and requires the clientAuth extended key usage.
//
// PyKMIP's server takes a second or two to start and answers one request
// at a time per connection; it logs every message it receives and sends
// in hex at DEBUG level (Server.LogPath), which is where the fuzz seeds of
// the KMIP client's codec come from.
package pykmip

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

//go:embed testdata/serve.py
var serveScript []byte

//go:embed testdata/kmipctl.py
var ctlScript []byte

// startTimeout bounds how long pykmip-server may take to listen.
const startTimeout = 60 * time.Second

// Policy is the operation policy that CreateKey gives every key, loaded
// from the server's policy directory.
const Policy = "tenantcrypt"

// Credentials are a client certificate issued by a Server's CA.
type Credentials struct {
	// CN is the certificate's common name: the owner of the objects it
	// creates.
	CN string
	// CertPEM and KeyPEM are the certificate and its private key.
	CertPEM, KeyPEM []byte

	certPath, keyPath string
}

// Server is a running pykmip-server.
type Server struct {
	// Addr is "127.0.0.1:PORT".
	Addr string
	// CAPEM is the CA that issued the server's and the clients'
	// certificates: what a client gives as the server's CA.
	CAPEM []byte
	// LogPath is the server's log.
	LogPath string

	t       testing.TB
	python  string
	dir     string
	ca      *issuer
	caPath  string // the CA the server trusts for clients
	other   string // a CA that trusts no client (Distrust)
	policyN int
	// policyUse is what the policy file allows the keys' owner now.
	policyUse string

	// probe is a key of the server's own, for waitAccess.
	probe struct {
		creds Credentials
		uid   string
	}

	mu     sync.Mutex
	proc   *process
	issued int
}

type process struct {
	cmd    *exec.Cmd
	stdin  *os.File
	exited chan struct{}
	err    error
}

// Start starts a pykmip-server for the test, or skips the test when
// pykmip-server is not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, nil)
}

// StartPeer starts another server whose certificate the same CA issued and
// that trusts the same clients: another endpoint of s's cluster, as far
// as TLS goes. Its keys are its own (PyKMIP does not replicate).
func (s *Server) StartPeer(t testing.TB) *Server {
	t.Helper()
	return start(t, s.ca)
}

func start(t testing.TB, ca *issuer) *Server {
	t.Helper()
	python, err := interpreter()
	if err != nil {
		t.Skipf("pykmip: %v (install Debian's python3-pykmip)", err)
	}
	dir := t.TempDir()
	if ca == nil {
		ca = newIssuer(t, "tenantcrypt test KMIP CA")
	}
	s := &Server{t: t, python: python, dir: dir, ca: ca, CAPEM: ca.certPEM, LogPath: filepath.Join(dir, "server.log")}
	s.caPath = s.write("ca.pem", ca.certPEM)
	other := newIssuer(t, "a CA that trusts no tenantcrypt client")
	s.other = s.write("other-ca.pem", other.certPEM)
	certPEM, keyPEM := ca.issue(t, "127.0.0.1", true)
	s.write("server.pem", certPEM)
	s.write("server-key.pem", keyPEM)
	s.write("serve.py", serveScript)
	s.write("kmipctl.py", ctlScript)
	if err := os.Mkdir(filepath.Join(dir, "policies"), 0o700); err != nil {
		t.Fatal(err)
	}
	s.writePolicy(t, "ALLOW_OWNER")

	port, err := freePort()
	if err != nil {
		t.Fatalf("pykmip: finding a free port: %v", err)
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.start(t, s.caPath)
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// interpreter is the Python that pykmip-server runs with (its #! line).
func interpreter() (string, error) {
	path, err := exec.LookPath("pykmip-server")
	if err != nil {
		return "", err
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	fields := strings.Fields(strings.TrimPrefix(line, "#!"))
	if !strings.HasPrefix(line, "#!") || len(fields) == 0 {
		return "", fmt.Errorf("%s has no #! line", path)
	}
	return fields[0], nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) write(name string, b []byte) string {
	s.t.Helper()
	p := filepath.Join(s.dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		s.t.Fatal(err)
	}
	return p
}

// start runs the server trusting the client CA caPath and waits until it
// listens.
func (s *Server) start(t testing.TB, caPath string) {
	t.Helper()
	_, port, _ := net.SplitHostPort(s.Addr)
	conf := fmt.Sprintf(`[server]
hostname=127.0.0.1
port=%s
certificate_path=%s
key_path=%s
ca_path=%s
auth_suite=TLS1.2
policy_path=%s
enable_tls_client_auth=True
logging_level=DEBUG
database_path=%s
`, port, filepath.Join(s.dir, "server.pem"), filepath.Join(s.dir, "server-key.pem"), caPath,
		filepath.Join(s.dir, "policies"), filepath.Join(s.dir, "pykmip.db"))
	confPath := s.write("server.conf", []byte(conf))

	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(filepath.Join(s.dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	loaded := s.logCount("Loading policy: " + Policy)
	cmd := exec.Command(s.python, filepath.Join(s.dir, "serve.py"), "-f", confPath, "-l", s.LogPath)
	cmd.Dir = s.dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdinR, out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	stdinR.Close()
	out.Close()
	if err != nil {
		stdinW.Close()
		t.Fatalf("pykmip: starting pykmip-server: %v", err)
	}
	p := &process{cmd: cmd, stdin: stdinW, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-p.exited:
			t.Fatalf("pykmip: pykmip-server exited: %v: %s", p.err, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("pykmip: pykmip-server does not listen on %s after %v: %s", s.Addr, startTimeout, s.logTail())
		}
	}
	// The policy directory is read a second after start: keys made
	// before would be refused to everyone.
	s.waitLog(t, "Loading policy: "+Policy, loaded)
	if caPath == s.caPath && s.probe.uid != "" {
		s.waitAccess(t, s.policyUse)
	}
}

// Stop stops the server (an outage); Restart starts it again with the
// same keys. Stopping a stopped server does nothing.
func (s *Server) Stop(t testing.TB) {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	p.stdin.Close() // serve.py kills its process group
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

// Restart starts a stopped server again, on the same port with the same
// keys, trusting the clients.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop(t)
	s.start(t, s.caPath)
}

// Distrust restarts the server with a client CA that issued none of the
// clients' certificates: every client is refused in the TLS handshake, as
// when the customer's key manager stops trusting tenantcrypt's certificate.
func (s *Server) Distrust(t testing.TB) {
	t.Helper()
	s.Stop(t)
	s.start(t, s.other)
}

// Trust restarts the server trusting the clients again.
func (s *Server) Trust(t testing.TB) { s.Restart(t) }

// Withdraw changes the operation policy of the keys CreateKey made so that
// nobody may use them (Get, which PyKMIP checks for Encrypt and Decrypt,
// and Get Attributes): they answer Permission Denied. Their owner may
// still activate, revoke and destroy them. Grant allows their owner again.
// Both wait until the server has read the new policy.
func (s *Server) Withdraw(t testing.TB) { s.writePolicy(t, "DISALLOW_ALL") }

// Grant undoes Withdraw.
func (s *Server) Grant(t testing.TB) { s.writePolicy(t, "ALLOW_OWNER") }

// waitAccess waits until the server applies the policy: its log says it
// read the file before it stores the policy, so a key of the server's own
// is asked until the answer changes.
func (s *Server) waitAccess(t testing.TB, use string) {
	t.Helper()
	if s.probe.uid == "" {
		s.probe.creds = s.Client(t, "pykmip-policy-probe")
		s.probe.uid = s.CreateKey(t, s.probe.creds, KeyOptions{})
	}
	want := "allowed"
	if use != "ALLOW_OWNER" {
		want = "denied"
	}
	s.ctl(t, s.probe.creds, "wait-access", s.probe.uid, want)
}

func (s *Server) writePolicy(t testing.TB, use string) {
	t.Helper()
	s.policyUse = use
	policy := fmt.Sprintf(`{"%s": {"preset": {"SYMMETRIC_KEY": {
  "GET": "%s", "GET_ATTRIBUTES": "%s", "GET_ATTRIBUTE_LIST": "%s",
  "LOCATE": "ALLOW_OWNER", "CHECK": "ALLOW_OWNER", "ACTIVATE": "ALLOW_OWNER",
  "REVOKE": "ALLOW_OWNER", "DESTROY": "ALLOW_OWNER", "ADD_ATTRIBUTE": "ALLOW_OWNER",
  "MODIFY_ATTRIBUTE": "ALLOW_OWNER", "DELETE_ATTRIBUTE": "ALLOW_OWNER",
  "SET_ATTRIBUTE": "ALLOW_OWNER", "OBTAIN_LEASE": "ALLOW_OWNER"}}}}`, Policy, use, use, use)
	path := filepath.Join(s.dir, "policies", Policy+".json")
	loaded := s.logCount("Loading policies for file: " + path)
	if err := os.WriteFile(path, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	// The server reloads a file whose modification time grew; make sure
	// it grows even within the file system's time granularity.
	s.policyN++
	mtime := time.Unix(1_700_000_000+int64(s.policyN), 0)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	running := s.proc != nil
	s.mu.Unlock()
	if running {
		s.waitLog(t, "Loading policies for file: "+path, loaded)
		s.waitAccess(t, use)
	}
}

// logCount counts the server log's lines that contain what.
func (s *Server) logCount(what string) int {
	b, _ := os.ReadFile(s.LogPath)
	return bytes.Count(b, []byte(what))
}

// waitLog waits until the log has more than before lines containing what.
func (s *Server) waitLog(t testing.TB, what string, before int) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for s.logCount(what) <= before {
		if time.Now().After(deadline) {
			t.Fatalf("pykmip: the server did not log %q within %v: %s", what, startTimeout, s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Client issues a client certificate for cn, signed by the server's CA.
func (s *Server) Client(t testing.TB, cn string) Credentials {
	t.Helper()
	certPEM, keyPEM := s.ca.issue(t, cn, false)
	s.mu.Lock()
	s.issued++
	n := s.issued
	s.mu.Unlock()
	c := Credentials{CN: cn, CertPEM: certPEM, KeyPEM: keyPEM}
	c.certPath = s.write(fmt.Sprintf("client-%d.pem", n), certPEM)
	c.keyPath = s.write(fmt.Sprintf("client-%d-key.pem", n), keyPEM)
	return c
}

// KeyOptions vary the key CreateKey makes; the zero value is an Active
// AES-256 key for encryption and decryption.
type KeyOptions struct {
	// Length in bits; 0 means 256.
	Length int
	// Usage is the Cryptographic Usage Mask as PyKMIP names its bits;
	// nil means ENCRYPT and DECRYPT.
	Usage []string
	// PreActive leaves the key in the Pre-Active state.
	PreActive bool
}

// CreateKey creates an AES key owned by c with PyKMIP's client and
// returns its unique identifier.
func (s *Server) CreateKey(t testing.TB, c Credentials, opts KeyOptions) string {
	t.Helper()
	length := opts.Length
	if length == 0 {
		length = 256
	}
	usage := opts.Usage
	if usage == nil {
		usage = []string{"ENCRYPT", "DECRYPT"}
	}
	activate := "yes"
	if opts.PreActive {
		activate = "no"
	}
	return strings.TrimSpace(s.ctl(t, c, "create", strconv.Itoa(length), strings.Join(usage, ","), Policy, activate))
}

// Activate activates a Pre-Active key.
func (s *Server) Activate(t testing.TB, c Credentials, uid string) { s.ctl(t, c, "activate", uid) }

// Revoke revokes the key: Deactivated, or Compromised if compromised.
// KMIP has no way back from either.
func (s *Server) Revoke(t testing.TB, c Credentials, uid string, compromised bool) {
	reason := "superseded"
	if compromised {
		reason = "compromise"
	}
	s.ctl(t, c, "revoke", uid, reason)
}

// Destroy destroys the key, which must not be Active. PyKMIP deletes it:
// it is not found afterwards.
func (s *Server) Destroy(t testing.TB, c Credentials, uid string) { s.ctl(t, c, "destroy", uid) }

func (s *Server) ctl(t testing.TB, c Credentials, args ...string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(s.Addr)
	argv := append([]string{filepath.Join(s.dir, "kmipctl.py"), host, port, c.certPath, c.keyPath, s.caPath}, args...)
	cmd := exec.Command(s.python, argv...)
	cmd.Dir = s.dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pykmip: kmipctl %s: %v: %s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return string(out)
}

func (s *Server) logTail() string {
	var all []byte
	for _, name := range []string{"stdout.log", "server.log"} {
		b, _ := os.ReadFile(filepath.Join(s.dir, name))
		const max = 3000
		if len(b) > max {
			b = b[len(b)-max:]
		}
		all = append(all, fmt.Sprintf("\n--- %s:\n%s", name, b)...)
	}
	return string(all)
}

// issuer is a CA.
type issuer struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

func newIssuer(t testing.TB, name string) *issuer {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, key := certify(t, tmpl, nil)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &issuer{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue makes a certificate for a server at the IP address name, or for
// a client named name.
func (ca *issuer) issue(t testing.TB, name string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP(name)}
	}
	der, key := certify(t, tmpl, ca)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// certify makes a P-256 key and its certificate from tmpl, signed by ca
// (self-signed when ca is nil), and returns the certificate's DER.
func certify(t testing.TB, tmpl *x509.Certificate, ca *issuer) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	parent, signer := tmpl, any(key)
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
