package testkms

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// DefaultRegion is the Region of a server whose Options.Region is empty.
const DefaultRegion = "eu-west-1"

// DefaultAccountID is the account of a server whose Options.AccountID is
// empty (local-kms's own default).
const DefaultAccountID = "111122223333"

// startTimeout bounds how long a started local-kms may take to answer.
const startTimeout = 30 * time.Second

// Options configure a server started by Start.
type Options struct {
	// Region is the AWS Region the server emulates; default DefaultRegion.
	Region string
	// AccountID is the AWS account the server emulates; default
	// DefaultAccountID.
	AccountID string
}

// Server is a running local-kms process, one emulated AWS KMS Region,
// listening on 127.0.0.1 only. It is stopped, and its data removed, when
// the test that started it ends.
type Server struct {
	// URL is the endpoint, http://127.0.0.1:PORT, for the AWS SDK's
	// BaseEndpoint or tenantcrypt's --kms-endpoint REGION=URL.
	URL string
	// Region is the AWS Region the server emulates: it appears in its ARNs.
	Region string
	// AccountID is the AWS account the server emulates.
	AccountID string

	cmd     *exec.Cmd
	stdin   *os.File // closing it stops the process
	stdout  *os.File
	logPath string
	exited  chan struct{} // closed when the process has exited
	waitErr error         // set before exited is closed
}

// Start starts a local-kms server seeded with SymmetricKeyID,
// MultiRegionKeyID, SecondMultiRegionKeyID and AsymmetricKeyID, and waits
// until it answers. It skips the test if the go command, which builds
// local-kms on first use, is not available; it fails the test on any other
// error.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := spawn(t, opts, func(seedKey) bool { return true })
	s.waitReady(t)
	return s
}

// StartPair starts two servers for the Regions primary and dr (the
// platform's DR Region), as the two Regions of a multi-Region key: both hold
// MultiRegionKeyID and SecondMultiRegionKeyID with the same key material, as
// AWS keeps it for a primary key and its replica. Like single-Region keys in
// AWS, SymmetricKeyID and AsymmetricKeyID exist in the primary Region only.
// Both use DefaultAccountID.
//
// local-kms does not know multi-Region keys: DescribeKey does not report
// them and Decrypt in dr of a ciphertext made in primary needs the KeyId
// parameter. Put a Proxy in front of each server and call SetMultiRegion for
// the metadata.
func StartPair(t testing.TB, primary, dr string) (*Server, *Server) {
	t.Helper()
	if primary == dr || primary == "" || dr == "" {
		t.Fatalf("testkms.StartPair(%q, %q): need two different Regions", primary, dr)
	}
	p := spawn(t, Options{Region: primary}, func(seedKey) bool { return true })
	d := spawn(t, Options{Region: dr}, func(k seedKey) bool { return k.multiRegion })
	p.waitReady(t)
	d.waitReady(t)
	return p, d
}

// ARN returns the ARN of the key keyID in s's Region and account.
func (s *Server) ARN(keyID string) string {
	return keyARN(s.Region, s.AccountID, keyID)
}

func keyARN(region, account, keyID string) string {
	return "arn:aws:kms:" + region + ":" + account + ":key/" + keyID
}

// spawn starts the process without waiting for it to answer, so that
// StartPair starts both Regions at once.
func spawn(t testing.TB, opts Options, include func(seedKey) bool) *Server {
	t.Helper()
	if opts.Region == "" {
		opts.Region = DefaultRegion
	}
	if opts.AccountID == "" {
		opts.AccountID = DefaultAccountID
	}
	bin, err := binary()
	if errors.Is(err, errNoGo) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatalf("testkms: building local-kms: %v", err)
	}

	// The directory outlives the process: t.TempDir's cleanup, registered
	// first, runs after the one below that stops the process.
	dir := t.TempDir()
	seedPath := filepath.Join(dir, "seed.yaml")
	if err := os.WriteFile(seedPath, []byte(seedYAML(include)), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &Server{
		Region:    opts.Region,
		AccountID: opts.AccountID,
		logPath:   filepath.Join(dir, "local-kms.log"),
		exited:    make(chan struct{}),
	}
	logFile, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdinR.Close()
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		stdinW.Close()
		t.Fatal(err)
	}
	defer stdoutW.Close()

	s.cmd = exec.Command(bin,
		"-addr", "127.0.0.1:0",
		"-region", opts.Region,
		"-account", opts.AccountID,
		"-data", filepath.Join(dir, "data"),
		"-seed", seedPath)
	s.cmd.Stdin = stdinR
	s.cmd.Stdout = stdoutW
	s.cmd.Stderr = logFile
	if err := s.cmd.Start(); err != nil {
		stdinW.Close()
		stdoutR.Close()
		t.Fatalf("testkms: starting local-kms: %v", err)
	}
	s.stdin, s.stdout = stdinW, stdoutR
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// waitReady waits for the address the process prints, then for an answer.
func (s *Server) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	line := make(chan string, 1)
	go func() {
		defer s.stdout.Close()
		r := bufio.NewReader(s.stdout)
		l, _ := r.ReadString('\n')
		line <- l
		_, _ = io.Copy(io.Discard, r) // nothing more is expected
	}()
	var addr string
	select {
	case l := <-line:
		addr, _ = strings.CutPrefix(strings.TrimSpace(l), "listening on ")
		if !strings.HasPrefix(addr, "http://127.0.0.1:") {
			t.Fatalf("testkms: local-kms (%s) did not start: %s", s.Region, s.logTail())
		}
	case <-time.After(time.Until(deadline)):
		t.Fatalf("testkms: local-kms (%s) did not start within %v: %s", s.Region, startTimeout, s.logTail())
	}
	s.URL = addr

	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	for {
		err := probe(c, s.URL)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testkms: local-kms (%s) at %s does not answer: %v: %s", s.Region, s.URL, err, s.logTail())
		}
		select {
		case <-s.exited:
			t.Fatalf("testkms: local-kms (%s) exited: %v: %s", s.Region, s.waitErr, s.logTail())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// probe makes one unsigned ListKeys call (local-kms does not check
// signatures).
func probe(c *http.Client, url string) error {
	req, err := http.NewRequest(http.MethodPost, url+"/", strings.NewReader("{}"))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "TrentService.ListKeys")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ListKeys: %s", resp.Status)
	}
	return nil
}

// stop ends the process: closing its standard input asks it to shut down;
// after a grace period it is killed.
func (s *Server) stop(t testing.TB) {
	select {
	case <-s.exited:
		// Nothing stops it but this function: it crashed.
		if !t.Failed() { // else waitReady has said so
			t.Errorf("testkms: local-kms (%s) exited during the test: %v: %s", s.Region, s.waitErr, s.logTail())
		}
		s.stdin.Close()
		return
	default:
	}
	s.stdin.Close()
	select {
	case <-s.exited:
		if s.waitErr != nil {
			t.Errorf("testkms: local-kms (%s) did not stop cleanly: %v: %s", s.Region, s.waitErr, s.logTail())
		}
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		t.Logf("testkms: local-kms (%s) did not stop within 10s and was killed", s.Region)
	}
}

// logTail returns the end of the process's log, for error messages.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return err.Error()
	}
	const max = 2048
	if len(b) > max {
		b = b[len(b)-max:]
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "(log empty)"
	}
	return "log:\n" + string(b)
}
