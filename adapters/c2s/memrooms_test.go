package c2s

import (
	"context"
	"sync"
	"testing"
	"time"

	"annals.im/annals/adapters/features/muc"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/room"
)

// memRooms keeps room states and their events in memory, deciding with
// the real rules, and feeds its log to the server's Publish as a store's
// subscription would: the persistence of rooms is tested elsewhere
// (eventstore/owner, cmd).
type memRooms struct {
	mu      sync.Mutex
	rooms   map[string]room.State
	events  map[string][]event.Envelope // room -> its stream
	log     []event.Envelope            // every room's events, in order
	changed chan struct{}               // closed and replaced at each append
	ids     *event.IDs
	service *muc.Service // the room service using them
}

func newMemRooms() *memRooms {
	return &memRooms{rooms: map[string]room.State{}, events: map[string][]event.Envelope{},
		changed: make(chan struct{}), ids: event.NewIDs()}
}

func (m *memRooms) Get(_ context.Context, r string) (room.State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.rooms[r]
	st.JID = r
	return st, nil
}

func (m *memRooms) At(_ context.Context, r string, version uint64) (room.State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := room.State{JID: r}
	for _, e := range m.events[r][:version] {
		var err error
		if st, err = room.Evolve(st, e); err != nil {
			return st, err
		}
	}
	return st, nil
}

func (m *memRooms) Events(_ context.Context, r string, after uint64, max int) ([]event.Envelope, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	evs := m.events[r][min(after, uint64(len(m.events[r]))):]
	return append([]event.Envelope(nil), evs[:min(max, len(evs))]...), nil
}

func (m *memRooms) Do(_ context.Context, r string, cmd func(room.State) any) (room.Outcome, room.State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.rooms[r]
	st.JID = r
	c := cmd(st)
	if err, ok := c.(error); ok {
		return room.Outcome{}, st, err
	}
	out, err := room.Decide(st, c, m.ids, time.Now(), "test")
	if err != nil {
		return out, st, err
	}
	st, err = m.appendLocked(r, out.Events)
	return out, st, err
}

// appendLocked stores evs at the end of room r's stream, as Do does and
// as another process would.
func (m *memRooms) appendLocked(r string, evs []event.Envelope) (room.State, error) {
	st := m.rooms[r]
	st.JID = r
	for i := range evs {
		evs[i].Stream, evs[i].Version = room.Stream(r), uint64(len(m.events[r])+1)
		var err error
		if st, err = room.Evolve(st, evs[i]); err != nil {
			return st, err
		}
		m.events[r] = append(m.events[r], evs[i])
		m.log = append(m.log, evs[i])
	}
	m.rooms[r] = st
	close(m.changed)
	m.changed = make(chan struct{})
	return st, nil
}

// follow hands the log to srv.Publish from one goroutine, in order, until
// the test ends.
func (m *memRooms) follow(t *testing.T, srv *Server) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		next := 0
		for {
			m.mu.Lock()
			batch, changed := m.log[next:], m.changed
			next = len(m.log)
			m.mu.Unlock()
			if len(batch) > 0 {
				srv.Publish(ctx, batch)
				continue
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func (m *memRooms) NewID() string                                 { return m.ids.New(time.Now()).String() }
func (m *memRooms) Public(context.Context) ([]room.Listed, error) { return nil, nil }
