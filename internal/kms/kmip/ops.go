package kmip

import (
	"context"
	"errors"
	"fmt"

	"github.com/tenantcrypt/tenantcrypt/internal/kms/kmip/ttlv"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// Version is a KMIP protocol version.
type Version struct{ Major, Minor int32 }

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// DiscoverVersions returns the protocol versions the server speaks, its
// preferred first.
func (c *Client) DiscoverVersions(ctx context.Context) ([]Version, error) {
	return c.discoverVersions(ctx, c.cfg.Endpoints)
}

func (c *Client) discoverVersions(ctx context.Context, endpoints []string) ([]Version, error) {
	p, err := c.callAt(ctx, endpoints, OpDiscoverVersions, ttlv.Struct(tagRequestPayload))
	if err != nil {
		return nil, err
	}
	out, err := parseVersions(p)
	if err != nil {
		return nil, c.err(OpDiscoverVersions, nil, &EndpointError{Err: err})
	}
	return out, nil
}

func parseVersions(p *ttlv.Item) ([]Version, error) {
	var out []Version
	if p == nil {
		return out, nil
	}
	for _, v := range p.All(tagProtocolVersion) {
		major, minor := v.Find(tagProtocolVersionMajor), v.Find(tagProtocolVersionMinor)
		if major == nil || minor == nil || major.Type != ttlv.Integer || minor.Type != ttlv.Integer {
			return nil, errors.New("malformed protocol version")
		}
		out = append(out, Version{int32(major.Int), int32(minor.Int)})
	}
	return out, nil
}

// EndpointCheck is whether one endpoint answered.
type EndpointCheck struct {
	Endpoint string
	// Versions are the protocol versions it speaks, if it answered.
	Versions []Version
	Err      error
}

// CheckEndpoints asks every endpoint, each on its own, which versions it
// speaks: a cluster whose endpoints answer can survive the loss of one.
func (c *Client) CheckEndpoints(ctx context.Context) []EndpointCheck {
	out := make([]EndpointCheck, len(c.cfg.Endpoints))
	for i, ep := range c.cfg.Endpoints {
		v, err := c.discoverVersions(ctx, []string{ep})
		out[i] = EndpointCheck{Endpoint: ep, Versions: v, Err: err}
	}
	return out
}

// ServerInfo is what Query tells of a server.
type ServerInfo struct {
	Vendor     string
	Operations []Operation
}

// Supports reports whether the server lists op.
func (s ServerInfo) Supports(op Operation) bool {
	for _, o := range s.Operations {
		if o == op {
			return true
		}
	}
	return false
}

// Query asks the server for its vendor and the operations it supports.
func (c *Client) Query(ctx context.Context) (ServerInfo, error) {
	p, err := c.call(ctx, OpQuery, ttlv.Struct(tagRequestPayload,
		ttlv.Enum(tagQueryFunction, queryOps),
		ttlv.Enum(tagQueryFunction, queryServer),
	))
	if err != nil {
		return ServerInfo{}, err
	}
	return parseServerInfo(p), nil
}

func parseServerInfo(p *ttlv.Item) ServerInfo {
	var info ServerInfo
	if p == nil {
		return info
	}
	for _, o := range p.All(tagOperation) {
		if o.Type == ttlv.Enumeration {
			info.Operations = append(info.Operations, Operation(o.Int))
		}
	}
	if v := p.Find(tagVendorIdentification); v != nil && v.Type == ttlv.TextString {
		info.Vendor = v.Text()
	}
	return info
}

// Attributes are the attributes of a managed object that tenantcrypt
// reads. An attribute the server did not send is zero.
type Attributes struct {
	ObjectType ObjectType
	State      State
	Algorithm  Algorithm
	// Length is the key length in bits.
	Length int32
	// UsageMask is the Cryptographic Usage Mask (UsageEncrypt, ...).
	UsageMask uint32
}

// GetAttributes reads the object type, state, algorithm, length and usage
// mask of the object uid.
func (c *Client) GetAttributes(ctx context.Context, uid string) (Attributes, error) {
	items := []ttlv.Item{ttlv.Text(tagUniqueIdentifier, uid)}
	for _, name := range []string{attrType, attrState, attrAlgorithm, attrLength, attrUsageMask} {
		items = append(items, ttlv.Text(tagAttributeName, name))
	}
	p, err := c.call(ctx, OpGetAttributes, ttlv.Struct(tagRequestPayload, items...))
	if err != nil {
		return Attributes{}, err
	}
	a, err := parseAttributes(p)
	if err != nil {
		return Attributes{}, c.err(OpGetAttributes, nil, &EndpointError{Err: err})
	}
	return a, nil
}

func parseAttributes(p *ttlv.Item) (Attributes, error) {
	var a Attributes
	if p == nil {
		return a, nil
	}
	for _, attr := range p.All(tagAttribute) {
		name, value := attr.Find(tagAttributeName), attr.Find(tagAttributeValue)
		if name == nil || value == nil {
			continue
		}
		want := ttlv.Enumeration
		if n := name.Text(); n == attrLength || n == attrUsageMask {
			want = ttlv.Integer
		}
		if value.Type != want {
			return Attributes{}, fmt.Errorf("attribute %q is a %v", name.Text(), value.Type)
		}
		switch name.Text() {
		case attrType:
			a.ObjectType = ObjectType(value.Int)
		case attrState:
			a.State = State(value.Int)
		case attrAlgorithm:
			a.Algorithm = Algorithm(value.Int)
		case attrLength:
			a.Length = int32(value.Int)
		case attrUsageMask:
			a.UsageMask = uint32(value.Int)
		}
	}
	return a, nil
}

// Sealed is the result of an AES-GCM Encrypt.
type Sealed struct {
	IV         []byte
	Ciphertext []byte
	Tag        []byte
}

// gcmParameters asks for AES-GCM with a 16-byte tag and an IV that the
// server makes.
func gcmParameters() ttlv.Item {
	return ttlv.Struct(tagCryptographicParameters,
		ttlv.Enum(tagBlockCipherMode, modeGCM),
		ttlv.Enum(tagCryptographicAlgorithm, uint32(AlgorithmAES)),
		ttlv.Bool(tagRandomIV, true),
		ttlv.Int(tagTagLength, gcmTagLength),
	)
}

// Encrypt encrypts plaintext with the AES key uid in GCM mode, with aad as
// the associated data; the server makes the IV.
func (c *Client) Encrypt(ctx context.Context, uid string, plaintext *secret.Bytes, aad []byte) (Sealed, error) {
	p, err := c.call(ctx, OpEncrypt, ttlv.Struct(tagRequestPayload,
		ttlv.Text(tagUniqueIdentifier, uid),
		gcmParameters(),
		ttlv.Bytes(tagData, plaintext.Reveal()),
		ttlv.Bytes(tagAuthEncryptionAddlData, aad),
	))
	if err != nil {
		return Sealed{}, err
	}
	s, err := parseSealed(p, plaintext.Len())
	if err != nil {
		return Sealed{}, c.err(OpEncrypt, nil, &EndpointError{Err: err})
	}
	return s, nil
}

func parseSealed(p *ttlv.Item, n int) (Sealed, error) {
	var s Sealed
	if p != nil {
		s.Ciphertext = bytesOf(p.Find(tagData))
		s.IV = bytesOf(p.Find(tagIVCounterNonce))
		s.Tag = bytesOf(p.Find(tagAuthEncryptionTag))
	}
	if len(s.IV) == 0 || len(s.Tag) != gcmTagLength || len(s.Ciphertext) != n {
		return Sealed{}, fmt.Errorf("the answer has an IV of %d bytes, a tag of %d and %d bytes of ciphertext for %d of plaintext",
			len(s.IV), len(s.Tag), len(s.Ciphertext), n)
	}
	return s, nil
}

// Decrypt decrypts s with the AES key uid in GCM mode, with aad as the
// associated data. The caller must Destroy the result.
func (c *Client) Decrypt(ctx context.Context, uid string, s Sealed, aad []byte) (*secret.Bytes, error) {
	p, err := c.call(ctx, OpDecrypt, ttlv.Struct(tagRequestPayload,
		ttlv.Text(tagUniqueIdentifier, uid),
		gcmParameters(),
		ttlv.Bytes(tagData, s.Ciphertext),
		ttlv.Bytes(tagIVCounterNonce, s.IV),
		ttlv.Bytes(tagAuthEncryptionAddlData, aad),
		ttlv.Bytes(tagAuthEncryptionTag, s.Tag),
	))
	if err != nil {
		return nil, err
	}
	out, err := parsePlaintext(p, len(s.Ciphertext))
	if err != nil {
		return nil, c.err(OpDecrypt, nil, &EndpointError{Err: err})
	}
	return out, nil
}

func parsePlaintext(p *ttlv.Item, n int) (*secret.Bytes, error) {
	var data *ttlv.Item
	if p != nil {
		data = p.Find(tagData)
	}
	if data == nil || data.Type != ttlv.ByteString || len(data.Bytes) != n {
		return nil, errors.New("the answer has no plaintext of the ciphertext's length")
	}
	out := secret.New(data.Bytes)
	data.Bytes = nil
	return out, nil
}

func bytesOf(it *ttlv.Item) []byte {
	if it == nil || it.Type != ttlv.ByteString {
		return nil
	}
	return it.Bytes
}
