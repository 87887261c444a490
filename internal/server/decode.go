package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"reflect"
	"strings"
)

// readBody reads a JSON request body within the size limit. It never
// allocates ahead of what has arrived beyond a small first buffer: a caller
// that announces a large Content-Length and sends it slowly holds no more
// memory than it has sent (a Content-Length over the limit is refused
// before the body is read, see Server.wrap).
func readBody(r *http.Request) ([]byte, error) {
	if err := checkBodyType(r); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if n := r.ContentLength; n > 0 {
		buf.Grow(int(min(n, firstBodyBuffer)) + 1)
	}
	if _, err := buf.ReadFrom(r.Body); err != nil {
		return nil, bodyReadError(err)
	}
	return buf.Bytes(), nil
}

// checkBodyType refuses a Content-Type other than JSON in UTF-8.
func checkBodyType(r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		// A PATCH is a JSON merge patch, which clients may label as such.
		if err != nil || mt != "application/json" && mt != "application/merge-patch+json" {
			return &requestError{kind: kindUnsupportedMediaType, detail: "send the body as application/json"}
		}
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
			return &requestError{kind: kindUnsupportedMediaType,
				detail: fmt.Sprintf("the body must be UTF-8 JSON; charset %q is not supported", clip([]byte(cs)))}
		}
	}
	return nil
}

// bodyReadError words an error met reading the body.
func bodyReadError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return bodyTooLarge(mbe.Limit)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &requestError{kind: kindBodyTimeout}
	}
	return badRequest("could not read the request body", nil)
}

// firstBodyBuffer is the most readBody allocates before the body arrives;
// data-plane bodies are usually smaller.
const firstBodyBuffer = 8 << 10

func bodyTooLarge(limit int64) *requestError {
	return &requestError{kind: kindBodyTooLarge, detail: fmt.Sprintf("the request body must be at most %d bytes", limit)}
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and trailing data, and says precisely what is wrong. Before
// decoding it applies the strict rules of strictScan: valid UTF-8, no lone
// surrogate, no duplicate name, exact field names, an object (an array when
// v is a slice) at the top.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("the request body is empty; send a JSON object", nil)
	}
	scanErr := strictScan(body, reflect.TypeOf(v))
	if scanErr != nil && scanErr != errScanSyntax {
		return scanErr
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("the request body has data after the JSON value", nil)
	}
	if scanErr != nil {
		// Never seen: what the scan takes for broken JSON encoding/json
		// refuses too. Refuse it all the same.
		return badRequest("the request body is not valid JSON", nil)
	}
	return nil
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return badRequest(fmt.Sprintf("the request body is not valid JSON (at byte %d)", syn.Offset), nil)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return badRequest(fmt.Sprintf("the request body must be a JSON object, not %s", typ.Value), nil)
		}
		return badRequest(fmt.Sprintf("field %q must be %s, not %s", field, jsonType(typ.Type.Kind().String()), typ.Value),
			map[string]any{"field": field})
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("the request body is truncated JSON", nil)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return badRequest(fmt.Sprintf("unknown field %q", field), map[string]any{"field": field})
	}
	return badRequest("the request body is not valid JSON", nil)
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	default:
		return "a number"
	}
}

// isBatch reports whether a data-plane body is the batch form, an object
// with an "items" key (a single request has no such field). It looks at the
// first key only, which is where clients put it, so that the common case
// costs no second decoding; a body with "items" elsewhere is recognised
// after the single form's decoding refuses it (see dataPlane).
func isBatch(body []byte) bool {
	b := bytes.TrimLeft(body, " \t\r\n")
	if len(b) == 0 || b[0] != '{' {
		return false
	}
	b = bytes.TrimLeft(b[1:], " \t\r\n")
	return bytes.HasPrefix(b, []byte(`"items"`))
}

// decodeBase64 decodes a standard, padded base64 field.
func decodeBase64(field, s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, badRequest(fmt.Sprintf("field %q must be standard base64 (with padding)", field), map[string]any{"field": field})
	}
	return b, nil
}
