// Command localkms serves local-kms (github.com/nsmithuk/local-kms, an AWS
// KMS emulator) on a loopback address. It is for tests only: package testkms
// builds it and runs one process per emulated region.
//
// local-kms's own main listens on every interface and takes its settings from
// the environment. This wrapper uses local-kms's exported packages instead, so
// that the emulator is reachable from this machine only:
//
//	localkms -addr 127.0.0.1:0 -region eu-west-1 -account 111122223333 \
//	    -data DIR -seed FILE.yaml
//
// Besides the AWS KMS API it answers one action of its own, for
// testkms.Server.RotateKey: X-Amz-Target TestKMS.AddBackingKey appends a
// backing key to a symmetric key while the server runs (see serveRotate).
//
// Once it listens it prints one line, "listening on http://HOST:PORT", on
// standard output. It stops when standard input reaches end of file (so a
// test process that dies, closing the pipe, takes its emulators with it) or on
// SIGINT/SIGTERM.
//
// Region and account live in package-level variables of local-kms
// (src/config), which is why every region needs its own process.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	localkms "github.com/nsmithuk/local-kms/src"
	"github.com/nsmithuk/local-kms/src/cmk"
	"github.com/nsmithuk/local-kms/src/config"
	"github.com/nsmithuk/local-kms/src/data"
	"gopkg.in/yaml.v2"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "localkms:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:0", "loopback `host:port` to listen on (port 0: any free port)")
	region := flag.String("region", "eu-west-1", "AWS `region` to emulate")
	account := flag.String("account", "111122223333", "AWS account `id` to emulate")
	dataDir := flag.String("data", "", "`directory` of the key database (required)")
	seedPath := flag.String("seed", "", "seed `file` (local-kms YAML format) with the keys to create")
	flag.Parse()
	if *dataDir == "" || flag.NArg() > 0 {
		flag.Usage()
		return errors.New("usage")
	}
	if err := checkLoopback(*addr); err != nil {
		return err
	}

	config.AWSRegion = *region
	config.AWSAccountId = *account
	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return err
	}
	config.DatabasePath = dir
	db := data.NewDatabase(dir) // panics if the database cannot be opened
	defer db.Close()

	if *seedPath != "" {
		if err := seed(db, *seedPath); err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	// A rotation waits for the calls in progress and holds the next ones:
	// every call sees the key wholly before or wholly after it, as in AWS.
	var rotating sync.RWMutex
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Amzn-Requestid", newRequestID())
			if r.Header.Get("X-Amz-Target") == rotateTarget {
				rotating.Lock()
				defer rotating.Unlock()
				serveRotate(w, r, db)
				return
			}
			rotating.RLock()
			defer rotating.RUnlock()
			localkms.HandleRequest(w, r, db)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Printf("listening on http://%s\n", ln.Addr())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	stdinClosed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
		close(stdinClosed)
	}()
	select {
	case err := <-served:
		return err
	case <-stop:
	case <-stdinClosed:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		_ = srv.Close()
	}
	return nil
}

// checkLoopback refuses to listen anywhere but on a loopback address: the
// emulator has no authentication at all.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %s: only loopback IP addresses are allowed", addr)
	}
	return nil
}

// seed creates the keys of a local-kms seed file that do not exist yet. It is
// local-kms's own seeding (src/seed.go, unexported) minus aliases and the
// legacy format, and strict: a seed file that does not parse is an error.
// The key types' UnmarshalYAML methods read config, so it runs after config is
// set.
func seed(db *data.Database, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var in struct {
		Keys struct {
			Symmetric struct {
				Aes []cmk.AesKey `yaml:"Aes"`
			} `yaml:"Symmetric"`
			Asymmetric struct {
				Rsa []cmk.RsaKey `yaml:"Rsa"`
				Ecc []cmk.EccKey `yaml:"Ecc"`
			} `yaml:"Asymmetric"`
		} `yaml:"Keys"`
	}
	if err := yaml.UnmarshalStrict(b, &in); err != nil {
		return fmt.Errorf("seed file %s: %w", path, err)
	}
	var keys []cmk.Key
	for i := range in.Keys.Symmetric.Aes {
		keys = append(keys, &in.Keys.Symmetric.Aes[i])
	}
	for i := range in.Keys.Asymmetric.Rsa {
		keys = append(keys, &in.Keys.Asymmetric.Rsa[i])
	}
	for i := range in.Keys.Asymmetric.Ecc {
		keys = append(keys, &in.Keys.Asymmetric.Ecc[i])
	}
	for _, k := range keys {
		_, err := db.LoadKey(k.GetArn())
		if err == nil {
			continue // already there: seeding never overwrites
		}
		if !errors.As(err, &data.KeyNotFoundError) {
			return err
		}
		if err := db.SaveKey(k); err != nil {
			return err
		}
	}
	return nil
}

// newRequestID returns a random UUID, the form of AWS request ids. local-kms
// sends none; the AWS SDK reads it from the x-amzn-RequestId header.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// rotateTarget is the X-Amz-Target of the wrapper's own rotation action.
const rotateTarget = "TestKMS.AddBackingKey"

// serveRotate appends a backing key to a symmetric key, as AWS KMS does when
// it rotates a key: the key keeps its id, state and older backing keys,
// and local-kms's Encrypt and GenerateDataKey use the last one from now on.
// The request is {"KeyArn": ARN, "Index": N, "Material": HEX}: Index must
// be the key's number of backing keys (so that a repeated request does not
// add a second one), Material 32 bytes. The answer is {"Index": N}, or a
// 409 {"BackingKeys": COUNT} when Index is not the count (-1 asks for it).
func serveRotate(w http.ResponseWriter, r *http.Request, db *data.Database) {
	var in struct {
		KeyArn   string
		Index    int
		Material string
	}
	fail := func(status int, format string, args ...any) {
		http.Error(w, fmt.Sprintf(format, args...), status)
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		fail(http.StatusBadRequest, "%s: %v", rotateTarget, err)
		return
	}
	material, err := hex.DecodeString(in.Material)
	if err != nil || len(material) != 32 {
		fail(http.StatusBadRequest, "%s: Material must be 32 bytes in hex", rotateTarget)
		return
	}
	k, err := db.LoadKey(in.KeyArn)
	if err != nil {
		fail(http.StatusNotFound, "%s: %s: %v", rotateTarget, in.KeyArn, err)
		return
	}
	aes, ok := k.(*cmk.AesKey)
	switch {
	case !ok:
		fail(http.StatusBadRequest, "%s: %s is not a symmetric key", rotateTarget, in.KeyArn)
		return
	case aes.GetMetadata().Origin == cmk.KeyOriginExternal:
		fail(http.StatusBadRequest, "%s: %s has imported key material, which AWS KMS does not rotate", rotateTarget, in.KeyArn)
		return
	case len(aes.BackingKeys) != in.Index:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		fmt.Fprintf(w, "{\"BackingKeys\":%d}\n", len(aes.BackingKeys))
		return
	}
	aes.BackingKeys = append(aes.BackingKeys, [32]byte(material))
	if err := db.SaveKey(aes); err != nil {
		fail(http.StatusInternalServerError, "%s: saving %s: %v", rotateTarget, in.KeyArn, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, "{\"Index\":%d}\n", in.Index)
}
