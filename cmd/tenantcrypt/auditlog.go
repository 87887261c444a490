package main

import (
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/tenantcrypt/tenantcrypt/internal/audit"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/awskms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/kmip"
)

// auditConfig is the audit log's part.
type auditConfig struct {
	keyFile   string
	dataPlane string
	// log holds what the flags set of audit.Config: Retention.
	log audit.Config
}

func (c *auditConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.keyFile, "audit-key-file", "", "Ed25519 keys that sign audit checkpoints (default DATA-DIR/audit-signing-keys.json; created 0600); every replica needs the same file")
	fs.StringVar(&c.dataPlane, "audit-data-plane", "per-minute", "audit data-plane use as counts per minute (per-minute) or one event per request (per-request; requests are refused while the audit log cannot keep up)")
	fs.DurationVar(&c.log.Retention, "audit-retention", 0, "prune audit events older than this, at a signed checkpoint (0: keep every event)")
}

// keyPath is the checkpoint-signing key file.
func (c *auditConfig) keyPath(dataDir string) string {
	if c.keyFile != "" {
		return c.keyFile
	}
	return filepath.Join(dataDir, "audit-signing-keys.json")
}

func (c *auditConfig) validate() error {
	switch c.dataPlane {
	case "per-minute", "per-request":
	default:
		return fmt.Errorf("--audit-data-plane must be per-minute or per-request")
	}
	if c.log.Retention < 0 {
		return fmt.Errorf("--audit-retention must not be negative (0 keeps every event)")
	}
	return nil
}

// openAudit starts the audit log on st with the signing key file.
func openAudit(c auditConfig, dataDir string, st audit.Store, log *slog.Logger) (*audit.Log, *audit.Signer, error) {
	signer, err := audit.LoadOrCreateSigner(c.keyPath(dataDir))
	if err != nil {
		return nil, nil, err
	}
	ac := c.log
	ac.Store, ac.Signer, ac.PerRequest, ac.Logger = st, signer, c.dataPlane == "per-request", log
	l, err := audit.New(ac)
	if err != nil {
		return nil, nil, err
	}
	l.Start()
	return l, signer, nil
}

// auditSink turns what the service's parts report into audit events.
type auditSink struct {
	log *audit.Log
	slg *slog.Logger
}

func (a auditSink) record(e audit.Event) {
	if err := a.log.Record(e); err != nil {
		a.slg.Error("the audit queue is full; an event is lost", "action", e.Action, "tenant", e.TenantID)
	}
}

// kmsCall records a call to AWS KMS: every one, with its key, region,
// result and AWS request id.
func (a auditSink) kmsCall(c awskms.Call) {
	e := audit.Event{TenantID: c.TenantID, Action: "kms." + c.Action, Target: c.KeyARN,
		Details: map[string]string{"region": c.Region}}
	if c.RequestID != "" {
		e.Details["awsRequestId"] = c.RequestID
	}
	if c.Err != nil {
		e.Result, e.ErrorCode = "failure", kms.Outcome(c.Err)
	}
	a.record(e)
}

// kmipCall records a call to a customer's KMIP key manager: every one,
// with its key, the server that answered and the result.
func (a auditSink) kmipCall(c kmip.Call) {
	e := audit.Event{TenantID: c.TenantID, Action: "kmip." + c.Operation, Target: c.Key,
		Details: map[string]string{"endpoint": c.Endpoint}}
	if c.Err != nil {
		e.Result, e.ErrorCode = "failure", kms.Outcome(c.Err)
	}
	a.record(e)
}

// regionEvent records a failover or failback of a region.
func (a auditSink) regionEvent(ev awskms.RegionEvent) {
	action := "kms.failover"
	if ev.Healthy {
		action = "kms.failback"
	}
	e := audit.Event{Time: ev.Time, Action: action, Target: ev.Region,
		Details: map[string]string{"since": ev.Since.UTC().Format("2006-01-02T15:04:05.000000Z")}}
	if ev.Cause != nil {
		e.Details["cause"] = kms.Outcome(ev.Cause)
	}
	a.record(e)
}

// stateChange records a tenant's lifecycle change.
func (a auditSink) stateChange(c keyring.StateChange) {
	a.record(audit.Event{Time: c.At, TenantID: c.TenantID, Action: "tenant.state", Target: c.Provider.String(),
		Details: map[string]string{"from": c.From.String(), "to": c.To.String(), "reason": c.Reason}})
}

// keyRotated records the rotation of a tenant's data key.
func (a auditSink) keyRotated(tenantID, keyID string, provider kms.Ref) {
	a.record(audit.Event{TenantID: tenantID, Action: "datakey.rotate", Target: keyID,
		Details: map[string]string{"provider": provider.String()}})
}
