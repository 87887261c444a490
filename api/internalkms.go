package api

import "time"

// InternalKMS is the answer of GET /api/v1/internal-kms and of its actions
// (rotate-root-key, reload-root-keys): the internal KMS's root keys as the
// answering server has loaded them, how many tenant KEKs each seals, and
// that server's background rotation job.
type InternalKMS struct {
	// RootKeySource is "file" (a root key file, which the server can rotate
	// and reload), "environment" (TENANTCRYPT_ROOT_KEYS, which changes
	// only with a restart) or "pkcs11" (key objects in an HSM, rotated by
	// the server and recorded in the database).
	RootKeySource string `json:"rootKeySource"`
	// CurrentRootKeyVersion seals new and rewrapped KEKs.
	CurrentRootKeyVersion uint32 `json:"currentRootKeyVersion"`
	// RootKeyVersions lists the loaded versions and any other that still
	// seals KEKs, in ascending order.
	RootKeyVersions []RootKeyVersion `json:"rootKeyVersions"`
	// Job is the server's running or last background rewrap.
	Job RotationJob `json:"job"`
}

// RootKeyVersion is one root key version of the internal KMS.
type RootKeyVersion struct {
	Version uint32 `json:"version"`
	Current bool   `json:"current"`
	// Loaded is false for a version that seals KEKs but that this server
	// has not loaded: it cannot open those KEKs (add the version back to
	// its root keys).
	Loaded bool `json:"loaded"`
	// SealedKEKs counts the tenant KEKs it seals (all tenants, in the
	// shared database). A version that seals none and is not current can
	// be removed from the root keys.
	SealedKEKs int `json:"sealedKeks"`
}

// RotationJob is the state of a server's background rewrap: one at a time
// per server process.
type RotationJob struct {
	// ID names the run; absent while idle.
	ID string `json:"id,omitempty"`
	// Kind is "rewrap-keks" (every tenant KEK under the current root key
	// version) or "rewrap-cipherkeys" (one tenant's data keys under its
	// newest KEK version); absent while idle.
	Kind string `json:"kind,omitempty"`
	// State is idle (nothing ran since the server started), running,
	// completed or failed.
	State string `json:"state"`
	// Trigger is what started the run: start (the server's start),
	// rotate-root-key, reload-root-keys or rotate-key.
	Trigger string `json:"trigger,omitempty"`
	// TenantID is the tenant of a rewrap-cipherkeys run.
	TenantID string `json:"tenantId,omitempty"`
	// TargetVersion is the root key version (rewrap-keks) or KEK version
	// (rewrap-cipherkeys) the keys move to.
	TargetVersion uint32 `json:"targetVersion,omitempty"`
	// Rewrapped counts the keys moved; Skipped those another writer (another
	// server) changed first; Failed those left as they were because they
	// do not open.
	Rewrapped int64 `json:"rewrapped"`
	Skipped   int64 `json:"skipped"`
	Failed    int64 `json:"failed"`
	// StartedAt and FinishedAt are absent until set.
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// Error says why a failed run stopped.
	Error string `json:"error,omitempty"`
}

// TenantKeyRotation is the answer of POST
// /api/v1/tenants/{id}/actions/rotate-key.
type TenantKeyRotation struct {
	TenantID string `json:"tenantId"`
	// KEKVersion is the tenant's new internal KMS key-encryption key
	// version, which wraps its new data keys.
	KEKVersion uint32 `json:"kekVersion"`
	// Job is the background rewrap of the tenant's data keys under it.
	Job RotationJob `json:"job"`
}
