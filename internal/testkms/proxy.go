package testkms

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// Fault is a failure that a Proxy injects into the calls it receives.
//
// Latency applies first; then Drop, or the error given by Status and
// AWSError; with neither, the call is forwarded after the latency.
type Fault struct {
	// Action is the KMS action the fault applies to, as in the X-Amz-Target
	// header without its "TrentService." prefix: "Decrypt",
	// "GenerateDataKey", "DescribeKey", ... Empty means every action.
	Action string

	// Latency delays the call before it is forwarded or failed. A client
	// that gives up earlier sees a timeout, and the call is not forwarded.
	Latency time.Duration

	// Drop closes the connection without an answer: the client sees a
	// transport error (no HTTP status, no AWS error code).
	Drop bool

	// Status is the HTTP status of an AWS error answer. Zero means the
	// status AWS KMS uses for AWSError: 400 for ThrottlingException,
	// AccessDeniedException, DisabledException, KMSInvalidStateException,
	// NotFoundException and other client errors; 403 for
	// InvalidClientTokenId and MissingAuthenticationToken; 500 for
	// KMSInternalException, KeyUnavailableException and InternalFailure; 503
	// for DependencyTimeoutException and ServiceUnavailable.
	Status int

	// AWSError is the error code, the __type of the AWS JSON error body,
	// which the AWS SDK reports as smithy.APIError.ErrorCode(). Empty with a
	// Status means a code that fits the status: ThrottlingException for
	// 429, AccessDeniedException for 403, KMSInternalException for 500,
	// ServiceUnavailable for 502 to 504, InternalFailure for other 5xx and
	// ValidationException for other 4xx.
	AWSError string

	// Message is the error message; empty means one like AWS's.
	Message string

	// Times is the number of calls the fault applies to; 0 means every
	// call until the fault is removed.
	Times int
}

// Proxy is an HTTP reverse proxy on 127.0.0.1 in front of a Server that
// injects faults into the calls it forwards and counts them. Point the code
// under test at URL instead of the server's. It is closed when the test that
// created it ends.
//
// Its methods may be called from any goroutine, except that those that fail
// the test on a bad argument (Inject, SetMultiRegion) must be called from the
// test's goroutine.
type Proxy struct {
	// URL is the proxy's endpoint, http://127.0.0.1:PORT.
	URL string
	// Region is the AWS Region of the server behind the proxy.
	Region string
	// AccountID is the AWS account of the server behind the proxy.
	AccountID string

	t      testing.TB
	rp     *httputil.ReverseProxy
	closed chan struct{}

	target atomic.Pointer[url.URL] // the server calls are forwarded to

	mu          sync.Mutex
	faults      []*faultRule
	down        bool
	calls       map[string]int
	total       int
	multiRegion map[string]multiRegionConfiguration
}

// faultRule is an injected fault and its remaining uses (-1: unlimited).
type faultRule struct {
	f    Fault
	left int
}

// NewProxy starts a proxy in front of target.
func NewProxy(t testing.TB, target *Server) *Proxy {
	t.Helper()
	u, err := url.Parse(target.URL)
	if err != nil || target.URL == "" {
		t.Fatalf("testkms.NewProxy: bad server URL %q", target.URL)
	}
	p := &Proxy{
		Region:      target.Region,
		AccountID:   target.AccountID,
		t:           t,
		closed:      make(chan struct{}),
		calls:       map[string]int{},
		multiRegion: map[string]multiRegionConfiguration{},
	}
	p.target.Store(u)
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        func(pr *httputil.ProxyRequest) { pr.SetURL(p.target.Load()) },
		Transport:      tr,
		ModifyResponse: p.modifyResponse,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// An unreachable server looks like an unreachable Region.
			if r.Context().Err() == nil {
				drop(w, r)
			}
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testkms.NewProxy: %v", err)
	}
	p.URL = "http://" + ln.Addr().String()
	srv := &http.Server{
		Handler:           http.HandlerFunc(p.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		close(p.closed) // ends injected latencies
		_ = srv.Close()
		tr.CloseIdleConnections()
	})
	return p
}

// Client returns an AWS SDK client for the proxy, configured like
// Server.Client: static fake credentials, the proxy's Region, no retries
// unless optFns turn them on.
func (p *Proxy) Client(t testing.TB, optFns ...func(*kms.Options)) *kms.Client {
	t.Helper()
	return newClient(t, p.URL, p.Region, optFns)
}

// ARN returns the ARN of the key keyID in the proxy's Region and account.
func (p *Proxy) ARN(keyID string) string {
	return keyARN(p.Region, p.AccountID, keyID)
}

// Inject adds a fault. When several faults match a call, the one injected
// first applies. remove takes the fault away (if Times has not already);
// calling it again does nothing.
func (p *Proxy) Inject(f Fault) (remove func()) {
	p.t.Helper()
	switch {
	case f.Times < 0:
		p.t.Fatalf("testkms.Proxy.Inject: Times %d < 0", f.Times)
	case f.Drop && (f.Status != 0 || f.AWSError != ""):
		p.t.Fatalf("testkms.Proxy.Inject: Drop and an error answer (Status %d, AWSError %q) are exclusive", f.Status, f.AWSError)
	case f.Status != 0 && (f.Status < 400 || f.Status > 599):
		p.t.Fatalf("testkms.Proxy.Inject: Status %d is not an error status", f.Status)
	}
	f.Action = actionName(f.Action)
	r := &faultRule{f: f, left: f.Times}
	if f.Times == 0 {
		r.left = -1
	}
	p.mu.Lock()
	p.faults = append(p.faults, r)
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.faults = slices.DeleteFunc(p.faults, func(x *faultRule) bool { return x == r })
	}
}

// Retarget forwards the calls from now on to target, another server of the
// same Region and account: as if the Region's KMS had changed behind the
// same endpoint (say, a key's deletion took effect; see StartWithout).
func (p *Proxy) Retarget(target *Server) {
	p.t.Helper()
	u, err := url.Parse(target.URL)
	if err != nil || target.URL == "" || target.Region != p.Region || target.AccountID != p.AccountID {
		p.t.Fatalf("testkms.Proxy.Retarget: need a server of Region %s and account %s at a valid URL", p.Region, p.AccountID)
	}
	p.target.Store(u)
}

// Down makes the whole Region unreachable: every call, on new and on open
// connections, is dropped (the connection is closed without an answer) until
// Up. Calls still counts them.
func (p *Proxy) Down() {
	p.mu.Lock()
	p.down = true
	p.mu.Unlock()
}

// Up ends Down.
func (p *Proxy) Up() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// Calls returns the number of calls of action ("Decrypt", ...; "" for all
// actions) that the proxy received since it started or since ResetCalls:
// forwarded, failed and dropped alike.
func (p *Proxy) Calls(action string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if action == "" {
		return p.total
	}
	return p.calls[actionName(action)]
}

// ResetCalls sets all counts of Calls to zero.
func (p *Proxy) ResetCalls() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.calls)
	p.total = 0
}

// SetMultiRegion makes the proxy describe keyID as a multi-Region key whose
// primary key is in the Region primary and whose replicas are in the Regions
// replicas: DescribeKey answers for keyID get "MultiRegion": true and a
// "MultiRegionConfiguration" as AWS KMS sends them, for the proxy's Region
// (PRIMARY or REPLICA). local-kms has no multi-Region metadata at all, so
// without this DescribeKey reports neither field. The proxy's Region must be
// primary or one of replicas.
func (p *Proxy) SetMultiRegion(keyID, primary string, replicas ...string) {
	p.t.Helper()
	if keyID == "" || primary == "" || slices.Contains(replicas, primary) || slices.Contains(replicas, "") {
		p.t.Fatalf("testkms.Proxy.SetMultiRegion(%q, %q, %q): bad arguments", keyID, primary, replicas)
	}
	if p.Region != primary && !slices.Contains(replicas, p.Region) {
		p.t.Fatalf("testkms.Proxy.SetMultiRegion(%q, %q, %q): the proxy's Region %s is none of them", keyID, primary, replicas, p.Region)
	}
	c := multiRegionConfiguration{
		MultiRegionKeyType: "REPLICA",
		PrimaryKey:         multiRegionKey{Arn: keyARN(primary, p.AccountID, keyID), Region: primary},
		ReplicaKeys:        []multiRegionKey{},
	}
	if p.Region == primary {
		c.MultiRegionKeyType = "PRIMARY"
	}
	for _, r := range replicas {
		c.ReplicaKeys = append(c.ReplicaKeys, multiRegionKey{Arn: keyARN(r, p.AccountID, keyID), Region: r})
	}
	p.mu.Lock()
	p.multiRegion[keyID] = c
	p.mu.Unlock()
}

// multiRegionConfiguration and multiRegionKey are the AWS KMS API's
// MultiRegionConfiguration and MultiRegionKey.
type multiRegionConfiguration struct {
	MultiRegionKeyType string
	PrimaryKey         multiRegionKey
	ReplicaKeys        []multiRegionKey
}

type multiRegionKey struct {
	Arn    string
	Region string
}

// serveHTTP counts the call, applies the first matching fault and forwards
// what is left.
func (p *Proxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	action := actionName(r.Header.Get("X-Amz-Target"))
	p.mu.Lock()
	p.calls[action]++
	p.total++
	down := p.down
	f, ok := p.takeFault(action)
	p.mu.Unlock()

	if down {
		drop(w, r)
		return
	}
	if !ok {
		p.rp.ServeHTTP(w, r)
		return
	}
	if f.Latency > 0 {
		timer := time.NewTimer(f.Latency)
		select {
		case <-timer.C:
		case <-r.Context().Done():
			timer.Stop()
			return // the client gave up: nothing to answer
		case <-p.closed:
			timer.Stop()
			drop(w, r)
			return
		}
	}
	switch {
	case f.Drop:
		drop(w, r)
	case f.Status != 0 || f.AWSError != "":
		p.writeError(w, f, action)
	default:
		p.rp.ServeHTTP(w, r)
	}
}

// takeFault returns the first fault for action and uses it up once. p.mu is
// held.
func (p *Proxy) takeFault(action string) (Fault, bool) {
	for i, r := range p.faults {
		if r.f.Action != "" && r.f.Action != action {
			continue
		}
		if r.left > 0 {
			r.left--
			if r.left == 0 {
				p.faults = slices.Delete(p.faults, i, i+1)
			}
		}
		return r.f, true
	}
	return Fault{}, false
}

// writeError answers an AWS JSON 1.1 error, as AWS KMS does.
func (p *Proxy) writeError(w http.ResponseWriter, f Fault, action string) {
	code, status := f.AWSError, f.Status
	if code == "" {
		code = errorCodeFor(status)
	}
	if status == 0 {
		status = statusFor(code)
	}
	msg := f.Message
	if msg == "" {
		msg = messageFor(code, action, p.AccountID)
	}
	body, _ := json.Marshal(map[string]string{"__type": code, "message": msg})
	h := w.Header()
	h.Set("Content-Type", "application/x-amz-json-1.1")
	h.Set("X-Amzn-Requestid", newRequestID())
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// statusFor returns the HTTP status AWS KMS answers with the error code.
func statusFor(code string) int {
	switch code {
	case "KMSInternalException", "KeyUnavailableException", "InternalFailure":
		return http.StatusInternalServerError
	case "DependencyTimeoutException", "ServiceUnavailable":
		return http.StatusServiceUnavailable
	case "InvalidClientTokenId", "MissingAuthenticationToken":
		return http.StatusForbidden
	default:
		return http.StatusBadRequest
	}
}

// errorCodeFor returns an AWS error code for an HTTP status.
func errorCodeFor(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "ThrottlingException"
	case status == http.StatusForbidden:
		return "AccessDeniedException"
	case status == http.StatusInternalServerError:
		return "KMSInternalException"
	case status >= 502 && status <= 504:
		return "ServiceUnavailable"
	case status >= 500:
		return "InternalFailure"
	default:
		return "ValidationException"
	}
}

// messageFor returns a message like AWS's for an error code.
func messageFor(code, action, account string) string {
	switch code {
	case "ThrottlingException":
		return "Rate exceeded"
	case "AccessDeniedException":
		return fmt.Sprintf("User: arn:aws:iam::%s:user/testkms is not authorized to perform: kms:%s on this resource because no resource-based policy allows the kms:%s action", account, action, action)
	case "DisabledException":
		return "The key is disabled."
	case "KMSInvalidStateException":
		return "The key is pending deletion."
	case "NotFoundException":
		return "Key does not exist."
	case "DependencyTimeoutException":
		return "The system timed out while trying to fulfill the request."
	case "ServiceUnavailable":
		return "Service unavailable."
	default:
		return "injected by testkms"
	}
}

// modifyResponse adds multi-Region metadata to DescribeKey answers.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	if resp.StatusCode != http.StatusOK || actionName(resp.Request.Header.Get("X-Amz-Target")) != "DescribeKey" {
		return nil
	}
	p.mu.Lock()
	n := len(p.multiRegion)
	p.mu.Unlock()
	if n == 0 {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if out, err := p.addMultiRegion(body); err == nil {
		body = out
	} // else: not the DescribeKey answer we know; leave it alone
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

// addMultiRegion rewrites a DescribeKey answer if its key is multi-Region.
func (p *Proxy) addMultiRegion(body []byte) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, err
	}
	var md map[string]any
	dec := json.NewDecoder(bytes.NewReader(doc["KeyMetadata"]))
	dec.UseNumber() // keep CreationDate and the like as they are
	if err := dec.Decode(&md); err != nil {
		return nil, err
	}
	id, _ := md["KeyId"].(string)
	p.mu.Lock()
	c, ok := p.multiRegion[id]
	p.mu.Unlock()
	if !ok {
		return nil, errors.New("not a multi-Region key")
	}
	md["MultiRegion"] = true
	md["MultiRegionConfiguration"] = c
	b, err := json.Marshal(md)
	if err != nil {
		return nil, err
	}
	doc["KeyMetadata"] = b
	return json.Marshal(doc)
}

// drop closes the client's connection without an answer.
func drop(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler) // makes net/http close the connection
}

// actionName returns the KMS action of an X-Amz-Target header value.
func actionName(target string) string {
	if _, a, ok := strings.Cut(target, "."); ok {
		return a
	}
	return target
}

// newRequestID returns a random UUID, the form of AWS request ids.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
