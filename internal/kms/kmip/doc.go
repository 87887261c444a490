// Package kmip is tenantcrypt's KMIP client and the key provider for keys
// that customers keep in their own KMIP key manager (hold your own key).
//
// The Client speaks KMIP 1.4 (ttlv is its wire format) over TLS 1.2 or
// later with a client certificate, and performs only what tenantcrypt
// needs: Discover Versions, Query, Get Attributes, and AES-GCM Encrypt and
// Decrypt with associated data. It tries the endpoints of one cluster in
// turn while one does not answer (no connection, a timeout), never after
// an answer, even a refusal. Its errors are *kms.Error:
//
//   - TLS refusing the connection (the server's certificate does not
//     verify against the configured CA, or the server refuses the client
//     certificate): kms.ErrAccessDenied, cause *EndpointError with Refused;
//   - no connection, a timeout, a broken or nonsensical answer, or the
//     caller's context ending: kms.ErrUnavailable, cause *EndpointError
//     (errors.Is(err, context.Canceled) holds when the caller canceled);
//   - a KMIP refusal: the sentinel ResultError.Kind names (Item Not Found:
//     kms.ErrKeyNotFound; Permission Denied: kms.ErrAccessDenied; ...).
//
// Provider wraps data keys with a KMIP key (ParseURI reads its
// kmip://HOST:PORT/UNIQUE-ID) and maps KMIP states to kms states.
package kmip
