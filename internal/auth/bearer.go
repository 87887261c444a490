package auth

import (
	"net/http"
	"strings"
)

// BearerToken returns the token of the request's one "Authorization: Bearer
// <token>" header (RFC 6750 section 2.1; the scheme is case-insensitive).
// A missing header, several of them, another scheme, or a token that is not
// a single b64token is an error wrapping ErrUnauthenticated.
func BearerToken(r *http.Request) (string, error) {
	values := r.Header.Values("Authorization")
	switch len(values) {
	case 0:
		return "", errMissingToken
	case 1:
	default:
		return "", errMalformedHeader
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", errMalformedHeader
	}
	if len(token) > MaxTokenSize {
		return "", errTooLarge
	}
	if !isB64Token(token) {
		return "", errMalformedHeader
	}
	return token, nil
}

// isB64Token reports whether s is an RFC 6750 b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	i := 0
	for i < len(s) {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' {
			i++
			continue
		}
		break
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}
