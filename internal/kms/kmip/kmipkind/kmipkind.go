// Package kmipkind is the KMIP kind of customer managed key (hold your own
// key): it teaches the key-provider service (package keyprovider) how to
// read a kmip://HOST:PORT/UNIQUE-ID key and its "kmip" settings (the
// server's CA, the client certificate and key the customer issued, further
// endpoints of the cluster), open a provider for it, check it at
// registration and in the key monitor. Only the composition root (cmd/)
// imports it.
//
// The client key is the registration's secret: the service stores it
// wrapped by the internal KMS, and it is never returned or logged. The
// certificates and endpoints are the registration's config, which the API
// returns.
package kmipkind

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/kmip"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// Name is the kind's name, as the API's "keyprovider" field spells it.
const Name = "KMIP"

// Field is the registration request's member that carries the settings.
const Field = "kmip"

// maxEndpoints bounds the endpoints of one registration.
const maxEndpoints = 8

// maxPEM bounds one PEM field.
const maxPEM = 64 << 10

// Config configures a Kind.
type Config struct {
	// Timeout bounds one attempt at one endpoint; default
	// kmip.DefaultTimeout.
	Timeout time.Duration
	// Now is the clock of the checks' times; default time.Now.
	Now func() time.Time
	// OnCall, if set, is told of every KMIP operation with the key's URI
	// (for the audit log). It must not block.
	OnCall func(kmip.Call)
}

// Kind is the KMIP kind.
type Kind struct {
	cfg Config
}

var (
	_ keyprovider.Kind       = (*Kind)(nil)
	_ keyprovider.Configurer = (*Kind)(nil)
	_ keyprovider.Tester     = (*Kind)(nil)
	_ keyprovider.Inspector  = (*Kind)(nil)
)

// New returns the KMIP kind.
func New(cfg Config) *Kind {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Kind{cfg: cfg}
}

// Name implements keyprovider.Kind.
func (k *Kind) Name() string { return Name }

// Field implements keyprovider.Configurer.
func (k *Kind) Field() string { return Field }

// ParseKey implements keyprovider.Kind: the key is a kmip.KeyURI.
func (k *Kind) ParseKey(s string) (keyprovider.Key, error) {
	u, err := kmip.ParseURI(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", keyprovider.ErrMalformedARN, err)
	}
	return u, nil
}

// settings is the stored config: everything but the client key.
type settings struct {
	ServerCA          string   `json:"serverCA"`
	ClientCertificate string   `json:"clientCertificate"`
	Endpoints         []string `json:"endpoints"`
}

// Configure implements keyprovider.Configurer. The member is
// {"serverCA": PEM, "clientCertificate": PEM, "clientKey": PEM,
// "endpoints": ["HOST:PORT", ...]}; endpoints may be left out.
func (k *Kind) Configure(key keyprovider.Key, raw json.RawMessage) (keyprovider.Settings, error) {
	if raw == nil {
		return keyprovider.Settings{}, &fault.InputError{Field: Field, Reason: "is required for a KMIP key: {serverCA, clientCertificate, clientKey, endpoints}"}
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil || members == nil {
		return keyprovider.Settings{}, &fault.InputError{Field: Field, Reason: "must be an object {serverCA, clientCertificate, clientKey, endpoints}"}
	}
	var s settings
	var clientKey string
	for name, v := range members {
		var err error
		switch name {
		case "serverCA":
			s.ServerCA, err = pemField(name, v)
		case "clientCertificate":
			s.ClientCertificate, err = pemField(name, v)
		case "clientKey":
			clientKey, err = pemField(name, v)
		case "endpoints":
			s.Endpoints, err = endpointsField(v)
		default:
			err = &fault.InputError{Field: Field + "." + name, Reason: "is not a field of kmip (serverCA, clientCertificate, clientKey, endpoints)"}
		}
		if err != nil {
			return keyprovider.Settings{}, err
		}
	}
	for name, v := range map[string]string{"serverCA": s.ServerCA, "clientCertificate": s.ClientCertificate, "clientKey": clientKey} {
		if v == "" {
			return keyprovider.Settings{}, &fault.InputError{Field: Field + "." + name, Reason: "is required"}
		}
	}
	sec := secret.New([]byte(clientKey))
	if _, err := credentials(s, sec); err != nil {
		sec.Destroy()
		return keyprovider.Settings{}, err
	}
	return settingsOf(s, sec)
}

func settingsOf(s settings, sec *secret.Bytes) (keyprovider.Settings, error) {
	if s.Endpoints == nil {
		s.Endpoints = []string{}
	}
	b, err := json.Marshal(s)
	if err != nil {
		sec.Destroy()
		return keyprovider.Settings{}, err
	}
	return keyprovider.Settings{Config: b, Secret: sec}, nil
}

// Patch implements keyprovider.Configurer: "/serverCA",
// "/clientCertificate" and "/clientKey" take a PEM string, "/endpoints" an
// array of "HOST:PORT". A new client certificate and its key may come in
// one patch, one operation each: the pair is checked by the test that
// follows.
func (k *Kind) Patch(cur keyprovider.Settings, path string, value json.RawMessage) (keyprovider.Settings, error) {
	s, err := parseConfig(cur.Config)
	if err != nil {
		return keyprovider.Settings{}, err
	}
	sec := cur.Secret.Clone()
	name := path[min(1, len(path)):]
	switch path {
	case "/serverCA":
		s.ServerCA, err = pemField(name, value)
	case "/clientCertificate":
		s.ClientCertificate, err = pemField(name, value)
	case "/clientKey":
		var key string
		if key, err = pemField(name, value); err == nil {
			sec.Destroy()
			sec = secret.New([]byte(key))
		}
	case "/endpoints":
		s.Endpoints, err = endpointsField(value)
	default:
		err = &fault.InputError{Field: "path", Reason: fmt.Sprintf("%q is not a path of kmip: /kmip/serverCA, /kmip/clientCertificate, /kmip/clientKey or /kmip/endpoints", "/"+Field+path)}
	}
	if err == nil && (s.ServerCA == "" || s.ClientCertificate == "") {
		err = &fault.InputError{Field: Field + name, Reason: "must not be empty"}
	}
	if err != nil {
		sec.Destroy()
		return keyprovider.Settings{}, err
	}
	return settingsOf(s, sec)
}

// pemField reads a PEM string; whether it parses is credentials' part.
func pemField(name string, v json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", &fault.InputError{Field: Field + "." + name, Reason: "must be a PEM string"}
	}
	if len(s) > maxPEM {
		return "", &fault.InputError{Field: Field + "." + name, Reason: fmt.Sprintf("must be at most %d bytes", maxPEM)}
	}
	return s, nil
}

func endpointsField(v json.RawMessage) ([]string, error) {
	var eps []string
	if err := json.Unmarshal(v, &eps); err != nil {
		return nil, &fault.InputError{Field: Field + ".endpoints", Reason: `must be an array of "HOST:PORT" strings`}
	}
	if len(eps) > maxEndpoints {
		return nil, &fault.InputError{Field: Field + ".endpoints", Reason: fmt.Sprintf("must have at most %d endpoints", maxEndpoints)}
	}
	for _, ep := range eps {
		if err := kmip.CheckEndpoint(ep); err != nil {
			return nil, malformed(fmt.Errorf("kmip.endpoints: %w", err))
		}
	}
	return eps, nil
}

func parseConfig(b []byte) (settings, error) {
	var s settings
	if err := json.Unmarshal(b, &s); err != nil {
		return settings{}, fmt.Errorf("kmipkind: the stored settings do not parse: %w", err)
	}
	return s, nil
}

// credentials parses the certificates and the key. Errors wrap
// keyprovider.ErrMalformedARN (the API's 417) and name the field.
func credentials(s settings, key *secret.Bytes) (kmip.Credentials, error) {
	if key == nil {
		return kmip.Credentials{}, malformed(errors.New("kmip.clientKey is missing"))
	}
	c, err := kmip.ParseCredentials([]byte(s.ServerCA), []byte(s.ClientCertificate), key.Reveal())
	if err != nil {
		return kmip.Credentials{}, malformed(err)
	}
	return c, nil
}

// endpoints are the key's own server, then the registration's others.
func endpoints(key kmip.KeyURI, s settings) []string {
	eps := []string{key.Endpoint}
	for _, ep := range s.Endpoints {
		if !slices.Contains(eps, ep) {
			eps = append(eps, ep)
		}
	}
	return eps
}

func keyOf(t keyprovider.Target) (kmip.KeyURI, error) {
	if u, ok := t.Key.(kmip.KeyURI); ok {
		return u, nil
	}
	u, err := kmip.ParseURI(t.ARN)
	if err != nil {
		return kmip.KeyURI{}, fmt.Errorf("kmipkind: stored key of %s: %w", t.Fingerprint, err)
	}
	return u, nil
}

// client opens a client for t's cluster.
func (k *Kind) client(t keyprovider.Target) (kmip.KeyURI, *kmip.Client, error) {
	key, err := keyOf(t)
	if err != nil {
		return kmip.KeyURI{}, nil, err
	}
	s, err := parseConfig(t.Config)
	if err != nil {
		return kmip.KeyURI{}, nil, err
	}
	creds, err := credentials(s, t.Secret)
	if err != nil {
		return kmip.KeyURI{}, nil, err
	}
	ref := "kmip key " + key.String()
	if fp := t.Fingerprint; fp != "" {
		ref = kms.MustCMKRef(fp).String()
	}
	var onCall func(kmip.Call)
	if k.cfg.OnCall != nil {
		onCall = func(c kmip.Call) {
			c.Key = key.String()
			k.cfg.OnCall(c)
		}
	}
	c, err := kmip.New(kmip.Config{Endpoints: endpoints(key, s), RootCAs: creds.RootCAs, Certificate: creds.Certificate,
		Timeout: k.cfg.Timeout, Ref: ref, OnCall: onCall})
	if err != nil {
		return kmip.KeyURI{}, nil, err
	}
	return key, c, nil
}

// Open implements keyprovider.Kind. It parses the certificates and the key
// (the Target's secret is not kept).
func (k *Kind) Open(_ context.Context, t keyprovider.Target, ref kms.Ref) (kms.Provider, error) {
	key, c, err := k.client(t)
	if err != nil {
		return nil, err
	}
	return kmip.NewProvider(ref, key, c), nil
}

// unsuitable says why a key cannot wrap tenant keys, or "" if it can.
func unsuitable(a kmip.Attributes) string {
	switch {
	case a.ObjectType != kmip.ObjectSymmetricKey:
		return fmt.Sprintf("the key is not a symmetric key (object type %d): register an AES-256 symmetric key", a.ObjectType)
	case a.Algorithm != kmip.AlgorithmAES || a.Length != 256:
		return fmt.Sprintf("the key is not AES-256 (algorithm %d, %d bits): register an AES-256 key", a.Algorithm, a.Length)
	case a.UsageMask&(kmip.UsageEncrypt|kmip.UsageDecrypt) != kmip.UsageEncrypt|kmip.UsageDecrypt:
		return fmt.Sprintf("the key's cryptographic usage mask (%#x) does not allow both Encrypt and Decrypt: allow both", a.UsageMask)
	case a.State != kmip.StateActive:
		return kmip.StateDetail(a.State) + "; register an Active key"
	}
	return ""
}

// Test implements keyprovider.Tester: the server must speak KMIP 1.4, the
// key must be an Active AES-256 symmetric key that allows Encrypt and
// Decrypt, and a data key must wrap and unwrap. drCompliant is true when
// two or more endpoints of the cluster answer.
func (k *Kind) Test(ctx context.Context, t *keyprovider.Target, strict bool) error {
	key, c, err := k.client(*t)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx = kms.WithTenant(ctx, t.TenantID)
	return explain(k.test(ctx, t, key, c, strict), c.Endpoints())
}

func (k *Kind) test(ctx context.Context, t *keyprovider.Target, key kmip.KeyURI, c *kmip.Client, strict bool) error {
	p := &t.Provider
	p.MultiRegion, p.Replicas = false, nil
	p.DRCompliant = false
	refuse := func(reason string) error {
		if strict {
			return &keyprovider.RefusedError{Reason: reason}
		}
		p.Compliance = keyprovider.ComplianceError{Code: keyprovider.CodeNotCompliant, Region: key.Endpoint, Message: reason}
		return nil
	}
	// A refusal that is the key manager's answer about this service: an
	// error at registration, a compliance error on a test.
	refused := func(err error) error {
		if strict || !errors.Is(err, kms.ErrAccessDenied) && !errors.Is(err, kms.ErrKeyNotFound) && !errors.Is(err, kms.ErrKeyDisabled) {
			if errors.Is(err, kms.ErrKeyNotFound) {
				return refuse(fmt.Sprintf("the KMIP server has no key %q, or this client certificate may not see it", key.UID))
			}
			return err
		}
		return refuse(kms.Outcome(err) + ": " + err.Error())
	}

	versions, err := c.DiscoverVersions(ctx)
	if err != nil {
		return refused(err)
	}
	if !slices.Contains(versions, kmip.Version{Major: 1, Minor: 4}) && !slices.ContainsFunc(versions, func(v kmip.Version) bool { return v.Major >= 2 }) {
		return refuse(fmt.Sprintf("the KMIP server speaks %v, not 1.4, which tenantcrypt needs for AES-GCM with associated data", versions))
	}
	a, err := c.GetAttributes(ctx, key.UID)
	if err != nil {
		return refused(err)
	}
	if why := unsuitable(a); why != "" {
		return refuse(why)
	}
	prov := kmip.NewProvider(kms.MustCMKRef(orDefault(p.Fingerprint)), key, c)
	if err := probeKey(ctx, prov, p.TenantID); err != nil {
		return refused(err)
	}
	p.Compliance = keyprovider.ComplianceError{}
	if c := drCompliance(ctx, c); c != nil {
		p.DRCompliant, p.Compliance = c.DRCompliant, c.Error
	}
	return nil
}

func orDefault(fp string) string {
	if fp == "" {
		return "kmip-probe"
	}
	return fp
}

// probeKey wraps and unwraps a fresh data key.
func probeKey(ctx context.Context, p *kmip.Provider, tenantID string) error {
	b := kms.Binding{kms.BindingTenant: tenantID, kms.BindingKeyID: "registration-probe"}
	dk, w, err := p.GenerateDataKey(ctx, b)
	if err != nil {
		return err
	}
	defer dk.Destroy()
	got, err := p.Unwrap(ctx, w, b)
	if err != nil {
		return err
	}
	defer got.Destroy()
	if !bytes.Equal(got.Reveal(), dk.Reveal()) {
		return &kms.Error{Op: "Decrypt", Provider: p.Ref().String(), Err: errors.New("decrypt gave back another key than was encrypted")}
	}
	return nil
}

// drCompliance asks every endpoint: two or more that answer make the
// registration DR compliant. It returns nil when none answers (nothing is
// known).
func drCompliance(ctx context.Context, c *kmip.Client) *keyprovider.Compliance {
	checks := c.CheckEndpoints(ctx)
	var up, down []string
	for _, ch := range checks {
		if ch.Err == nil {
			up = append(up, ch.Endpoint)
		} else {
			down = append(down, ch.Endpoint)
		}
	}
	switch {
	case len(up) == 0:
		return nil
	case len(up) >= 2:
		return &keyprovider.Compliance{DRCompliant: true}
	case len(checks) == 1:
		return &keyprovider.Compliance{Error: keyprovider.ComplianceError{Code: keyprovider.CodeNotCompliant, Region: up[0],
			Message: "only one KMIP server is registered: add the other servers of the cluster to kmip.endpoints"}}
	}
	return &keyprovider.Compliance{Error: keyprovider.ComplianceError{Code: keyprovider.CodeNotCompliant, Region: down[0],
		Message: fmt.Sprintf("only %s of the cluster's %d servers answers", up[0], len(checks))}}
}
