package eventstore

import (
	"context"
	"errors"

	"annals.im/annals/domain/event"
)

// Expected versions with a special meaning. Any other value v means "the
// stream's last event has version v"; 0 means the stream must not exist yet.
const (
	NoStream int64 = 0
	Any      int64 = -1
)

// Errors every store returns for the same conditions.
var (
	// ErrConflict: the expected version did not match the stream's head.
	ErrConflict = errors.New("eventstore: wrong expected version")
	// ErrDuplicateID: an event ID is already stored, but not as the same
	// append (another stream, or other events around it).
	ErrDuplicateID = errors.New("eventstore: event id already used elsewhere")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("eventstore: closed")
)

// Store is an append-only log of events grouped into streams.
type Store interface {
	// Append adds evs to the end of stream if its head is at expected, and
	// returns them as stored (Stream, Version, Position and Hash set).
	// Each proposed event needs ID, Type, Schema and OccurredAt.
	Append(ctx context.Context, stream string, expected int64, evs ...event.Envelope) ([]event.Envelope, error)

	// ReadStream returns up to max events of stream with Version >= from.
	ReadStream(ctx context.Context, stream string, from uint64, max int) ([]event.Envelope, error)

	// ReadAll returns up to max events of the whole log after position
	// after (the zero Position reads from the start).
	ReadAll(ctx context.Context, after event.Position, max int) ([]event.Envelope, error)

	// Subscribe follows the log after position after: first the events
	// already stored, then each new one as it commits.
	Subscribe(ctx context.Context, after event.Position) (Subscription, error)

	Close() error
}

// Subscription is a live tail of the log.
type Subscription interface {
	// Next blocks until at least one event after the last one returned is
	// committed, and returns a batch of them in log order.
	Next(ctx context.Context) ([]event.Envelope, error)
	Close() error
}

// HeadRecorder is implemented by stores that keep each stream's head
// (version and hash) apart from the events, so that Verify can tell a
// truncated stream from a short one.
type HeadRecorder interface {
	// RecordedHeads returns the recorded heads and the position up to which
	// they are complete: every stream with an event at or before it has a
	// head at least that recent. Heads may be newer than that position.
	RecordedHeads(ctx context.Context) (heads []Head, complete event.Position, err error)
}

// Head is the last event of a stream.
type Head struct {
	Stream   string
	Version  uint64
	Hash     []byte
	Position event.Position
}

// LogVerifier is implemented by stores that also chain the whole log in
// position order, which catches events of different streams swapped in the
// log: per-stream chains alone cannot see that.
type LogVerifier interface {
	// VerifyLog returns a *BrokenError naming the first event whose place
	// in the log does not verify.
	VerifyLog(ctx context.Context) error
}
