package rooms

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/room"
	"annals.im/annals/eventstore"
	streamowner "annals.im/annals/eventstore/owner"
	"annals.im/annals/projections"
	roomsproj "annals.im/annals/projections/rooms"
)

// defaultCause is the cause of the events of a caller that gave none:
// the c2s adapter, until it passes each stanza's id.
const defaultCause = "c2s"

// Log is the store the rooms live in. Head, the log's last position, lets
// Of wait for the read model to get there; eventstore/sqlite has it.
type Log interface {
	eventstore.Store
	Head(ctx context.Context) (event.Position, error)
}

// Service gives the adapters the room streams.
type Service struct {
	owner  *streamowner.Owner[room.State]
	store  Log
	ids    *event.IDs
	db     *sql.DB // the rooms read model
	domain string  // of the MUC service
	// wait bounds how long Of waits for the read model to reach the log's
	// head: longer means no process follows the log.
	wait time.Duration
}

// New returns the service of the room streams in store, whose read model
// is in db, for the MUC service on domain ("" when there is none: the CLI
// deleting an account still takes it out of its rooms).
func New(store Log, ids *event.IDs, db *sql.DB, domain string) *Service {
	return &Service{owner: streamowner.New(store, room.Evolve), store: store, ids: ids, db: db, domain: domain, wait: 10 * time.Second}
}

// Public lists the public rooms from the rooms read model, which follows
// the log a moment behind.
func (r *Service) Public(ctx context.Context) ([]room.Listed, error) {
	list, err := roomsproj.Public(ctx, r.db, r.domain)
	if err != nil {
		return nil, err
	}
	out := make([]room.Listed, len(list))
	for i, l := range list {
		out[i] = room.Listed{JID: l.JID, Name: l.Name}
	}
	return out, nil
}

// Get returns the room's state as folded from its stream.
func (r *Service) Get(ctx context.Context, jid string) (room.State, error) {
	st, err := r.owner.Get(ctx, room.Stream(jid))
	st.JID = jid // also for a room that does not exist (yet)
	if err != nil {
		return st, fmt.Errorf("room %s: %w", jid, err)
	}
	return st, nil
}

// At folds the room's stream up to and including version, for the log
// follower (c2s.Server.Publish) meeting a room it has not folded yet.
func (r *Service) At(ctx context.Context, jid string, version uint64) (room.State, error) {
	st := room.State{JID: jid}
	for next := uint64(1); next <= version; {
		evs, err := r.store.ReadStream(ctx, room.Stream(jid), next, int(min(version-next+1, 1024)))
		if err != nil {
			return st, fmt.Errorf("room %s at version %d: %w", jid, version, err)
		}
		if len(evs) == 0 {
			return st, fmt.Errorf("room %s at version %d: the stream ends at %d", jid, version, next-1)
		}
		for _, e := range evs {
			if st, err = room.Evolve(st, e); err != nil {
				return st, fmt.Errorf("room %s at version %d: %w", jid, e.Version, err)
			}
			next = e.Version + 1
		}
	}
	st.JID = jid
	return st, nil
}

// Events returns up to max events of the room's stream after version
// after: what a DMUC3 mirror that missed them asks for again.
func (r *Service) Events(ctx context.Context, jid string, after uint64, max int) ([]event.Envelope, error) {
	evs, err := r.store.ReadStream(ctx, room.Stream(jid), after+1, max)
	if err != nil {
		return nil, fmt.Errorf("room %s after version %d: %w", jid, after, err)
	}
	return evs, nil
}

// Do decides the command cmd builds from the room's state (cmd returns an
// error instead to refuse) and appends its events.
func (r *Service) Do(ctx context.Context, jid string, cmd func(room.State) any) (room.Outcome, room.State, error) {
	var out room.Outcome
	cause := event.Cause(ctx, defaultCause)
	st, _, err := r.owner.Do(ctx, room.Stream(jid), func(s room.State) ([]event.Envelope, error) {
		s.JID = jid
		c := cmd(s)
		if err, ok := c.(error); ok {
			return nil, err
		}
		var err error
		out, err = room.Decide(s, c, r.ids, time.Now(), cause)
		return out.Events, err
	})
	st.JID = jid
	return out, st, err
}

// NewID returns a fresh archive ID for a room message.
func (r *Service) NewID() string { return r.ids.New(time.Now()).String() }

// Forget takes acct out of room (room.Forget), for a deleted account.
func (r *Service) Forget(ctx context.Context, jid, acct string) error {
	_, _, err := r.Do(ctx, jid, func(room.State) any { return room.Forget{Account: acct} })
	return err
}

// SweepRemoteOccupants removes from their rooms the occupants from other
// servers (Leave, cause shutdown): a server that starts has no session of
// theirs, which lived in the process that stopped; their clients join
// again. It returns how many it removed. It reads the rooms read model as
// the caller caught it up: only a serving process takes occupants from
// other servers, so none joined since (it does not wait for the log's
// head, which another process may be appending to while nothing follows
// the log yet).
func (r *Service) SweepRemoteOccupants(ctx context.Context) (int, error) {
	occ, err := roomsproj.RemoteOccupants(ctx, r.db)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, o := range occ {
		_, _, err := r.Do(ctx, o.Room, func(room.State) any { return room.Leave{Account: o.Account, Cause: "shutdown"} })
		switch {
		case err == nil:
			n++
		case errors.Is(err, room.ErrNotOccupant), errors.Is(err, room.ErrNotFound):
		default:
			return n, fmt.Errorf("room %s: %s: %w", o.Room, o.Account, err)
		}
	}
	return n, nil
}

// LocalOccupants lists (room, account) for each account here occupying
// a room, as the rooms read model has it (a moment behind the log).
func (r *Service) LocalOccupants(ctx context.Context) ([][2]string, error) {
	occ, err := roomsproj.LocalOccupants(ctx, r.db)
	out := make([][2]string, len(occ))
	for i, o := range occ {
		out[i] = [2]string{o.Room, o.Account}
	}
	return out, err
}

// Of lists the rooms acct occupies or is affiliated with, from the rooms
// read model once it has applied the log up to its head as of now: a
// room joined a moment ago counts too.
func (r *Service) Of(ctx context.Context, acct string) ([]string, error) {
	if err := r.readModelAt(ctx); err != nil {
		return nil, err
	}
	return roomsproj.Of(ctx, r.db, acct)
}

// readModelAt waits until the rooms read model has applied the log up to
// its head as of now, at most r.wait: the read model is kept by whichever
// process follows the log (serve, or the CLI catching up when none does).
func (r *Service) readModelAt(ctx context.Context) error {
	head, err := r.store.Head(ctx)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(r.wait)
	for {
		at, err := projections.CheckpointOf(ctx, r.db, roomsproj.Name)
		if err != nil {
			return err
		}
		if !at.Less(head) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the %s read model is at %v, behind the log's %v after %v: is a server following the log?", roomsproj.Name, at, head, r.wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
