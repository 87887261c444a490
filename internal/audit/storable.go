package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// CheckStorable refuses an event that would not read back as sealed, or
// not alike from every store: one without a chain (Chains could not list
// it), or with a string that is not valid UTF-8, or holds a NUL outside
// Details. Stores call it before appending.
func CheckStorable(e Event) error {
	if e.ChainID == "" {
		return errors.New("audit event without a chain id")
	}
	for _, f := range []struct{ name, value string }{
		{"chain id", e.ChainID}, {"tenant id", e.TenantID}, {"principal", e.Principal}, {"token id", e.TokenID},
		{"source address", e.SourceAddr}, {"request id", e.RequestID}, {"action", e.Action}, {"target", e.Target},
		{"result", e.Result}, {"error code", e.ErrorCode},
	} {
		if !storableText(f.value) {
			return fmt.Errorf("audit event of chain %q: %s is not valid UTF-8 without NUL", e.ChainID, f.name)
		}
	}
	// Details are JSON, which escapes a NUL but replaces invalid UTF-8.
	for k, v := range e.Details {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("audit event of chain %q: a detail is not valid UTF-8", e.ChainID)
		}
	}
	return nil
}

// CheckStorableCheckpoint is CheckStorable for a checkpoint.
func CheckStorableCheckpoint(c Checkpoint) error {
	switch {
	case c.ChainID == "":
		return errors.New("audit checkpoint without a chain id")
	case !storableText(c.ChainID):
		return errors.New("audit checkpoint: chain id is not valid UTF-8 without NUL")
	case !storableText(c.KeyID):
		return fmt.Errorf("audit checkpoint of chain %q: key id is not valid UTF-8 without NUL", c.ChainID)
	}
	return nil
}

// storableText reports whether s reads back unchanged from every store:
// text columns refuse invalid UTF-8 and NUL, and JSON replaces invalid
// UTF-8.
func storableText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// EncodeDetails is the stored form of an event's details: a JSON object,
// empty for nil, never null.
func EncodeDetails(d map[string]string) ([]byte, error) {
	if d == nil {
		d = map[string]string{}
	}
	return json.Marshal(d)
}

// DecodeDetails reads stored details, an empty object back as nil, so that
// "no details" has one form whatever the event was appended with.
func DecodeDetails(b []byte) (map[string]string, error) {
	var d map[string]string
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, err
	}
	if len(d) == 0 {
		return nil, nil
	}
	return d, nil
}

// Link makes e the event after head: it sets Seq and PrevHash, Time to UTC
// at microsecond precision (as stored) and empty Details to nil (as read
// back), so that the hash verifies against what the store returns, and
// calls seal. Stores call it inside the transaction that holds the head.
// Errors: a seal that set no Hash.
func Link(e Event, head Head, seal func(*Event)) (Event, error) {
	e.Seq = head.Seq + 1
	e.PrevHash = bytes.Clone(head.Hash)
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	if len(e.Details) == 0 {
		e.Details = nil
	}
	e.Hash = nil
	seal(&e)
	if len(e.Hash) == 0 {
		return Event{}, fmt.Errorf("audit event %d of chain %q: seal set no hash", e.Seq, e.ChainID)
	}
	return e, nil
}
