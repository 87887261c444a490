package awskms

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// awsSemantics is an http.RoundTripper for tests against local-kms. It
// gives local-kms three properties of AWS KMS's ciphertexts that it lacks
// and that the provider relies on (the conformance suite checks them):
//
//   - AWS binds the encryption context unambiguously. local-kms
//     authenticates the bare concatenation of the sorted keys and values,
//     so {"ab": "c"} and {"a": "bc"} decrypt each other's ciphertexts.
//     awsSemantics rewrites every request's context to one entry per
//     pair, length-prefixed, which local-kms's concatenation cannot
//     confuse.
//   - AWS authenticates the whole ciphertext blob. Given a KeyId, local-kms
//     ignores the key ARN that its blob carries in clear, so a blob with
//     that ARN altered still decrypts. awsSemantics remembers the header
//     of every blob it sees made and refuses, as AWS would
//     (InvalidCiphertextException), a Decrypt of a known blob whose header
//     was changed.
//   - AWS answers a short blob with InvalidCiphertextException. local-kms
//     panics on a blob whose ciphertext is shorter than its GCM nonce and
//     drops the connection. awsSemantics answers for it.
//
// Everything else goes to local-kms unchanged (signatures, which the
// rewrite invalidates, are not checked by local-kms). The SDK, the
// provider and their HTTP exchange are the real ones.
type awsSemantics struct {
	next http.RoundTripper

	mu sync.Mutex
	// headers maps the sealed part of every blob made (nonce, ciphertext
	// and tag) to the header it was made with.
	headers map[string]string
}

func newAWSSemantics(next http.RoundTripper) *awsSemantics {
	return &awsSemantics{next: next, headers: map[string]string{}}
}

// localKMSMinSealed is the least that can follow the header of a
// local-kms AES blob (a length byte, the key ARN, a 4-byte key version):
// a 12-byte GCM nonce and a 16-byte tag.
const localKMSMinSealed = 12 + 16

func (a *awsSemantics) RoundTrip(req *http.Request) (*http.Response, error) {
	action := req.Header.Get("X-Amz-Target")
	if req.Body == nil || !strings.HasPrefix(action, "TrentService.") {
		return a.next.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	var in map[string]json.RawMessage
	if err := json.Unmarshal(body, &in); err != nil {
		return a.forward(req, body)
	}
	if raw, ok := in["EncryptionContext"]; ok {
		var ec map[string]string
		if err := json.Unmarshal(raw, &ec); err == nil {
			in["EncryptionContext"], _ = json.Marshal(unambiguousContext(ec))
		}
	}
	if action == "TrentService.Decrypt" {
		var blob []byte
		_ = json.Unmarshal(in["CiphertextBlob"], &blob)
		if a.refuse(blob) {
			return invalidCiphertext(req), nil
		}
	}
	body, err = json.Marshal(in)
	if err != nil {
		return nil, err
	}
	resp, err := a.forward(req, body)
	if err != nil || resp.StatusCode != http.StatusOK ||
		(action != "TrentService.GenerateDataKey" && action != "TrentService.Encrypt") {
		return resp, err
	}
	// Remember the header of the blob made.
	out, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	var made struct{ CiphertextBlob []byte }
	if json.Unmarshal(out, &made) == nil {
		if header, sealed, ok := splitBlob(made.CiphertextBlob); ok {
			a.mu.Lock()
			a.headers[sealed] = header
			a.mu.Unlock()
		}
	}
	return resp, nil
}

func (a *awsSemantics) forward(req *http.Request, body []byte) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return a.next.RoundTrip(req)
}

// unambiguousContext maps each pair to a key that spells both halves
// with their lengths.
func unambiguousContext(ec map[string]string) map[string]string {
	out := make(map[string]string, len(ec))
	for k, v := range ec {
		out[fmt.Sprintf("%d:%s%d:%s", len(k), k, len(v), v)] = ""
	}
	return out
}

// refuse reports whether AWS would refuse blob where local-kms would not
// (or would crash).
func (a *awsSemantics) refuse(blob []byte) bool {
	if len(blob) < 1 || len(blob) < 1+int(blob[0])+4 {
		return false // local-kms refuses this itself
	}
	header, sealed, ok := splitBlob(blob)
	if !ok {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	made, known := a.headers[sealed]
	return known && made != header
}

// splitBlob splits a local-kms AES blob into its header and its sealed
// part, if it is long enough to hold both.
func splitBlob(blob []byte) (header, sealed string, ok bool) {
	if len(blob) < 1 {
		return "", "", false
	}
	n := 1 + int(blob[0]) + 4
	if len(blob)-n < localKMSMinSealed {
		return "", "", false
	}
	return string(blob[:n]), string(blob[n:]), true
}

func invalidCiphertext(req *http.Request) *http.Response {
	body := `{"__type":"InvalidCiphertextException","message":""}`
	return &http.Response{
		Status:     "400 Bad Request",
		StatusCode: http.StatusBadRequest,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{
			"Content-Type":     {"application/x-amz-json-1.1"},
			"X-Amzn-Requestid": {"awssemantics-refused"},
		},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}
