package api

import (
	"bytes"
	"encoding/json"
)

// MarshalJSON writes the result's own fields, or {"error": {...}}.
func (b BatchItem[T]) MarshalJSON() ([]byte, error) {
	if b.Error != nil {
		return json.Marshal(struct {
			Error *Error `json:"error"`
		}{b.Error})
	}
	return json.Marshal(b.Result)
}

// UnmarshalJSON reads either form written by MarshalJSON.
func (b *BatchItem[T]) UnmarshalJSON(data []byte) error {
	var probe struct {
		Error *Error `json:"error"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return err
	}
	if probe.Error != nil {
		*b = BatchItem[T]{Error: probe.Error}
		return nil
	}
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		*b = BatchItem[T]{}
		return nil
	}
	var r T
	if err := json.Unmarshal(data, &r); err != nil {
		return err
	}
	*b = BatchItem[T]{Result: &r}
	return nil
}
