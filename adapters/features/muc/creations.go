package muc

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// DefaultRoomCreations new rooms per account per DefaultRoomCreationWindow:
// one account made 300 rooms in 1.8 s (issue 10).
const (
	DefaultRoomCreations      = 10
	DefaultRoomCreationWindow = 10 * time.Minute
)

// roomCreationKeys bounds the accounts whose room creations are
// remembered; past it the oldest record goes.
const roomCreationKeys = 1 << 16

// errTooManyRooms: the account created as many rooms as the window allows.
var errTooManyRooms = errors.New("room: too many new rooms")

// roomCreations remembers, per account, when its last rooms were created:
// a sliding window of at most n times per account, at most
// roomCreationKeys accounts.
type roomCreations struct {
	mu     sync.Mutex
	n      int
	window time.Duration
	times  map[string][]time.Time
	now    func() time.Time
}

func newRoomCreations(n int, window time.Duration) *roomCreations {
	return &roomCreations{n: n, window: window, times: make(map[string][]time.Time), now: time.Now}
}

// allow reports whether acct may create a room now; it counts nothing
// (created does, once the room exists).
func (r *roomCreations) allow(acct string) error {
	if r.n < 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.recent(acct)) >= r.n {
		return fmt.Errorf("%w: at most %d in %s; try again later", errTooManyRooms, r.n, r.window)
	}
	return nil
}

// created records that acct created a room.
func (r *roomCreations) created(acct string) {
	if r.n < 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ts := r.recent(acct)
	if len(r.times) >= roomCreationKeys && ts == nil {
		r.sweep()
	}
	r.times[acct] = append(ts, r.now())
}

// recent drops acct's times older than the window and returns the rest;
// the caller holds mu.
func (r *roomCreations) recent(acct string) []time.Time {
	ts := r.times[acct]
	cut := r.now().Add(-r.window)
	i := 0
	for i < len(ts) && !ts[i].After(cut) {
		i++
	}
	if i == len(ts) {
		delete(r.times, acct)
		return nil
	}
	if i > 0 {
		ts = append(ts[:0:0], ts[i:]...)
		r.times[acct] = ts
	}
	return ts
}

// sweep forgets every account whose times are all out of the window and,
// if that frees nothing, the account with the oldest latest creation
// (whose window ends first).
func (r *roomCreations) sweep() {
	cut := r.now().Add(-r.window)
	oldest, at := "", time.Time{}
	for a, ts := range r.times {
		last := ts[len(ts)-1]
		if !last.After(cut) {
			delete(r.times, a)
			continue
		}
		if oldest == "" || last.Before(at) {
			oldest, at = a, last
		}
	}
	if len(r.times) >= roomCreationKeys {
		delete(r.times, oldest)
	}
}
