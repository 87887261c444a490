package kmip

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ErrMalformedURI is wrapped by every error of ParseURI.
var ErrMalformedURI = errors.New("not a KMIP key URI")

// maxURILen bounds the input ParseURI looks at.
const maxURILen = 512

// KeyURI names one key in one KMIP server: kmip://HOST:PORT/UNIQUE-ID.
type KeyURI struct {
	// Endpoint is "HOST:PORT", the first server to ask.
	Endpoint string
	// UID is the key's Unique Identifier in the server.
	UID string
}

// String is the URI, as ParseURI reads it back.
func (k KeyURI) String() string { return "kmip://" + k.Endpoint + "/" + k.UID }

// ParseURI parses kmip://HOST:PORT/UNIQUE-ID strictly: a host name or IP
// address (IPv6 in brackets), a port from 1 to 65535, and a unique
// identifier of printable ASCII without '/', '?', '#', '%' or spaces.
// Nothing else: no user, query or fragment. Errors wrap ErrMalformedURI.
func ParseURI(s string) (KeyURI, error) {
	if len(s) > maxURILen {
		return KeyURI{}, fmt.Errorf("%w: %d bytes long, at most %d", ErrMalformedURI, len(s), maxURILen)
	}
	bad := func(why string) (KeyURI, error) {
		return KeyURI{}, fmt.Errorf("%w: %q: %s", ErrMalformedURI, s, why)
	}
	rest, ok := strings.CutPrefix(s, "kmip://")
	if !ok {
		return bad("want kmip://HOST:PORT/UNIQUE-IDENTIFIER")
	}
	endpoint, uid, ok := strings.Cut(rest, "/")
	if !ok || uid == "" {
		return bad("no key unique identifier after the server's address")
	}
	if err := CheckEndpoint(endpoint); err != nil {
		return bad(err.Error())
	}
	for _, r := range uid {
		if r <= ' ' || r > '~' || strings.ContainsRune("/?#%", r) {
			return bad("the unique identifier has a character other than printable ASCII, or one of / ? # %")
		}
	}
	return KeyURI{Endpoint: endpoint, UID: uid}, nil
}

// CheckEndpoint checks that ep is HOST:PORT as ParseURI wants it.
func CheckEndpoint(ep string) error {
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT", ep)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return fmt.Errorf("%q is not a port number from 1 to 65535", port)
	}
	if ip := net.ParseIP(host); ip != nil {
		if net.JoinHostPort(ip.String(), port) != ep {
			return fmt.Errorf("write the address %q as %s", host, ip)
		}
		return nil
	}
	if len(host) == 0 || len(host) > 253 {
		return fmt.Errorf("host name %q is empty or too long", host)
	}
	for label := range strings.SplitSeq(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q is not a host name", host)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("%q is not a host name", host)
			}
		}
	}
	return nil
}
