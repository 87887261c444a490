package api

import "time"

// AuditEvent is one event of a tenant's audit log. Hashes are hex.
type AuditEvent struct {
	ChainID    string            `json:"chainId"`
	Seq        int64             `json:"seq"`
	Time       time.Time         `json:"time"`
	TenantID   string            `json:"tenantId,omitempty"`
	Principal  string            `json:"principal,omitempty"`
	TokenID    string            `json:"tokenId,omitempty"`
	SourceAddr string            `json:"sourceAddress,omitempty"`
	RequestID  string            `json:"requestId,omitempty"`
	Action     string            `json:"action"`
	Target     string            `json:"target,omitempty"`
	Result     string            `json:"result"`
	ErrorCode  string            `json:"errorCode,omitempty"`
	Details    map[string]string `json:"details,omitempty"`
	PrevHash   string            `json:"prevHash"`
	Hash       string            `json:"hash"`
}

// AuditCheckpoint is a signed statement that event Seq of a chain has
// Hash. Signature is base64 (standard, padded) of an Ed25519 signature.
type AuditCheckpoint struct {
	ChainID   string    `json:"chainId"`
	Seq       int64     `json:"seq"`
	Hash      string    `json:"hash"`
	Time      time.Time `json:"time"`
	KeyID     string    `json:"kid"`
	Signature string    `json:"signature"`
}

// AuditPage is the answer of GET /api/v1/audits.
type AuditPage struct {
	Items []AuditEvent `json:"items"`
	// Next is the cursor of the next page; empty on the last.
	Next string `json:"next,omitempty"`
}

// AuditVerification is the answer of GET /api/v1/audits/actions/verify.
type AuditVerification struct {
	ChainID           string        `json:"chainId"`
	Valid             bool          `json:"valid"`
	Events            int           `json:"events"`
	Checkpoints       int           `json:"checkpoints"`
	FirstSeq          int64         `json:"firstSeq"`
	LastSeq           int64         `json:"lastSeq"`
	LastCheckpointSeq int64         `json:"lastCheckpointSeq"`
	UnsignedTail      int64         `json:"unsignedTail"`
	Problem           *AuditProblem `json:"problem,omitempty"`
}

// AuditProblem names where and why a verification failed.
type AuditProblem struct {
	Seq    int64  `json:"seq"`
	Reason string `json:"reason"`
}

// AuditPublicKey is a published checkpoint-verification key (a JWK).
type AuditPublicKey struct {
	KeyID string `json:"kid"`
	Kty   string `json:"kty"`
	Crv   string `json:"crv"`
	Alg   string `json:"alg"`
	Use   string `json:"use"`
	X     string `json:"x"`
}

// AuditPublicKeys is the answer of GET /api/v1/audits/public-keys.
type AuditPublicKeys struct {
	Keys []AuditPublicKey `json:"keys"`
}

// AuditExportLine is one line of an export (JSON Lines): the header
// ("chain"), then every checkpoint, then every event, in Seq order.
type AuditExportLine struct {
	Type       string           `json:"type"` // "chain", "checkpoint" or "event"
	ChainID    string           `json:"chainId,omitempty"`
	ExportedAt *time.Time       `json:"exportedAt,omitempty"`
	Checkpoint *AuditCheckpoint `json:"checkpoint,omitempty"`
	Event      *AuditEvent      `json:"event,omitempty"`
}
