package muc

// Delivery from the log: the room events any process appended, as this
// process's sessions see them.

import (
	"context"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/room"
)

// Publish tells this server's sessions what the committed events of batch
// did: each room event reaches the sessions attached to the room (see
// attach.go), whichever process appended it: this one, the CLI, or
// another node. Commands never deliver their own events; they only answer
// the session that sent them.
//
// Publish is called by one goroutine, with the log's batches in order
// (the store's subscription from the position the server started at).
func (s *Service) Publish(ctx context.Context, batch []event.Envelope) {
	for _, e := range batch {
		if r := room.JIDOf(e.Stream); r != "" {
			s.publishRoomEvent(ctx, r, e)
		}
	}
}

// roomView is a room as the follower has folded it.
type roomView struct {
	st      room.State
	version uint64 // of the last event folded, known types or not
}

// roomViews are the rooms the follower keeps folded; only Publish's
// goroutine touches them.
type roomViews map[string]roomView

// maxRoomViews bounds the rooms kept folded; past it, half are dropped and
// folded again from the log when an attached session needs them.
const maxRoomViews = 1 << 16

func (s *Service) publishRoomEvent(ctx context.Context, r string, e event.Envelope) {
	v, ok := s.views[r]
	if !ok || v.version+1 != e.Version {
		// The follower keeps a room folded only while someone here is
		// attached to it: a room nobody here is in costs nothing.
		delete(s.views, r)
		if !s.muc.occupied(r) {
			return
		}
		st, err := s.cfg.Rooms.At(ctx, r, e.Version-1)
		if err != nil {
			s.cfg.Log.Error("room events not delivered: the room cannot be read", "room", r, "version", e.Version, "err", err)
			return
		}
		v = roomView{st: st, version: e.Version - 1}
	}
	after, err := room.Evolve(v.st, e)
	if err != nil {
		s.cfg.Log.Error("room event not delivered: it does not fold", "room", r, "version", e.Version, "type", e.Type, "err", err)
		return
	}
	after.JID = r
	if len(s.views) >= maxRoomViews {
		for k := range s.views {
			if len(s.views) < maxRoomViews/2 {
				break
			}
			delete(s.views, k)
		}
	}
	s.views[r] = roomView{st: after, version: e.Version}
	s.publishRoom(v.st, after, e)
}
