package mirror

// Taking a room from its master again (annals mirror rebuild ROOM
// --from-master): the CLI appends MirrorReset to the room's stream; the
// running server sees it in the log and catches the room up from the
// first sequence. What it takes again was told to the accounts here
// before, so nobody is told again, and their stays in the room (the
// archive's) are not replayed.

import (
	"context"

	"mellium.im/xmpp/jid"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/mirror"
)

// Publish implements mux.LogFollower: a MirrorReset in the log starts
// the refetch of its room.
func (s *Service) Publish(ctx context.Context, batch []event.Envelope) {
	for _, e := range batch {
		if e.Type != mirror.TypeReset {
			continue
		}
		r, err := jid.Parse(mirror.RoomOf(e.Stream))
		if err != nil {
			continue
		}
		room := r.String()
		s.mu.Lock()
		// Up to the last sequence seen, it was told: quiet.
		s.quietTo[room] = max(s.quietTo[room], s.seen[room])
		s.mu.Unlock()
		s.cfg.Log.Info("mirror: taking a room from its master again", "room", room)
		s.resync(s.serverCtx(), r, false)
	}
}

// refetching reports whether sequence seq of room is one a refetch takes
// again (told before).
func (s *Service) refetching(room string, seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return seq <= s.quietTo[room]
}
