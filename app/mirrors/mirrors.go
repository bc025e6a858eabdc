package mirrors

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/mirror"
	"annals.im/annals/eventstore"
	streamowner "annals.im/annals/eventstore/owner"
	mirrorsproj "annals.im/annals/projections/mirrors"
)

// defaultCause is the cause of the events of a caller that gave none.
const defaultCause = "s2s"

// Service gives the adapters the mirror streams.
type Service struct {
	owner *streamowner.Owner[mirror.State]
	ids   *event.IDs
	db    *sql.DB // the mirrors read model
}

// New returns the service of the mirror streams in store, whose read
// model is in db.
func New(store eventstore.Store, ids *event.IDs, db *sql.DB) *Service {
	return &Service{owner: streamowner.New(store, mirror.Evolve), ids: ids, db: db}
}

// Get returns the replica of room as folded from its stream.
func (s *Service) Get(ctx context.Context, room string) (mirror.State, error) {
	st, err := s.owner.Get(ctx, mirror.Stream(room))
	if err != nil {
		return st, fmt.Errorf("mirror of %s: %w", room, err)
	}
	return st, nil
}

// Do decides a command (mirror.Apply, mirror.Post) on the replica of room
// and appends its events; it returns the replica after them and the
// events (none for a refusal).
func (s *Service) Do(ctx context.Context, room string, c any) (mirror.State, []event.Envelope, error) {
	cause := event.Cause(ctx, defaultCause)
	return s.owner.Do(ctx, mirror.Stream(room), func(st mirror.State) ([]event.Envelope, error) {
		return mirror.Decide(st, c, s.ids, time.Now(), cause)
	})
}

// History returns the last max messages of room as the mirror keeps
// them: in the master's order, the pending posts last.
func (s *Service) History(ctx context.Context, room string, max int) ([]mirrorsproj.Message, error) {
	return mirrorsproj.History(ctx, s.db, room, max)
}
