package event

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
)

// wire is the JSON layout of an envelope: used by frozen samples in
// testdata/events and by `annals audit query --json`. Field order is fixed.
type wire struct {
	ID         string          `json:"id"`
	Stream     string          `json:"stream"`
	Version    uint64          `json:"version"`
	Position   string          `json:"position,omitempty"`
	Type       Type            `json:"type"`
	Schema     int             `json:"schema"`
	OccurredAt string          `json:"occurred_at"`
	Cause      string          `json:"cause"`
	Data       json.RawMessage `json:"data"`
	Hash       string          `json:"hash"`
}

// MarshalJSON encodes e with snake_case fields, the time in RFC 3339 with
// nanoseconds in UTC and the hash in hex.
func (e Envelope) MarshalJSON() ([]byte, error) {
	w := wire{
		ID:         e.ID.String(),
		Stream:     e.Stream,
		Version:    e.Version,
		Type:       e.Type,
		Schema:     e.Schema,
		OccurredAt: e.OccurredAt.UTC().Format(time.RFC3339Nano),
		Cause:      e.Cause,
		Data:       e.Data,
		Hash:       hex.EncodeToString(e.Hash),
	}
	if !e.Position.IsZero() {
		w.Position = e.Position.String()
	}
	if len(w.Data) == 0 {
		w.Data = json.RawMessage("{}")
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (e *Envelope) UnmarshalJSON(b []byte) error {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	id, err := ulid.ParseStrict(w.ID)
	if err != nil {
		return fmt.Errorf("event: id %q: %w", w.ID, err)
	}
	at, err := time.Parse(time.RFC3339Nano, w.OccurredAt)
	if err != nil {
		return fmt.Errorf("event: occurred_at: %w", err)
	}
	// An offset can carry year 0 or 9999 past RFC 3339's range once in
	// UTC, where MarshalJSON could no longer write it readably.
	if y := at.UTC().Year(); y < 0 || y > 9999 {
		return fmt.Errorf("event: occurred_at %q is outside years 0000-9999 in UTC", w.OccurredAt)
	}
	hash, err := hex.DecodeString(w.Hash)
	if err != nil {
		return fmt.Errorf("event: hash: %w", err)
	}
	var pos Position
	if w.Position != "" {
		if pos, err = ParsePosition(w.Position); err != nil {
			return err
		}
	}
	// The hash covers Data as Normalize leaves it, but json.MarshalIndent
	// (the frozen samples) and pretty-printers re-indent it: read it back
	// to that form, and missing data as the {} that MarshalJSON writes.
	data := json.RawMessage("{}")
	if len(w.Data) > 0 {
		if data, err = compactData(w.Data); err != nil {
			return fmt.Errorf("event: data: %w", err)
		}
	}
	*e = Envelope{ID: id, Stream: w.Stream, Version: w.Version, Position: pos, Type: w.Type,
		Schema: w.Schema, OccurredAt: at.UTC(), Cause: w.Cause, Data: data, Hash: hash}
	return nil
}
