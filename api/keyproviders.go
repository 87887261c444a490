package api

import "encoding/json"

// DefaultProviderARN is the "arn" of every tenant's default key provider,
// the internal KMS.
const DefaultProviderARN = "#QLIK_MANAGED_KEY_PROVIDER#"

// NeverTime is how the key-provider API writes a time that never was.
const NeverTime = "0001-01-01T00:00:00Z"

// KeyProvider is the key-provider API's KeyProvider object (Qlik Cloud
// compatible).
type KeyProvider struct {
	ARN                  string          `json:"arn"`
	Name                 string          `json:"name"`
	Description          string          `json:"description"`
	KeyProvider          string          `json:"keyprovider"` // "AWS-KMS", or "Qlik" for the default
	Current              bool            `json:"current,omitempty"`
	TenantID             string          `json:"tenantId"`
	CreatedAt            string          `json:"createdAt"` // RFC 3339, or "Qlik managed"
	ARNFingerPrint       string          `json:"arnFingerPrint"`
	MultiRegion          bool            `json:"multiRegion"`
	ReplicaKeys          []ReplicaKey    `json:"replicaKeys"`
	DRCompliant          bool            `json:"drCompliant"`
	ComplianceError      ComplianceError `json:"complianceError"`
	PromotedToCurrentAt  string          `json:"promotedToCurrentAt"`
	DemotedFromCurrentAt string          `json:"demotedFromCurrentAt"`
	// Settings are the provider kind's own settings, shown as members of
	// their own (a KMIP provider's "kmip"); never a secret.
	Settings map[string]json.RawMessage `json:"-"`
	// KMIP is a KMIP provider's "kmip" member as clients read it (without
	// the client key, which is never returned); the server writes it
	// through Settings.
	KMIP *KMIPSettings `json:"kmip,omitempty"`
}

// MarshalJSON writes the provider with its kind's Settings as members.
func (p KeyProvider) MarshalJSON() ([]byte, error) {
	type plain KeyProvider
	b, err := json.Marshal(plain(p))
	if err != nil || len(p.Settings) == 0 {
		return b, err
	}
	members := make(map[string]json.RawMessage, len(p.Settings))
	for k, v := range p.Settings {
		members[k] = v
	}
	extra, err := json.Marshal(members)
	if err != nil {
		return nil, err
	}
	// Both are JSON objects: join {…} and {…} into one.
	return append(append(b[:len(b)-1], ','), extra[1:]...), nil
}

// ReplicaKey is a multi-region key's replica.
type ReplicaKey struct {
	ARN    string `json:"arn"`
	Region string `json:"region"`
}

// ComplianceError says why a key is not DR compliant (empty strings when
// it is).
type ComplianceError struct {
	Code    string `json:"code"`
	Region  string `json:"region"`
	Message string `json:"message"`
}

// RegisterKeyProviderRequest is the body of POST
// /api/v1/encryption/keyproviders. Older clients spell the type field
// keyProvider; both are accepted.
type RegisterKeyProviderRequest struct {
	ARN            string `json:"arn"`
	Name           string `json:"name"`
	Description    string `json:"description,omitempty"`
	KeyProvider    string `json:"keyprovider,omitempty"`
	KeyProviderOld string `json:"keyProvider,omitempty"`
	// KMIP is a KMIP key's settings (KMIPSettings), for "keyprovider":
	// "KMIP"; kept raw for the KMIP kind to read.
	KMIP json.RawMessage `json:"kmip,omitempty"`
}

// KMIPSettings is the "kmip" member of a KMIP key provider: in a
// registration, everything; in a KeyProvider answer, everything but
// ClientKey, which is never returned.
type KMIPSettings struct {
	// ServerCA is the PEM of the CA(s) that issued the KMIP servers'
	// certificates.
	ServerCA string `json:"serverCA"`
	// ClientCertificate is the PEM client certificate the customer issued
	// for this tenant.
	ClientCertificate string `json:"clientCertificate"`
	// ClientKey is the PEM private key of ClientCertificate.
	ClientKey string `json:"clientKey,omitempty"`
	// Endpoints are the other servers of the key's cluster, "HOST:PORT".
	Endpoints []string `json:"endpoints,omitempty"`
}

// KindSettings returns the request's kind-specific members by name (a
// KMIP registration's "kmip"), for the key-provider service to give to the
// kind. A kind with settings adds its member to the request and here.
func (r RegisterKeyProviderRequest) KindSettings() map[string]json.RawMessage {
	if r.KMIP == nil {
		return nil
	}
	return map[string]json.RawMessage{"kmip": r.KMIP}
}

// PatchOperation is one element of a PATCH body (a JSON Patch array; only
// "replace" of "/name" and "/description").
type PatchOperation struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// Migration is the key-provider API's Migration object.
type Migration struct {
	ID                     string  `json:"id"`
	State                  string  `json:"state"` // New, InProgress, Completed
	Progress               float64 `json:"progress"`
	TenantID               string  `json:"tenantId"`
	InitiatedAt            string  `json:"initiatedAt"`
	CompletedAt            string  `json:"completedAt"`
	MigratingFrom          string  `json:"migratingFrom"`
	MigratingTo            string  `json:"migratingTo"`
	MigratingToPrefix      string  `json:"migratingToPrefix"`
	MigratingToFingerprint string  `json:"migratingToFingerprint"`
	Error                  string  `json:"error,omitempty"`
}

// Message is a plain answer such as reset's "already on the default".
type Message struct {
	Message string `json:"message"`
}
