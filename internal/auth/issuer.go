package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/tenantcrypt/tenantcrypt/api"
)

// DefaultIssuerName is the name ("iss") of the self-issuer when none is
// configured. The server and the command that mints tokens must use the
// same name, or the server refuses the tokens.
const DefaultIssuerName = "tenantcrypt"

// IssuerKeyFile is the name of the self-issuer's key file in its directory.
const IssuerKeyFile = "issuer-keys.json"

// Token lifetimes of the self-issuer.
const (
	// DefaultTokenTTL is the lifetime of a minted token whose request
	// gives none.
	DefaultTokenTTL = time.Hour
	// MaxTokenTTL is the longest lifetime the self-issuer signs. Keep
	// retired keys published at least this long (see Issuer.Rotate).
	MaxTokenTTL = 24 * time.Hour
)

// maxIssuerFileSize bounds the key file; a few keys take a few kilobytes.
const maxIssuerFileSize = 1 << 20

// Issuer is tenantcrypt's own token issuer, for local use and tests: it
// signs tokens with a key kept in its directory and publishes the public
// keys, old ones included for a while after a rotation, as a JWKS. It is
// safe for concurrent use.
//
// Several processes may share the directory (the server, and the CLI that
// mints tokens): the key file is created exactly once and always replaced
// atomically. An Issuer reads the file only when loaded, so keys rotated
// by another process are seen after the next LoadOrCreateIssuer, or, for
// verification, when the file changed and a token names a key id not known
// yet (or the JWKS is asked for), checked at most every reloadInterval. One
// process at a time should rotate (`tenantcrypt issuer rotate`, or Rotate).
type Issuer struct {
	name string
	path string
	now  func() time.Time

	mu   sync.RWMutex
	keys []*issuerKey // the current signing key is the last one

	reloadMu sync.Mutex
	checked  time.Time // last look at the file
	stamp    fileStamp // the file as last loaded
}

// reloadInterval bounds how often an Issuer looks at its key file for
// keys rotated by another process.
const reloadInterval = 2 * time.Second

type fileStamp struct {
	mod  time.Time
	size int64
}

// refresh reloads the key file if another process changed it, at most
// every reloadInterval. A file that does not load keeps the current keys.
func (iss *Issuer) refresh() {
	iss.reloadMu.Lock()
	defer iss.reloadMu.Unlock()
	now := time.Now()
	if now.Sub(iss.checked) < reloadInterval {
		return
	}
	iss.checked = now
	info, err := os.Stat(iss.path)
	if err != nil {
		return
	}
	st := fileStamp{info.ModTime(), info.Size()}
	if st == iss.stamp {
		return
	}
	fresh := &Issuer{path: iss.path}
	if err := fresh.load(); err != nil {
		return
	}
	iss.mu.Lock()
	iss.keys = fresh.keys
	iss.mu.Unlock()
	iss.stamp = st
}

// issuerKey is one signing key and what is known about its life.
type issuerKey struct {
	kid       string
	alg       jose.SignatureAlgorithm
	created   time.Time
	retired   time.Time       // zero for the current key
	dropAfter time.Time       // zero for the current key; unpublished from then on
	private   jose.JSONWebKey // zero once retired
	public    jose.JSONWebKey
	signer    jose.Signer // nil once retired
}

// published reports whether the key is still served to verifiers at now.
func (k *issuerKey) published(now time.Time) bool {
	return k.dropAfter.IsZero() || now.Before(k.dropAfter)
}

// issuerFile is the JSON layout of the key file. Version 1.
type issuerFile struct {
	Version int             `json:"version"`
	Keys    []issuerFileKey `json:"keys"`
}

type issuerFileKey struct {
	Created   time.Time  `json:"created"`
	Retired   *time.Time `json:"retired,omitempty"`
	DropAfter *time.Time `json:"dropAfter,omitempty"`
	// JWK is the key with its kid and alg: private while the key signs,
	// only the public half once it is retired.
	JWK json.RawMessage `json:"jwk"`
}

// LoadOrCreateIssuer returns the issuer named issuer (the "iss" of its
// tokens) whose keys are in dir/issuer-keys.json, creating the directory
// (mode 0700) and a file with one new ES256 key (mode 0600) if there is
// none. It refuses a key file that its group or others may read or write.
func LoadOrCreateIssuer(dir string, issuer string) (*Issuer, error) {
	if issuer == "" {
		return nil, errors.New("auth: issuer needs a name")
	}
	iss := &Issuer{name: issuer, path: filepath.Join(dir, IssuerKeyFile), now: time.Now}
	err := iss.load()
	if !errors.Is(err, os.ErrNotExist) {
		if err != nil {
			return nil, err
		}
		return iss, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: issuer directory: %w", err)
	}
	key, err := newIssuerKey(iss.now())
	if err != nil {
		return nil, err
	}
	created, err := writeFileOnce(iss.path, []*issuerKey{key})
	if err != nil {
		return nil, err
	}
	if !created { // another process created it first
		if err := iss.load(); err != nil {
			return nil, err
		}
		return iss, nil
	}
	iss.keys = []*issuerKey{key}
	return iss, nil
}

// Name returns the issuer's name, the "iss" of the tokens it mints.
func (iss *Issuer) Name() string { return iss.name }

// TokenRequest describes a token for [Issuer.Mint].
type TokenRequest struct {
	// Subject is the "sub" claim. Required.
	Subject string
	// TenantID is the "tenantId" claim; required with a tenant role
	// (RoleTenantAdmin, RoleService).
	TenantID string
	// Roles is the "roles" claim; at least one.
	Roles []Role
	// TTL is the token's lifetime: 0 means DefaultTokenTTL, at most
	// MaxTokenTTL; negative mints a token that has already expired, for
	// tests.
	TTL time.Duration
	// Audience is the "aud" claim. Default DefaultAudience.
	Audience string
}

// mintedClaims are the claims of a minted token, in the names of the
// package documentation.
type mintedClaims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  string           `json:"aud"`
	Expiry    *jwt.NumericDate `json:"exp"`
	NotBefore *jwt.NumericDate `json:"nbf"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	ID        string           `json:"jti"`
	TenantID  string           `json:"tenantId,omitempty"`
	// Roles are names: go-jose's JSON encoder would write a []Role, a
	// slice of bytes, as base64.
	Roles []string `json:"roles"`
}

// Mint signs a token for req with the current signing key. The token is
// valid from now (iat, nbf) for req.TTL (exp) and has a random jti.
func (iss *Issuer) Mint(req TokenRequest) (string, error) {
	if req.Subject == "" {
		return "", errors.New("auth: token needs a subject")
	}
	if len(req.Roles) == 0 {
		return "", errors.New("auth: token needs at least one role")
	}
	if req.TenantID != "" && !api.ValidTenantID(req.TenantID) {
		return "", fmt.Errorf("auth: %q is not a tenant id", req.TenantID)
	}
	roles, err := normalizeRoles(req.Roles)
	if err != nil {
		return "", err
	}
	names := make([]string, len(roles))
	for i, r := range roles {
		if r.tenantScoped() && req.TenantID == "" {
			return "", fmt.Errorf("auth: a %s token needs a tenant id", r)
		}
		names[i] = r.String()
	}
	switch {
	case req.TTL == 0:
		req.TTL = DefaultTokenTTL
	case req.TTL > MaxTokenTTL:
		return "", fmt.Errorf("auth: token lifetime %v exceeds %v", req.TTL, MaxTokenTTL)
	}
	if req.Audience == "" {
		req.Audience = DefaultAudience
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:]) // never fails
	iss.mu.RLock()
	key := iss.keys[len(iss.keys)-1]
	now := iss.now()
	iss.mu.RUnlock()
	c := mintedClaims{
		Issuer:    iss.name,
		Subject:   req.Subject,
		Audience:  req.Audience,
		Expiry:    jwt.NewNumericDate(now.Add(req.TTL)),
		NotBefore: jwt.NewNumericDate(now),
		IssuedAt:  jwt.NewNumericDate(now),
		ID:        base64.RawURLEncoding.EncodeToString(jti[:]),
		TenantID:  req.TenantID,
		Roles:     names,
	}
	token, err := jwt.Signed(key.signer).Claims(c).Serialize()
	if err != nil {
		return "", fmt.Errorf("auth: signing token: %w", err)
	}
	return token, nil
}

// Rotate makes a new ES256 key the signing key. The key it replaces, like
// every retired key, stays published, so that the tokens it signed still
// verify, until keepFor has passed; keepFor should be at least the longest
// lifetime of a token it signed (MaxTokenTTL at most), plus the verifiers'
// JWKS refresh interval. Keys past that are dropped from the file.
func (iss *Issuer) Rotate(keepFor time.Duration) error {
	if keepFor < 0 {
		return fmt.Errorf("auth: negative keepFor %v", keepFor)
	}
	// Serialised with refresh, so that a reload that read the file before
	// this rotation wrote it cannot put the old keys back afterwards.
	iss.reloadMu.Lock()
	defer iss.reloadMu.Unlock()
	iss.mu.Lock()
	defer iss.mu.Unlock()
	now := iss.now()
	fresh, err := newIssuerKey(now)
	if err != nil {
		return err
	}
	keys := make([]*issuerKey, 0, len(iss.keys)+1)
	for _, k := range iss.keys {
		if k.retired.IsZero() {
			// A retired key signs nothing more: keep only its public half.
			k = &issuerKey{kid: k.kid, alg: k.alg, created: k.created, public: k.public,
				retired: now, dropAfter: now.Add(keepFor)}
		}
		if k.published(now) {
			keys = append(keys, k)
		}
	}
	keys = append(keys, fresh)
	if err := writeFileAtomic(iss.path, keys); err != nil {
		return err
	}
	iss.keys = keys
	if info, err := os.Stat(iss.path); err == nil {
		iss.stamp = fileStamp{info.ModTime(), info.Size()}
	}
	return nil
}

// JWKS returns the public keys that verifiers should trust: the signing
// key first, then the retired keys still published.
func (iss *Issuer) JWKS() jose.JSONWebKeySet {
	iss.refresh()
	iss.mu.RLock()
	defer iss.mu.RUnlock()
	now := iss.now()
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(iss.keys))}
	for i := len(iss.keys) - 1; i >= 0; i-- {
		if k := iss.keys[i]; k.published(now) {
			set.Keys = append(set.Keys, k.public)
		}
	}
	return set
}

// KeySource returns a KeySource serving the issuer's published public keys,
// following rotations, so that the server verifies its own tokens.
func (iss *Issuer) KeySource() KeySource { return issuerKeys{iss} }

type issuerKeys struct{ iss *Issuer }

var _ KeySource = issuerKeys{}

func (s issuerKeys) Key(_ context.Context, kid string) (jose.JSONWebKey, error) {
	if k, ok := s.lookup(kid); ok {
		return k, nil
	}
	// Perhaps rotated by another process (`tenantcrypt issuer rotate`).
	s.iss.refresh()
	if k, ok := s.lookup(kid); ok {
		return k, nil
	}
	return jose.JSONWebKey{}, ErrKeyNotFound
}

func (s issuerKeys) lookup(kid string) (jose.JSONWebKey, bool) {
	s.iss.mu.RLock()
	defer s.iss.mu.RUnlock()
	now := s.iss.now()
	for _, k := range s.iss.keys {
		if k.kid == kid && k.published(now) {
			return k.public, true
		}
	}
	return jose.JSONWebKey{}, false
}

// newIssuerKey generates an ES256 signing key whose kid is its RFC 7638
// thumbprint.
func newIssuerKey(now time.Time) (*issuerKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("auth: generating issuer key: %w", err)
	}
	jwk := jose.JSONWebKey{Key: priv, Algorithm: string(jose.ES256), Use: "sig"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("auth: issuer key thumbprint: %w", err)
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	return makeIssuerKey(jwk, now.UTC().Truncate(time.Second))
}

// makeIssuerKey checks a private signing key and prepares its signer.
func makeIssuerKey(jwk jose.JSONWebKey, created time.Time) (*issuerKey, error) {
	alg := jose.SignatureAlgorithm(jwk.Algorithm)
	if jwk.KeyID == "" {
		return nil, errors.New("key without a key id")
	}
	switch jwk.Key.(type) {
	case *ecdsa.PrivateKey, ed25519.PrivateKey, *rsa.PrivateKey:
	default:
		return nil, fmt.Errorf("key %q is not a private key", jwk.KeyID)
	}
	pub := jwk.Public()
	if err := checkPublicKey(pub); err != nil {
		return nil, fmt.Errorf("key %q: %w", jwk.KeyID, err)
	}
	if err := keyFits(pub, alg); err != nil {
		return nil, fmt.Errorf("key %q does not fit algorithm %q", jwk.KeyID, alg)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jwk}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", jwk.KeyID, err)
	}
	return &issuerKey{kid: jwk.KeyID, alg: alg, created: created, private: jwk, public: pub, signer: signer}, nil
}

// makeRetiredKey checks the public key of a retired signing key.
func makeRetiredKey(jwk jose.JSONWebKey, created time.Time) (*issuerKey, error) {
	alg := jose.SignatureAlgorithm(jwk.Algorithm)
	if jwk.KeyID == "" {
		return nil, errors.New("key without a key id")
	}
	pub := jwk.Public() // drop a private half a file might still carry
	if err := checkPublicKey(pub); err != nil {
		return nil, fmt.Errorf("key %q: %w", jwk.KeyID, err)
	}
	if err := keyFits(pub, alg); err != nil {
		return nil, fmt.Errorf("key %q does not fit algorithm %q", jwk.KeyID, alg)
	}
	return &issuerKey{kid: jwk.KeyID, alg: alg, created: created, public: pub}, nil
}

// load reads the key file, refusing one that others may read.
func (iss *Issuer) load() error {
	f, err := os.Open(iss.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return err
		}
		return fmt.Errorf("auth: issuer key file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("auth: issuer key file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("auth: issuer key file %s is not a regular file", iss.path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("auth: issuer key file %s has mode %04o; it must not be accessible to group or others (chmod 600)", iss.path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxIssuerFileSize+1))
	if err != nil {
		return fmt.Errorf("auth: issuer key file: %w", err)
	}
	if len(data) > maxIssuerFileSize {
		return fmt.Errorf("auth: issuer key file %s is too large", iss.path)
	}
	keys, err := parseIssuerFile(data)
	if err != nil {
		return fmt.Errorf("auth: issuer key file %s: %w", iss.path, err)
	}
	iss.keys = keys
	return nil
}

func parseIssuerFile(data []byte) ([]*issuerKey, error) {
	var file issuerFile
	if err := json.Unmarshal(data, &file); err != nil {
		return nil, err
	}
	if file.Version != 1 {
		return nil, fmt.Errorf("unknown version %d", file.Version)
	}
	var keys []*issuerKey
	var current *issuerKey
	seen := make(map[string]bool)
	for _, fk := range file.Keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(fk.JWK); err != nil {
			return nil, err
		}
		var k *issuerKey
		var err error
		if fk.Retired == nil {
			k, err = makeIssuerKey(jwk, fk.Created)
		} else {
			k, err = makeRetiredKey(jwk, fk.Created)
		}
		if err != nil {
			return nil, err
		}
		if seen[k.kid] {
			return nil, fmt.Errorf("two keys with key id %q", k.kid)
		}
		seen[k.kid] = true
		switch {
		case fk.Retired == nil && current == nil:
			current = k
			continue // appended last
		case fk.Retired == nil:
			return nil, errors.New("more than one current key")
		case fk.DropAfter == nil:
			return nil, fmt.Errorf("retired key %q without dropAfter", k.kid)
		}
		k.retired, k.dropAfter = *fk.Retired, *fk.DropAfter
		keys = append(keys, k)
	}
	if current == nil {
		return nil, errors.New("no current key")
	}
	return append(keys, current), nil
}

func marshalIssuerFile(keys []*issuerKey) ([]byte, error) {
	file := issuerFile{Version: 1, Keys: make([]issuerFileKey, 0, len(keys))}
	for _, k := range keys {
		key := k.private
		if !k.retired.IsZero() {
			key = k.public
		}
		jwk, err := key.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("auth: issuer key %q: %w", k.kid, err)
		}
		fk := issuerFileKey{Created: k.created, JWK: jwk}
		if !k.retired.IsZero() {
			retired, dropAfter := k.retired, k.dropAfter
			fk.Retired, fk.DropAfter = &retired, &dropAfter
		}
		file.Keys = append(file.Keys, fk)
	}
	return json.MarshalIndent(file, "", "  ")
}

// writeFileOnce writes keys to path unless path exists already, in which
// case it reports created false. The file appears complete or not at all.
func writeFileOnce(path string, keys []*issuerKey) (created bool, err error) {
	tmp, err := writeTemp(path, keys)
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("auth: issuer key file: %w", err)
	}
	return true, syncDir(filepath.Dir(path))
}

// writeFileAtomic replaces path with keys; readers see the old file or the
// new one, never a mix.
func writeFileAtomic(path string, keys []*issuerKey) error {
	tmp, err := writeTemp(path, keys)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("auth: issuer key file: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// writeTemp writes keys to a new file of mode 0600 beside path, synced to
// disk, and returns its name.
func writeTemp(path string, keys []*issuerKey) (string, error) {
	data, err := marshalIssuerFile(keys)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return "", fmt.Errorf("auth: issuer key file: %w", err)
	}
	name := f.Name()
	err = f.Chmod(0o600) // CreateTemp's mode already; be explicit for the key file
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("auth: issuer key file: %w", err)
	}
	return name, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("auth: issuer directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("auth: issuer directory: %w", err)
	}
	return nil
}
