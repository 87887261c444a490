package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	tcserver "github.com/tenantcrypt/tenantcrypt/internal/server"
	"github.com/tenantcrypt/tenantcrypt/internal/tlsconfig"
)

// baselinePath is the baseline's route: tenantcrypt's encrypt path, so that
// requests differ in nothing but the host.
var baselinePath = api.RouteEncrypt.Path

// The http.Server settings of `tenantcrypt serve`'s defaults, so that the
// baseline's connections behave the same.
const (
	srvReadHeaderTimeout = tcserver.DefaultReadHeaderTimeout
	srvRequestTimeout    = tcserver.DefaultRequestTimeout
	srvIdleTimeout       = tcserver.DefaultIdleTimeout
	srvMaxHeaderBytes    = tcserver.MaxHeaderBytes
	srvMaxBodyBytes      = tcserver.DefaultMaxBodyBytes
)

// runBaselineServer is the baseline server's main (bench -baseline-server
// ...), run as a child process of the benchmark. It serves HTTPS on
// 127.0.0.1:0 with the development certificate in -data-dir/tls, writes its
// address to -addr-file, and stops on SIGINT, SIGTERM or the end of stdin
// (the benchmark died).
func runBaselineServer(args []string, stdin io.Reader, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench "+baselineServerFlag, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "tenantcrypt's data directory (its tls/server.pem and tls/server-key.pem are served)")
	addrFile := fs.String("addr-file", "", "write the listening address to this file")
	ctLen := fs.Int("ciphertext-len", 0, "length of the ciphertext string to answer with")
	batch := fs.Int("batch", 0, "decode the batch shape and answer as many items; 0: single requests")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dataDir == "" || *addrFile == "" || *ctLen <= 0 {
		fmt.Fprintln(stderr, "baseline: -data-dir, -addr-file and -ciphertext-len are required")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		cancel()
	}()
	if err := serveBaseline(ctx, *dataDir, *addrFile, *ctLen, *batch > 0); err != nil {
		fmt.Fprintln(stderr, "baseline:", err)
		return 1
	}
	return 0
}

func serveBaseline(ctx context.Context, dataDir, addrFile string, ctLen int, batch bool) error {
	tlsCfg, _, err := tlsconfig.NewServerConfig(tlsconfig.Options{
		CertFile: filepath.Join(dataDir, "tls", "server.pem"),
		KeyFile:  filepath.Join(dataDir, "tls", "server-key.pem"),
	})
	if err != nil {
		return err
	}
	h, err := newBaselineHandler(ctLen, batch)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+baselinePath, h)
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: srvReadHeaderTimeout,
		ReadTimeout:       srvRequestTimeout,
		WriteTimeout:      srvRequestTimeout,
		IdleTimeout:       srvIdleTimeout,
		MaxHeaderBytes:    srvMaxHeaderBytes,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	// As tenantcrypt does: a TLS listener handed to Serve.
	ln = tls.NewListener(ln, tlsCfg)
	if err := writeFileAtomic(addrFile, []byte(ln.Addr().String()+"\n")); err != nil {
		ln.Close()
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	return nil
}

// baselineHandler does the HTTP/JSON part of tenantcrypt's encrypt and
// nothing else: the route's authorization reduced to the header's presence,
// the same body limit, strict decoding of the same request type, and an
// answer of the same type, size and headers, written the way tenantcrypt
// writes its answers.
type baselineHandler struct {
	ciphertext string
	batch      bool // the batch shape, {"items": [...]}
}

func newBaselineHandler(ctLen int, batch bool) (*baselineHandler, error) {
	raw := make([]byte, base64.RawURLEncoding.DecodedLen(ctLen)+3)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	// base64url needs no JSON escaping, like a real ciphertext.
	return &baselineHandler{ciphertext: base64.RawURLEncoding.EncodeToString(raw)[:ctLen], batch: batch}, nil
}

func (h *baselineHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.Header.Get("Authorization") == "" {
		writeBaselineJSON(w, http.StatusUnauthorized, api.ErrorResponse{Errors: []api.Error{{Code: api.CodeUnauthenticated, Title: "Unauthenticated"}}})
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			writeBaselineJSON(w, http.StatusUnsupportedMediaType, api.ErrorResponse{Errors: []api.Error{{Code: api.CodeUnsupportedMediaType, Title: "Unsupported media type"}}})
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, srvMaxBodyBytes))
	if err != nil {
		writeBaselineJSON(w, http.StatusBadRequest, api.ErrorResponse{Errors: []api.Error{{Code: api.CodeBadRequest, Title: "Bad request"}}})
		return
	}
	var req api.EncryptRequest
	var batch api.BatchRequest[api.EncryptRequest]
	var into any = &req
	if h.batch {
		into = &batch
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		writeBaselineJSON(w, http.StatusBadRequest, api.ErrorResponse{Errors: []api.Error{{Code: api.CodeBadRequest, Title: "Bad request", Detail: err.Error()}}})
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		writeBaselineJSON(w, http.StatusBadRequest, api.ErrorResponse{Errors: []api.Error{{Code: api.CodeBadRequest, Title: "Bad request", Detail: "data after the JSON value"}}})
		return
	}
	if h.batch {
		out := api.BatchResponse[api.EncryptResponse]{Items: make([]api.BatchItem[api.EncryptResponse], len(batch.Items))}
		for i := range out.Items {
			out.Items[i].Result = &api.EncryptResponse{Ciphertext: h.ciphertext}
		}
		writeBaselineJSON(w, http.StatusOK, out)
		return
	}
	writeBaselineJSON(w, http.StatusOK, api.EncryptResponse{Ciphertext: h.ciphertext})
}

// writeBaselineJSON writes v as tenantcrypt's server does.
func writeBaselineJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// writeFileAtomic writes data to path through a temporary file and a
// rename, so that a reader never sees half of it.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(data)
	if err := errors.Join(werr, tmp.Close()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
