package kurrentdb

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/oklog/ulid/v2"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// metaLayout marks the metadata of every event this store writes; an event
// without it was not written by Annals, and reading it is an error rather
// than a guess.
const metaLayout = "1"

// meta is the KurrentDB user metadata of an event: the envelope fields that
// KurrentDB has no place for. Every value is a string, so the same bytes are
// also valid for the client's MultiStreamAppend, which takes only
// map[string]string metadata.
type meta struct {
	Annals     string `json:"annals"`      // metaLayout
	Schema     string `json:"schema"`      // decimal
	OccurredAt string `json:"occurred_at"` // RFC 3339, nanoseconds, UTC
	Cause      string `json:"cause,omitempty"`
	Hash       string `json:"hash"` // hex SHA-256, event.Chain
}

// toUUID is the KurrentDB event ID of a ULID: the same 16 bytes. The client
// sends it as two int64 halves and reads it back the same way, so the bytes
// survive the trip unchanged (the UUID version bits are not checked).
func toUUID(id ulid.ULID) uuid.UUID { return uuid.UUID(id) }

// toULID is toUUID backwards.
func toULID(id uuid.UUID) ulid.ULID { return ulid.ULID(id) }

// toPosition is the Annals position of a $all position.
func toPosition(p kurrentdb.Position) event.Position {
	return event.Position{Commit: p.Commit, Prepare: p.Prepare}
}

// fromPosition is the $all position to read or subscribe after p: Start for
// the zero Position, which is "before the first event".
func fromPosition(p event.Position) kurrentdb.AllPosition {
	if p.IsZero() {
		return kurrentdb.Start{}
	}
	return kurrentdb.Position{Commit: p.Commit, Prepare: p.Prepare}
}

// streamState is the KurrentDB expected state of an Annals expected version:
// versions count from 1 and revisions from 0, so a stream whose head is
// version v is at revision v-1, and version 0 (eventstore.NoStream) is a
// stream that does not exist. eventstore.Any is KurrentDB's Any.
func streamState(expected int64) (kurrentdb.StreamState, error) {
	switch {
	case expected == eventstore.Any:
		return kurrentdb.Any{}, nil
	case expected == eventstore.NoStream:
		return kurrentdb.NoStream{}, nil
	case expected > 0:
		return kurrentdb.Revision(uint64(expected - 1)), nil
	}
	return nil, fmt.Errorf("%w: expected version %d", event.ErrInvalid, expected)
}

// encodeMeta is the metadata of a stored envelope (Hash already set).
func encodeMeta(e event.Envelope) ([]byte, error) {
	return json.Marshal(meta{
		Annals:     metaLayout,
		Schema:     strconv.Itoa(e.Schema),
		OccurredAt: e.OccurredAt.UTC().Format(time.RFC3339Nano),
		Cause:      e.Cause,
		Hash:       hex.EncodeToString(e.Hash),
	})
}

// toEventData is what Append sends for a stored envelope.
func toEventData(e event.Envelope) (kurrentdb.EventData, error) {
	m, err := encodeMeta(e)
	if err != nil {
		return kurrentdb.EventData{}, err
	}
	return kurrentdb.EventData{
		EventID:     toUUID(e.ID),
		EventType:   string(e.Type),
		ContentType: kurrentdb.ContentTypeJson,
		Data:        e.Data,
		Metadata:    m,
	}, nil
}

// toEnvelope reads back an event Append wrote. Version is the revision plus
// one; Position is the event's own $all position.
func toEnvelope(r *kurrentdb.RecordedEvent) (event.Envelope, error) {
	bad := func(why string) error {
		return fmt.Errorf("kurrentdb: %s revision %d (%s) is not an Annals event: %s", r.StreamID, r.EventNumber, r.EventType, why)
	}
	var m meta
	if err := json.Unmarshal(r.UserMetadata, &m); err != nil {
		return event.Envelope{}, bad("metadata: " + err.Error())
	}
	if m.Annals != metaLayout {
		return event.Envelope{}, bad(fmt.Sprintf("metadata layout %q, want %q", m.Annals, metaLayout))
	}
	schema, err := strconv.Atoi(m.Schema)
	if err != nil {
		return event.Envelope{}, bad("schema: " + err.Error())
	}
	at, err := time.Parse(time.RFC3339Nano, m.OccurredAt)
	if err != nil {
		return event.Envelope{}, bad("occurred_at: " + err.Error())
	}
	hash, err := hex.DecodeString(m.Hash)
	if err != nil {
		return event.Envelope{}, bad("hash: " + err.Error())
	}
	return event.Envelope{
		ID:         toULID(r.EventID),
		Stream:     r.StreamID,
		Version:    r.EventNumber + 1,
		Position:   toPosition(r.Position),
		Type:       event.Type(r.EventType),
		Schema:     schema,
		OccurredAt: at.UTC(),
		Cause:      m.Cause,
		Data:       json.RawMessage(r.Data),
		Hash:       hash,
	}, nil
}

// claimPrefix starts the streams that reserve event IDs (see doc.go).
const claimPrefix = "annals-id-"

func claimStream(id ulid.ULID) string { return claimPrefix + id.String() }

// claimType is the event type of a claim; its data names the stream.
const claimType = "AnnalsEventIDClaimed"

type claim struct {
	Stream string `json:"stream"`
}

// skipped reports whether an event read from $all is not part of the Annals
// log: KurrentDB's own events (types and streams starting with "$", which
// includes link events, "$>") and the ID claims.
func skipped(r *kurrentdb.RecordedEvent) bool {
	return strings.HasPrefix(r.EventType, "$") || strings.HasPrefix(r.StreamID, "$") ||
		strings.HasPrefix(r.StreamID, claimPrefix)
}

// validStream adds KurrentDB's reserved names to event.ValidStream: a stream
// starting with "$" is a system stream, and claimPrefix is this store's.
func validStream(s string) error {
	if err := event.ValidStream(s); err != nil {
		return err
	}
	if strings.HasPrefix(s, "$") || strings.HasPrefix(s, claimPrefix) {
		return fmt.Errorf("%w: stream name %q is reserved on KurrentDB", event.ErrInvalid, s)
	}
	return nil
}
