package audit

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
)

// ToAPI is e's wire form.
func ToAPI(e Event) api.AuditEvent {
	return api.AuditEvent{ChainID: e.ChainID, Seq: e.Seq, Time: e.Time.UTC(), TenantID: e.TenantID, Principal: e.Principal,
		TokenID: e.TokenID, SourceAddr: e.SourceAddr, RequestID: e.RequestID, Action: e.Action, Target: e.Target,
		Result: e.Result, ErrorCode: e.ErrorCode, Details: e.Details,
		PrevHash: hex.EncodeToString(e.PrevHash), Hash: hex.EncodeToString(e.Hash)}
}

// FromAPI reads an event's wire form.
func FromAPI(a api.AuditEvent) (Event, error) {
	prev, err1 := hex.DecodeString(a.PrevHash)
	hash, err2 := hex.DecodeString(a.Hash)
	if err1 != nil || err2 != nil {
		return Event{}, fmt.Errorf("event %d: hashes are not hex", a.Seq)
	}
	details := a.Details
	if len(details) == 0 {
		details = nil
	}
	return Event{ChainID: a.ChainID, Seq: a.Seq, Time: a.Time.UTC(), TenantID: a.TenantID, Principal: a.Principal,
		TokenID: a.TokenID, SourceAddr: a.SourceAddr, RequestID: a.RequestID, Action: a.Action, Target: a.Target,
		Result: a.Result, ErrorCode: a.ErrorCode, Details: details, PrevHash: prev, Hash: hash}, nil
}

// CheckpointToAPI is c's wire form.
func CheckpointToAPI(c Checkpoint) api.AuditCheckpoint {
	return api.AuditCheckpoint{ChainID: c.ChainID, Seq: c.Seq, Hash: hex.EncodeToString(c.Hash), Time: c.Time.UTC(),
		KeyID: c.KeyID, Signature: base64.StdEncoding.EncodeToString(c.Signature)}
}

// CheckpointFromAPI reads a checkpoint's wire form.
func CheckpointFromAPI(a api.AuditCheckpoint) (Checkpoint, error) {
	hash, err1 := hex.DecodeString(a.Hash)
	sig, err2 := base64.StdEncoding.DecodeString(a.Signature)
	if err1 != nil || err2 != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint %d: hash or signature malformed", a.Seq)
	}
	return Checkpoint{ChainID: a.ChainID, Seq: a.Seq, Hash: hash, Time: a.Time.UTC(), KeyID: a.KeyID, Signature: sig}, nil
}

// PublicKeysToAPI is the published keys' wire form.
func PublicKeysToAPI(pks []PublicKey) api.AuditPublicKeys {
	out := api.AuditPublicKeys{Keys: []api.AuditPublicKey{}}
	for _, k := range pks {
		out.Keys = append(out.Keys, api.AuditPublicKey(k))
	}
	return out
}

// KeysFromAPI reads published keys.
func KeysFromAPI(a api.AuditPublicKeys) (Keys, error) {
	pks := make([]PublicKey, 0, len(a.Keys))
	for _, k := range a.Keys {
		pks = append(pks, PublicKey(k))
	}
	return ParseKeys(pks)
}

// ReportToAPI is a verification report's wire form.
func ReportToAPI(r Report) api.AuditVerification {
	out := api.AuditVerification{ChainID: r.ChainID, Valid: r.Valid, Events: r.Events, Checkpoints: r.Checkpoints,
		FirstSeq: r.FirstSeq, LastSeq: r.LastSeq, LastCheckpointSeq: r.LastCheckpointSeq, UnsignedTail: r.UnsignedTail}
	if r.Problem != nil {
		out.Problem = &api.AuditProblem{Seq: r.Problem.Seq, Reason: r.Problem.Reason}
	}
	return out
}

const pageSize = 1000

// Export writes chainID's whole log as JSON Lines: a header, every
// checkpoint, every event, in Seq order.
func Export(ctx context.Context, st Store, chainID string, now time.Time, w io.Writer) error {
	enc := json.NewEncoder(w)
	at := now.UTC()
	if err := enc.Encode(api.AuditExportLine{Type: "chain", ChainID: chainID, ExportedAt: &at}); err != nil {
		return err
	}
	for after := int64(0); ; {
		cs, err := st.Checkpoints(ctx, chainID, after, pageSize)
		if err != nil {
			return err
		}
		for _, c := range cs {
			ac := CheckpointToAPI(c)
			if err := enc.Encode(api.AuditExportLine{Type: "checkpoint", Checkpoint: &ac}); err != nil {
				return err
			}
		}
		if len(cs) < pageSize {
			break
		}
		after = cs[len(cs)-1].Seq
	}
	return eachEvent(ctx, st, chainID, func(e Event) error {
		ae := ToAPI(e)
		return enc.Encode(api.AuditExportLine{Type: "event", Event: &ae})
	})
}

func eachEvent(ctx context.Context, st Store, chainID string, fn func(Event) error) error {
	for f := (Filter{}); ; {
		es, err := st.Events(ctx, chainID, f, pageSize)
		if err != nil {
			return err
		}
		for _, e := range es {
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(es) < pageSize {
			return nil
		}
		f.AfterSeq = es[len(es)-1].Seq
	}
}

// VerifyStored verifies chainID's log as stored, against keys.
func VerifyStored(ctx context.Context, st Store, chainID string, keys Keys) (Report, error) {
	v := NewVerifier(chainID, keys)
	for after := int64(0); ; {
		cs, err := st.Checkpoints(ctx, chainID, after, pageSize)
		if err != nil {
			return Report{}, err
		}
		for _, c := range cs {
			v.Checkpoint(c)
		}
		if len(cs) < pageSize {
			break
		}
		after = cs[len(cs)-1].Seq
	}
	err := eachEvent(ctx, st, chainID, func(e Event) error { v.Event(e); return nil })
	if err != nil {
		return Report{}, err
	}
	return v.Finish(), nil
}

// VerifyExport verifies an export (as Export writes it) against keys, the
// published keys obtained separately: offline, with nothing but the file
// and the keys.
func VerifyExport(r io.Reader, keys Keys) (Report, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var v *Verifier
	for n := 1; sc.Scan(); n++ {
		var line api.AuditExportLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return Report{}, fmt.Errorf("line %d is not an export line: %v", n, err)
		}
		switch {
		case line.Type == "chain" && v == nil && line.ChainID != "":
			v = NewVerifier(line.ChainID, keys)
		case v == nil:
			return Report{}, fmt.Errorf("line %d: the export does not start with its chain header", n)
		case line.Type == "checkpoint" && line.Checkpoint != nil:
			c, err := CheckpointFromAPI(*line.Checkpoint)
			if err != nil {
				return Report{}, fmt.Errorf("line %d: %v", n, err)
			}
			v.Checkpoint(c)
		case line.Type == "event" && line.Event != nil:
			e, err := FromAPI(*line.Event)
			if err != nil {
				return Report{}, fmt.Errorf("line %d: %v", n, err)
			}
			v.Event(e)
		default:
			return Report{}, fmt.Errorf("line %d: unknown line type %q", n, line.Type)
		}
	}
	if err := sc.Err(); err != nil {
		return Report{}, err
	}
	if v == nil {
		return Report{}, fmt.Errorf("the export is empty")
	}
	return v.Finish(), nil
}
