package audit

import (
	"context"
	"time"
)

// Store keeps the audit log. Implementations live in internal/store/... and
// pass internal/store/storetest. The log is append-only: no method changes
// or deletes an event, but Prune, which removes whole chain prefixes that a
// kept checkpoint vouches for.
type Store interface {
	// AppendEvents appends events to their tenants' chains in one
	// transaction. For each event in order, it reads the chain head of
	// the event's ChainID (creating an empty head — Seq 0, Hash
	// GenesisHash(chain) — for a new chain) under a lock that serialises
	// appends to that chain across processes, sets the event's Seq to
	// head.Seq+1 and PrevHash to head.Hash, calls seal(&event) which fills
	// Hash, stores the event and moves the head. It returns the events as
	// stored (Seq, PrevHash and Hash set). The store sets Time to UTC at
	// microsecond precision before seal, so that what is sealed is what is
	// stored. It refuses (and stores nothing of the call) an event with an
	// empty ChainID, text that is not valid UTF-8 or holds a NUL (outside
	// Details), or a seal that sets no Hash.
	AppendEvents(ctx context.Context, events []Event, seal func(*Event)) ([]Event, error)
	// ChainHead returns a chain's head (Seq 0 and GenesisHash for a chain
	// with no events).
	ChainHead(ctx context.Context, chainID string) (Head, error)
	// Events returns up to limit events of a chain matching f, in Seq
	// order, with Seq greater than f.AfterSeq.
	Events(ctx context.Context, chainID string, f Filter, limit int) ([]Event, error)
	// PutCheckpoint stores a signed checkpoint. Errors: ErrExists when the
	// chain has a checkpoint at that Seq.
	PutCheckpoint(ctx context.Context, c Checkpoint) error
	// Checkpoints returns a chain's checkpoints with Seq greater than
	// afterSeq, in Seq order, up to limit.
	Checkpoints(ctx context.Context, chainID string, afterSeq int64, limit int) ([]Checkpoint, error)
	// Chains returns up to limit chain ids greater than after, in order.
	Chains(ctx context.Context, after string, limit int) ([]string, error)
	// Prune deletes the chain's events with Seq <= c.Seq and its
	// checkpoints with Seq < c.Seq, provided c is a stored checkpoint of
	// the chain (with that hash); it returns how many events it deleted.
	// Errors: fault.ErrNotFound (wrapped) when c is not stored.
	Prune(ctx context.Context, c Checkpoint) (int, error)
}

// Filter selects events. Zero fields select everything.
type Filter struct {
	AfterSeq  int64
	From, To  time.Time // Time >= From, Time < To
	Action    string    // exact action, or a prefix ending in "." ("keyprovider.")
	Principal string    // exact Principal
	Result    string    // exact Result
}

// Head is the end of a chain: its last event's Seq and Hash.
type Head struct {
	ChainID string
	Seq     int64
	Hash    []byte
}

// Event is one audited fact. It never holds key material, plaintext or
// ciphertext.
type Event struct {
	// ChainID is the chain the event belongs to: the tenant's id, or
	// PlatformChain for events of no tenant (a region's failover, a root
	// key rotation).
	ChainID string
	Seq     int64
	Time    time.Time
	// TenantID is the tenant the event is about ("" for platform events).
	TenantID string
	// Principal is the JWT subject of the caller ("" for the service's own
	// actions, such as the key monitor's); TokenID its jti.
	Principal string
	TokenID   string
	// SourceAddr is the caller's address; RequestID the request's id.
	SourceAddr string
	RequestID  string
	// Action is what happened, dotted ("keyprovider.register",
	// "kms.Decrypt", "dataplane.encrypt", "tenant.state").
	Action string
	// Target is what it happened to (a key provider's fingerprint, a key
	// ARN, a tenant id).
	Target string
	// Result is "success", "failure" or "denied"; ErrorCode the API's
	// error code of a failure.
	Result    string
	ErrorCode string
	// Details are further facts of the action (a region, an AWS request
	// id, a count, a state change), never secret.
	Details  map[string]string
	PrevHash []byte
	Hash     []byte
}

// Checkpoint is a signed statement that a chain's event Seq has Hash.
type Checkpoint struct {
	ChainID   string
	Seq       int64
	Hash      []byte
	Time      time.Time
	KeyID     string
	Signature []byte
}

// PlatformChain is the chain of events that belong to no tenant.
const PlatformChain = "_platform"
