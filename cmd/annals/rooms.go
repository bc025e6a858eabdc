package main

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"annals.im/annals/adapters/c2s"
	"annals.im/annals/projections/rooms"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/room"
	"annals.im/annals/eventstore"
	streamowner "annals.im/annals/eventstore/owner"
)

// roomsService gives the c2s adapter the room streams: the one owner of
// "room-<JID>" streams in this process.
type roomsService struct {
	owner  *streamowner.Owner[room.State]
	store  eventstore.Store
	ids    *event.IDs
	db     *sql.DB // the rooms read model
	domain string  // of the MUC service
}

func newRooms(store eventstore.Store, ids *event.IDs, db *sql.DB, domain string) *roomsService {
	return &roomsService{owner: streamowner.New(store, room.Evolve), store: store, ids: ids, db: db, domain: domain}
}

// Public lists the public rooms from the rooms read model, which follows
// the log a moment behind.
func (r *roomsService) Public(ctx context.Context) ([]c2s.RoomItem, error) {
	list, err := rooms.Public(ctx, r.db, r.domain)
	out := make([]c2s.RoomItem, len(list))
	for i, l := range list {
		out[i] = c2s.RoomItem{JID: l.JID, Name: l.Name}
	}
	return out, err
}

func (r *roomsService) Get(ctx context.Context, jid string) (room.State, error) {
	st, err := r.owner.Get(ctx, room.Stream(jid))
	st.JID = jid // also for a room that does not exist (yet)
	return st, err
}

// At folds the room's stream up to and including version, for the log
// follower (c2s.Server.Publish) meeting a room it has not folded yet.
func (r *roomsService) At(ctx context.Context, jid string, version uint64) (room.State, error) {
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

// Do decides the command cmd builds from the room's state (cmd returns an
// error instead to refuse) and appends its events.
func (r *roomsService) Do(ctx context.Context, jid string, cmd func(room.State) any) (room.Outcome, room.State, error) {
	var out room.Outcome
	st, _, err := r.owner.Do(ctx, room.Stream(jid), func(s room.State) ([]event.Envelope, error) {
		s.JID = jid
		c := cmd(s)
		if err, ok := c.(error); ok {
			return nil, err
		}
		var err error
		out, err = room.Decide(s, c, r.ids, time.Now(), "c2s")
		return out.Events, err
	})
	st.JID = jid
	return out, st, err
}

func (r *roomsService) NewID() string { return r.ids.New(time.Now()).String() }
