//go:build cgo

// Package pkcs11 keeps the internal KMS's root key in an HSM, reached
// through its PKCS#11 library (github.com/miekg/pkcs11, which needs cgo).
//
// Each root key version is its own AES-256 secret key object on the token,
// labelled with the configured key label, with CKA_ID the version number (4
// bytes, big endian), created inside the token as sensitive and
// non-extractable, so that its value never exists outside the HSM. KEKs
// are sealed and opened by the HSM with CKM_AES_GCM (C_Encrypt/C_Decrypt),
// a random 96-bit IV and the internal KMS's associated data (which binds
// the tenant id, the KEK version and the root version). An HSM is an
// internalkms.Device: internalkms.OpenDevice records its current version in
// the database so that every replica sharing the token agrees on it.
//
// Use Open once at start and Close at shutdown. The HSM is called only on
// a KEK cache miss, a KEK creation or a rewrap, never per data key; a pool
// of sessions (Config.Sessions) serves concurrent calls.
package pkcs11

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	p11 "github.com/miekg/pkcs11"

	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// Config says which HSM key objects hold the root key.
type Config struct {
	// Module is the path of the vendor's PKCS#11 library, e.g.
	// /usr/lib/softhsm/libsofthsm2.so.
	Module string
	// Token is the label of the token (slot) that holds the root key.
	Token string
	// PIN is the token's user PIN.
	PIN string
	// KeyLabel is the CKA_LABEL of the root key objects.
	KeyLabel string
	// Sessions bounds the sessions open at once (concurrent HSM calls);
	// default DefaultSessions.
	Sessions int
}

// DefaultSessions is the default size of the session pool: KEK unwraps
// come in bursts only after a restart or a cache expiry, and a few
// sessions keep them from queueing without holding many HSM resources.
const DefaultSessions = 8

// Errors of Open.
var (
	// ErrWrongPIN: the token refused the PIN.
	ErrWrongPIN = errors.New("the HSM token refused the PIN")
	// ErrTokenNotFound: no token with the configured label.
	ErrTokenNotFound = errors.New("no HSM token with that label")
	// ErrModule: the PKCS#11 library could not be loaded or initialised.
	ErrModule = errors.New("the PKCS#11 module could not be loaded")
)

const (
	ivSize   = 12
	tagBits  = 128
	keyBytes = 32
)

// HSM is a root key held in a PKCS#11 token. It implements
// internalkms.Device and is safe for concurrent use.
type HSM struct {
	cfg  Config
	mod  *module
	slot uint
	// login keeps one session open for the life of the HSM: a PKCS#11
	// login belongs to the application and lasts while any of its
	// sessions on the token is open.
	login p11.SessionHandle
	// pool holds cfg.Sessions entries: an open session, or 0 for one not
	// opened yet (0 is CK_INVALID_HANDLE).
	pool chan p11.SessionHandle

	current atomic.Uint32
	ops     atomic.Uint64 // seals and opens, for the metric
	mu      sync.Mutex
	keys    map[uint32]p11.ObjectHandle // versions found on the token and checked
	listed  []uint32                    // versions on the token at the last ListVersions
	closed  bool
}

var _ internalkms.Device = (*HSM)(nil)

// Open loads the module, finds the token and logs in. It does not look at
// the root key objects: internalkms.OpenDevice does, with the database.
// Errors: ErrModule, ErrTokenNotFound, ErrWrongPIN (all wrapped, with what
// the HSM said, never the PIN).
func Open(cfg Config) (_ *HSM, err error) {
	switch {
	case cfg.Module == "":
		return nil, errors.New("pkcs11: no module path")
	case cfg.Token == "":
		return nil, errors.New("pkcs11: no token label")
	case cfg.KeyLabel == "":
		return nil, errors.New("pkcs11: no key label")
	case cfg.PIN == "":
		return nil, errors.New("pkcs11: no PIN")
	}
	if cfg.Sessions <= 0 {
		cfg.Sessions = DefaultSessions
	}
	mod, err := loadModule(cfg.Module)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			mod.release()
		}
	}()
	slot, err := findToken(mod.ctx, cfg.Token)
	if err != nil {
		return nil, err
	}
	login, err := mod.ctx.OpenSession(slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: opening a session on token %q: %w", cfg.Token, err)
	}
	// CKR_USER_ALREADY_LOGGED_IN: another HSM of this process logged in to
	// the token already; a PKCS#11 login belongs to the whole process, so
	// the token does not check this PIN again. The server opens one HSM.
	if err := mod.ctx.Login(login, p11.CKU_USER, cfg.PIN); err != nil && !isCode(err, p11.CKR_USER_ALREADY_LOGGED_IN) {
		_ = mod.ctx.CloseSession(login)
		if isCode(err, p11.CKR_PIN_INCORRECT) || isCode(err, p11.CKR_PIN_INVALID) || isCode(err, p11.CKR_PIN_LEN_RANGE) {
			return nil, fmt.Errorf("pkcs11: logging in to token %q: %w (%v)", cfg.Token, ErrWrongPIN, err)
		}
		if isCode(err, p11.CKR_PIN_LOCKED) {
			return nil, fmt.Errorf("pkcs11: logging in to token %q: %w: the PIN is locked (%v)", cfg.Token, ErrWrongPIN, err)
		}
		return nil, fmt.Errorf("pkcs11: logging in to token %q: %w", cfg.Token, err)
	}
	h := &HSM{cfg: cfg, mod: mod, slot: slot, login: login, pool: make(chan p11.SessionHandle, cfg.Sessions), keys: map[uint32]p11.ObjectHandle{}}
	h.cfg.PIN = "" // not needed any more: the login lasts while a session is open
	for range cfg.Sessions {
		h.pool <- 0
	}
	return h, nil
}

// Close closes every session, once the calls in flight have returned, and
// unloads the module when no other HSM of this process uses it.
func (h *HSM) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	h.mu.Unlock()
	for range cap(h.pool) {
		if s := <-h.pool; s != 0 {
			_ = h.mod.ctx.CloseSession(s)
		}
	}
	_ = h.mod.ctx.CloseSession(h.login)
	h.mod.release()
}

// Token is the label of the token.
func (h *HSM) Token() string { return h.cfg.Token }

// KeyLabel is the label of the root key objects.
func (h *HSM) KeyLabel() string { return h.cfg.KeyLabel }

// Operations counts the seals and opens this HSM has been asked for: on
// the data plane, one per KEK cache miss.
func (h *HSM) Operations() uint64 { return h.ops.Load() }

// Current is the version that seals new KEKs (SetCurrent); 0 before.
func (h *HSM) Current() uint32 { return h.current.Load() }

// Versions lists the root key versions found on the token so far.
func (h *HSM) Versions() []uint32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	vs := slices.Clone(h.listed)
	for v := range h.keys {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return slices.Compact(vs)
}

// String names the token and key label, never the PIN.
func (h *HSM) String() string {
	return fmt.Sprintf("pkcs11.HSM{token: %q, keyLabel: %q, current: %d}", h.cfg.Token, h.cfg.KeyLabel, h.Current())
}

// Format prints String for every verb, so that no formatting path reaches
// the configuration through reflection.
func (h *HSM) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, h.String()) }

// SetCurrent makes version v, which must exist on the token as a usable
// root key, the version that seals. Errors: internalkms.ErrRootVersionMissing.
func (h *HSM) SetCurrent(ctx context.Context, v uint32) error {
	if _, err := h.key(ctx, v); err != nil {
		return err
	}
	h.current.Store(v)
	_, _ = h.ListVersions(ctx) // for Versions; a failure here only shortens that list
	return nil
}

// ListVersions searches the token for every root key object with the key
// label and returns their versions, ascending.
func (h *HSM) ListVersions(ctx context.Context) ([]uint32, error) {
	var found []uint32
	err := h.withSession(ctx, func(s p11.SessionHandle) error {
		objs, err := h.find(s, nil)
		if err != nil {
			return err
		}
		for _, o := range objs {
			attrs, err := h.mod.ctx.GetAttributeValue(s, o, []*p11.Attribute{p11.NewAttribute(p11.CKA_ID, nil)})
			if err != nil {
				return fmt.Errorf("pkcs11: reading CKA_ID: %w", err)
			}
			if v, ok := versionOf(attrs[0].Value); ok {
				found = append(found, v)
			}
		}
		return nil
	})
	slices.Sort(found)
	found = slices.Compact(found)
	if err == nil {
		h.mu.Lock()
		h.listed = found
		h.mu.Unlock()
	}
	return slices.Clone(found), err
}

// CreateVersion generates version v inside the token: an AES-256 secret
// key, persistent (CKA_TOKEN), private, sensitive and non-extractable, for
// encryption and decryption only, not modifiable. Errors:
// internalkms.ErrRootVersionExists.
func (h *HSM) CreateVersion(ctx context.Context, v uint32) error {
	if v == 0 {
		return errors.New("pkcs11: root key versions start at 1")
	}
	return h.withSession(ctx, func(s p11.SessionHandle) error {
		existing, err := h.find(s, idBytes(v))
		if err != nil {
			return err
		}
		if len(existing) > 0 {
			return fmt.Errorf("pkcs11: token %q: key %q with CKA_ID %x: %w", h.cfg.Token, h.cfg.KeyLabel, idBytes(v), internalkms.ErrRootVersionExists)
		}
		tmpl := []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
			p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
			p11.NewAttribute(p11.CKA_VALUE_LEN, keyBytes),
			p11.NewAttribute(p11.CKA_TOKEN, true),
			p11.NewAttribute(p11.CKA_PRIVATE, true),
			p11.NewAttribute(p11.CKA_SENSITIVE, true),
			p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
			p11.NewAttribute(p11.CKA_ENCRYPT, true),
			p11.NewAttribute(p11.CKA_DECRYPT, true),
			p11.NewAttribute(p11.CKA_WRAP, false),
			p11.NewAttribute(p11.CKA_UNWRAP, false),
			p11.NewAttribute(p11.CKA_SIGN, false),
			p11.NewAttribute(p11.CKA_VERIFY, false),
			p11.NewAttribute(p11.CKA_DERIVE, false),
			p11.NewAttribute(p11.CKA_MODIFIABLE, false),
			p11.NewAttribute(p11.CKA_LABEL, h.cfg.KeyLabel),
			p11.NewAttribute(p11.CKA_ID, idBytes(v)),
		}
		// One token object created at a time per process: SoftHSM2 fails
		// concurrent creations (CKR_GENERAL_ERROR, SoftHSMv2 issue #573).
		// Creations are rare (first start, rotation), so this costs nothing.
		h.mod.create.Lock()
		o, err := h.mod.ctx.GenerateKey(s, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_GEN, nil)}, tmpl)
		h.mod.create.Unlock()
		if err != nil {
			return fmt.Errorf("pkcs11: generating root key version %d on token %q: %w", v, h.cfg.Token, err)
		}
		h.mu.Lock()
		h.keys[v] = o
		h.mu.Unlock()
		return nil
	})
}

// Seal encrypts plaintext inside the HSM with root key version v.
func (h *HSM) Seal(ctx context.Context, v uint32, plaintext *secret.Bytes, ad []byte) ([]byte, error) {
	h.ops.Add(1)
	key, err := h.key(ctx, v)
	if err != nil {
		return nil, err
	}
	iv := make([]byte, ivSize)
	_, _ = rand.Read(iv)
	var out []byte
	err = h.withSession(ctx, func(s p11.SessionHandle) error {
		params := p11.NewGCMParams(iv, ad, tagBits)
		defer params.Free()
		if err := h.mod.ctx.EncryptInit(s, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_GCM, params)}, key); err != nil {
			return fmt.Errorf("pkcs11: AES-GCM encrypt with root key version %d: %w", v, err)
		}
		ct, err := h.mod.ctx.Encrypt(s, plaintext.Reveal())
		if err != nil {
			return fmt.Errorf("pkcs11: AES-GCM encrypt with root key version %d: %w", v, err)
		}
		// Some HSMs choose the IV themselves and write it back.
		used := params.IV()
		if len(used) != ivSize {
			return fmt.Errorf("pkcs11: the HSM used a %d-byte GCM IV, want %d", len(used), ivSize)
		}
		out = append(used, ct...)
		return nil
	})
	return out, err
}

// Open decrypts sealed inside the HSM with root key version v. A sealed
// value that does not authenticate is internalkms.ErrSealedKEK.
func (h *HSM) Open(ctx context.Context, v uint32, sealed, ad []byte) (*secret.Bytes, error) {
	h.ops.Add(1)
	if len(sealed) < ivSize+tagBits/8 {
		return nil, internalkms.ErrSealedKEK
	}
	key, err := h.key(ctx, v)
	if err != nil {
		return nil, err
	}
	var pt *secret.Bytes
	err = h.withSession(ctx, func(s p11.SessionHandle) error {
		params := p11.NewGCMParams(sealed[:ivSize], ad, tagBits)
		defer params.Free()
		if err := h.mod.ctx.DecryptInit(s, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_GCM, params)}, key); err != nil {
			return fmt.Errorf("pkcs11: AES-GCM decrypt with root key version %d: %w", v, err)
		}
		b, err := h.mod.ctx.Decrypt(s, sealed[ivSize:])
		if err != nil {
			if isCode(err, p11.CKR_ENCRYPTED_DATA_INVALID) || isCode(err, p11.CKR_ENCRYPTED_DATA_LEN_RANGE) {
				return internalkms.ErrSealedKEK
			}
			if isCode(err, p11.CKR_GENERAL_ERROR) {
				// SoftHSM2 (and others) report a failed GCM tag check so.
				return fmt.Errorf("%w (the HSM answered %v, which is how several HSMs report a failed GCM tag check)", internalkms.ErrSealedKEK, err)
			}
			return fmt.Errorf("pkcs11: AES-GCM decrypt with root key version %d: %w", v, err)
		}
		pt = secret.New(b)
		return nil
	})
	return pt, err
}

// key returns the object handle of version v, searching the token on the
// first use, and checks that the object is a sensitive, non-extractable
// AES-256 key: a look-alike object made by someone else with the same
// label must not receive KEKs.
func (h *HSM) key(ctx context.Context, v uint32) (p11.ObjectHandle, error) {
	h.mu.Lock()
	o, ok := h.keys[v]
	h.mu.Unlock()
	if ok {
		return o, nil
	}
	err := h.withSession(ctx, func(s p11.SessionHandle) error {
		objs, err := h.find(s, idBytes(v))
		if err != nil {
			return err
		}
		switch len(objs) {
		case 0:
			return fmt.Errorf("%w: token %q has no key %q with CKA_ID %x (root key version %d)",
				internalkms.ErrRootVersionMissing, h.cfg.Token, h.cfg.KeyLabel, idBytes(v), v)
		case 1:
		default:
			return fmt.Errorf("pkcs11: token %q has %d keys %q with CKA_ID %x; remove all but the root key version %d",
				h.cfg.Token, len(objs), h.cfg.KeyLabel, idBytes(v), v)
		}
		if err := h.checkKey(s, objs[0], v); err != nil {
			return err
		}
		o = objs[0]
		return nil
	})
	if err != nil {
		return 0, err
	}
	h.mu.Lock()
	h.keys[v] = o
	h.mu.Unlock()
	return o, nil
}

// Attributes are the security attributes of a root key object.
type Attributes struct {
	KeyType                           uint
	Length                            int
	Sensitive, Extractable            bool
	AlwaysSensitive, NeverExtractable bool
}

// KeyAttributes reads the security attributes of version v's key object.
func (h *HSM) KeyAttributes(ctx context.Context, v uint32) (Attributes, error) {
	o, err := h.key(ctx, v)
	if err != nil {
		return Attributes{}, err
	}
	var a Attributes
	err = h.withSession(ctx, func(s p11.SessionHandle) error {
		a, err = h.attributes(s, o)
		return err
	})
	return a, err
}

func (h *HSM) attributes(s p11.SessionHandle, o p11.ObjectHandle) (Attributes, error) {
	got, err := h.mod.ctx.GetAttributeValue(s, o, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_KEY_TYPE, nil),
		p11.NewAttribute(p11.CKA_VALUE_LEN, nil),
		p11.NewAttribute(p11.CKA_SENSITIVE, nil),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, nil),
		p11.NewAttribute(p11.CKA_ALWAYS_SENSITIVE, nil),
		p11.NewAttribute(p11.CKA_NEVER_EXTRACTABLE, nil),
	})
	if err != nil {
		return Attributes{}, fmt.Errorf("pkcs11: reading the root key's attributes: %w", err)
	}
	var a Attributes
	for _, at := range got {
		switch at.Type {
		case p11.CKA_KEY_TYPE:
			a.KeyType = uint(ulong(at.Value))
		case p11.CKA_VALUE_LEN:
			a.Length = int(ulong(at.Value))
		case p11.CKA_SENSITIVE:
			a.Sensitive = boolean(at.Value)
		case p11.CKA_EXTRACTABLE:
			a.Extractable = boolean(at.Value)
		case p11.CKA_ALWAYS_SENSITIVE:
			a.AlwaysSensitive = boolean(at.Value)
		case p11.CKA_NEVER_EXTRACTABLE:
			a.NeverExtractable = boolean(at.Value)
		}
	}
	return a, nil
}

func (h *HSM) checkKey(s p11.SessionHandle, o p11.ObjectHandle, v uint32) error {
	a, err := h.attributes(s, o)
	if err != nil {
		return err
	}
	if a.KeyType != p11.CKK_AES || a.Length != keyBytes || !a.Sensitive || a.Extractable {
		return fmt.Errorf("pkcs11: token %q: key %q with CKA_ID %x (root key version %d) is not a sensitive, non-extractable AES-256 key "+
			"(type %#x, %d bytes, sensitive %t, extractable %t); refusing to seal KEKs with it",
			h.cfg.Token, h.cfg.KeyLabel, idBytes(v), v, a.KeyType, a.Length, a.Sensitive, a.Extractable)
	}
	return nil
}

// find returns the secret key objects with the key label and, if id is
// not nil, that CKA_ID.
func (h *HSM) find(s p11.SessionHandle, id []byte) ([]p11.ObjectHandle, error) {
	tmpl := []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
		p11.NewAttribute(p11.CKA_LABEL, h.cfg.KeyLabel),
	}
	if id != nil {
		tmpl = append(tmpl, p11.NewAttribute(p11.CKA_ID, id))
	}
	if err := h.mod.ctx.FindObjectsInit(s, tmpl); err != nil {
		return nil, fmt.Errorf("pkcs11: searching token %q: %w", h.cfg.Token, err)
	}
	var all []p11.ObjectHandle
	for {
		objs, _, err := h.mod.ctx.FindObjects(s, 64)
		if err != nil {
			_ = h.mod.ctx.FindObjectsFinal(s)
			return nil, fmt.Errorf("pkcs11: searching token %q: %w", h.cfg.Token, err)
		}
		all = append(all, objs...)
		if len(objs) == 0 {
			break
		}
	}
	if err := h.mod.ctx.FindObjectsFinal(s); err != nil {
		return nil, fmt.Errorf("pkcs11: searching token %q: %w", h.cfg.Token, err)
	}
	return all, nil
}

var errClosed = errors.New("pkcs11: the HSM was closed")

// withSession runs fn with a session from the pool, opening one if the
// pool's entry has none yet, and waits (bounded by ctx) while all are busy.
// A session the HSM reports as gone is dropped and reopened next time.
func (h *HSM) withSession(ctx context.Context, fn func(s p11.SessionHandle) error) error {
	var s p11.SessionHandle
	select {
	case s = <-h.pool:
	case <-ctx.Done():
		return ctx.Err()
	}
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		h.pool <- s
		return errClosed
	}
	if s == 0 {
		var err error
		if s, err = h.mod.ctx.OpenSession(h.slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION); err != nil {
			h.pool <- 0
			return fmt.Errorf("pkcs11: opening a session on token %q: %w", h.cfg.Token, err)
		}
	}
	err := fn(s)
	if sessionGone(err) {
		_ = h.mod.ctx.CloseSession(s)
		s = 0
		// Handles may be stale too (a reconnected or restarted HSM).
		h.mu.Lock()
		clear(h.keys)
		h.mu.Unlock()
	}
	h.pool <- s
	return err
}

func sessionGone(err error) bool {
	for _, c := range []uint{p11.CKR_SESSION_HANDLE_INVALID, p11.CKR_SESSION_CLOSED, p11.CKR_DEVICE_REMOVED,
		p11.CKR_TOKEN_NOT_PRESENT, p11.CKR_DEVICE_ERROR, p11.CKR_OBJECT_HANDLE_INVALID, p11.CKR_KEY_HANDLE_INVALID, p11.CKR_USER_NOT_LOGGED_IN} {
		if isCode(err, c) {
			return true
		}
	}
	return false
}

func findToken(ctx *p11.Ctx, label string) (uint, error) {
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("pkcs11: listing slots: %w", err)
	}
	var labels []string
	for _, slot := range slots {
		info, err := ctx.GetTokenInfo(slot)
		if err != nil {
			continue
		}
		l := strings.TrimRight(info.Label, " \x00")
		if l == label {
			return slot, nil
		}
		if l != "" {
			labels = append(labels, fmt.Sprintf("%q", l))
		}
	}
	return 0, fmt.Errorf("pkcs11: %w %q (tokens found: %s)", ErrTokenNotFound, label, strings.Join(append(labels, "none")[:max(1, len(labels))], ", "))
}

func idBytes(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func versionOf(id []byte) (uint32, bool) {
	if len(id) != 4 {
		return 0, false
	}
	v := binary.BigEndian.Uint32(id)
	return v, v != 0
}

func isCode(err error, code uint) bool {
	var e p11.Error
	return errors.As(err, &e) && uint(e) == code
}

// ulong decodes a CK_ULONG attribute value (native byte order and size).
func ulong(b []byte) uint64 {
	switch len(b) {
	case 8:
		return binary.NativeEndian.Uint64(b)
	case 4:
		return uint64(binary.NativeEndian.Uint32(b))
	}
	return 0
}

func boolean(b []byte) bool { return len(b) == 1 && b[0] != 0 }

// module is one loaded PKCS#11 library. A library has one state per
// process (C_Initialize/C_Finalize), so every HSM of the process that uses
// the same library path shares it, and the last one to close finalizes it.
type module struct {
	path   string
	ctx    *p11.Ctx
	refs   int
	create sync.Mutex // serialises token object creation
}

// modules is the process's loaded libraries: process-wide state that
// PKCS#11 itself imposes, not a registry of services.
var modules = struct {
	sync.Mutex
	m map[string]*module
}{m: map[string]*module{}}

func loadModule(path string) (*module, error) {
	modules.Lock()
	defer modules.Unlock()
	if m := modules.m[path]; m != nil {
		m.refs++
		return m, nil
	}
	ctx := p11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("pkcs11: %w: %s (is the path right, and the library built for this platform?)", ErrModule, path)
	}
	if err := ctx.Initialize(); err != nil && !isCode(err, p11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		ctx.Destroy()
		return nil, fmt.Errorf("pkcs11: %w: %s: C_Initialize: %v", ErrModule, path, err)
	}
	m := &module{path: path, ctx: ctx, refs: 1}
	modules.m[path] = m
	return m, nil
}

func (m *module) release() {
	modules.Lock()
	defer modules.Unlock()
	if m.refs--; m.refs > 0 {
		return
	}
	delete(modules.m, m.path)
	_ = m.ctx.Finalize()
	m.ctx.Destroy()
}
