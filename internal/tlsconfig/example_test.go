package tlsconfig_test

import (
	"context"
	"crypto/tls"
	"errors"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/tlsconfig"
)

// The wiring of `tenantcrypt serve`: the operator's certificate if given,
// otherwise the development one; reloads on SIGHUP and when the files
// change.
func ExampleNewServerConfig() {
	var (
		dataDir           = "/var/lib/tenantcrypt"
		certFile, keyFile string // --tls-cert, --tls-key; empty: none given
	)
	if certFile == "" {
		dev, err := tlsconfig.EnsureDevCertificate(filepath.Join(dataDir, "tls"), []string{"tenantcrypt.internal"})
		if err != nil {
			log.Fatal(err)
		}
		log.Printf("serving a development certificate; clients trust %s", dev.CACert)
		certFile, keyFile = dev.Cert, dev.Key
	}
	cfg, reloader, err := tlsconfig.NewServerConfig(tlsconfig.Options{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		log.Fatal(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	// In main: signal.Notify(hup, syscall.SIGHUP).
	hup := make(chan os.Signal, 1)
	go func() {
		for range hup {
			if err := reloader.Reload(); err != nil {
				log.Printf("TLS certificate not reloaded, still serving the previous one: %v", err)
				continue
			}
			log.Printf("TLS certificate reloaded: serial %x, expires %v", reloader.Leaf().SerialNumber, reloader.Leaf().NotAfter)
		}
	}()
	go reloader.Watch(ctx, time.Minute, func(err error) {
		log.Printf("TLS certificate not reloaded, still serving the previous one: %v", err)
	})

	ln, err := net.Listen("tcp", "127.0.0.1:8443")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(tls.NewListener(ln, cfg)); !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()
	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
}

// The CLI talking to a server with the development certificate.
func ExampleClientConfig() {
	cfg, err := tlsconfig.ClientConfig("/var/lib/tenantcrypt/tls/ca.pem")
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{
		Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true},
		Timeout:   30 * time.Second,
	}
	resp, err := client.Get("https://localhost:8443/livez")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
}
