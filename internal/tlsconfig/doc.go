// Package tlsconfig builds tenantcrypt's TLS: the server's [tls.Config],
// its certificates (the operator's, reloadable without a restart, or a
// development certificate made on first start) and the client side that
// trusts them.
//
// # Serving
//
// Call [NewServerConfig] once at start-up and give the returned config to
// the listener (tls.NewListener, or http.Server.TLSConfig with ServeTLS).
// Use it rather than a hand-made tls.Config because it pins what the
// service promises in transit: TLS 1.2 at least, 1.3 whenever the client
// has it, and for TLS 1.2 only forward-secret AEAD suites (ECDHE with
// AES-GCM or ChaCha20-Poly1305); key exchange with X25519, P-256 or their
// post-quantum hybrids; ALPN h2 and http/1.1. With [Options.ClientCAFile]
// it verifies client certificates (mutual TLS) against that CA only.
//
// Certificates are served from a [Reloader], so new files take effect on
// the next handshake without dropping connections. The caller decides
// when: on SIGHUP, call [Reloader.Reload] and log its error; to follow
// files that a tool such as cert-manager or certbot replaces, run
// [Reloader.Watch] in a goroutine. A reload that fails (a half-written
// file, a key that does not match, an expired certificate) changes
// nothing: the service keeps serving the previous certificate.
//
// # Development certificate
//
// So that `tenantcrypt serve --data-dir DIR` works over HTTPS on a fresh
// machine, [EnsureDevCertificate] keeps a private development CA and a
// server certificate it signed in a directory (by convention DIR/tls).
// The CA outlives the server certificate, which is reissued when it nears
// expiry or lacks a requested host name, so clients that trust ca.pem keep
// working. Trust ca.pem only in tenantcrypt's own clients ([ClientConfig]),
// never in a system trust store: whoever reads ca-key.pem could then
// impersonate any site to that machine.
//
// # Clients
//
// [ClientConfig] returns a client config that trusts exactly one CA file,
// for the CLI and for tests against a server using the development
// certificate.
package tlsconfig
