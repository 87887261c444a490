package envelope

import "errors"

// ErrDecrypt is the only error Open returns for a ciphertext that does not
// authenticate, whatever the cause (wrong key, tenant or context, an
// altered bit, a truncated payload). Telling the causes apart would hand an
// attacker an oracle, so callers must not try to and nothing is wrapped.
var ErrDecrypt = errors.New("envelope: decryption failed")

// ErrMalformed is wrapped by every error about input that breaks the format
// or one of its bounds: a ciphertext, handle or text form that does not
// parse, and a tenant id, context, prefix or plaintext out of bounds. Such
// input is the caller's mistake (an HTTP 400), not a failed decryption.
// Messages say what is wrong but never repeat the input's bytes, so they
// are safe to log and to return to the caller.
var ErrMalformed = errors.New("envelope: malformed input")
