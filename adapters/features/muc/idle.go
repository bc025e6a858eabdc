package muc

// Accounts that stay in rooms with no client (--muc-idle-leave): an
// account occupies a room whether its clients are attached or not, which
// is the point of account-based rooms, but a one-shot client (a script
// that joins, posts and disconnects) would leave its account in the room
// for ever, shown as xa. Past the limit with no client attached, the
// account leaves, as an event caused by the server.

import (
	"context"
	"errors"
	"sync"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/room"
)

// Occupancies lists (room, account) for each account here in a room.
type Occupancies interface {
	LocalOccupants(ctx context.Context) ([][2]string, error)
}

// DefaultIdleLeave is --muc-idle-leave's default: long enough that a user
// away for weeks still finds its rooms, short enough that what a script
// left does not pile up for ever.
const DefaultIdleLeave = 30 * 24 * time.Hour

// idleSince is when each account here was last seen with no client
// attached to each room, as this process saw it (a restart starts the
// count again).
type idleSince struct {
	mu    sync.Mutex
	since map[[2]string]time.Time
}

// runIdle takes the accounts out of rooms they have been idle in for
// IdleLeave, checking every tenth of it (at least every second, at most
// every hour), until ctx ends.
func (s *Service) runIdle(ctx context.Context) {
	every := min(max(s.cfg.IdleLeave/10, time.Second), time.Hour)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			s.sweepIdle(ctx, now)
		}
	}
}

// sweepIdle notes which accounts have no client attached to their rooms
// and takes out those idle for IdleLeave.
func (s *Service) sweepIdle(ctx context.Context, now time.Time) {
	occ, err := s.cfg.Occupancies.LocalOccupants(ctx)
	if err != nil {
		s.cfg.Log.Error("idle occupants: listing them", "err", err)
		return
	}
	var gone [][2]string
	s.idle.mu.Lock()
	seen := make(map[[2]string]time.Time, len(occ))
	for _, o := range occ {
		if _, attached := s.attachedShow(o[0], o[1]); attached {
			continue
		}
		since, ok := s.idle.since[o]
		if !ok {
			since = now
		}
		seen[o] = since
		if now.Sub(since) >= s.cfg.IdleLeave {
			gone = append(gone, o)
		}
	}
	s.idle.since = seen // forgets what left, attached or is gone
	s.idle.mu.Unlock()
	for _, o := range gone {
		ctx := event.WithCause(ctx, "server:muc-idle-leave")
		_, _, _, err := s.roomDo(ctx, o[0], func(room.State) any {
			return room.Leave{Account: o[1], Cause: "idle", Status: "no client of this account came for " + s.cfg.IdleLeave.String()}
		})
		if err != nil && !errors.Is(err, room.ErrNotOccupant) && !errors.Is(err, room.ErrNotFound) {
			s.cfg.Log.Error("idle occupants: taking one out", "room", o[0], "account", o[1], "err", err)
		}
	}
}
