package c2s

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Bounds on what one session or one account makes the server hold or
// store (issue 10 item 7). Each is a serve flag (cmd/annals/traffic.go);
// docs/security.md says why each default.
const (
	// DefaultOutQueueBytes bounds the bytes waiting for a client that reads
	// slowly, besides the OutQueue stanzas: 1,024 stanzas of 256 KiB were
	// 256 MiB. Four full MAM pages.
	DefaultOutQueueBytes = 8 << 20
	// DefaultMAMPageBytes bounds the stanzas of one MAM page (and of a
	// room's join history): a page of 250 stanzas of 256 KiB was 62 MiB,
	// built in memory. The page stops early, marked incomplete, and RSM
	// paging goes on from its last ID.
	DefaultMAMPageBytes = 2 << 20
	// DefaultRoomCreations new rooms per account per
	// DefaultRoomCreationWindow: one account made 300 rooms in 1.8 s.
	DefaultRoomCreations      = 10
	DefaultRoomCreationWindow = 10 * time.Minute
)

// maxHeldBytes bounds the bytes held for an inactive client (XEP-0352)
// besides maxHeld stanzas; past it the held stanzas are sent.
const maxHeldBytes = 1 << 20

// roomCreationKeys bounds the accounts whose room creations are
// remembered; past it the oldest record goes.
const roomCreationKeys = 1 << 16

func (cfg *Config) trafficDefaults() {
	cfg.MaxUnacked = cmp.Or(cfg.MaxUnacked, DefaultMaxUnacked)
	cfg.MaxUnackedBytes = cmp.Or(cfg.MaxUnackedBytes, DefaultMaxUnackedBytes)
	cfg.OutQueueBytes = cmp.Or(cfg.OutQueueBytes, DefaultOutQueueBytes)
	cfg.MAMPageBytes = cmp.Or(cfg.MAMPageBytes, DefaultMAMPageBytes)
	cfg.RoomCreations = cmp.Or(cfg.RoomCreations, DefaultRoomCreations)
	cfg.RoomCreationWindow = cmp.Or(cfg.RoomCreationWindow, DefaultRoomCreationWindow)
}

// outRoom reports whether n more bytes fit in the outbound queue. One
// stanza always fits in an empty queue, so that a bound below the largest
// stanza (or MAM page, written as one) only slows nobody down; the caller
// holds wmu.
func (c *conn) outRoom(n int) bool {
	queued := c.outBytes.Load()
	return queued == 0 || queued+int64(n) <= int64(c.srv.cfg.OutQueueBytes)
}

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

// waitForRoom waits until a stanza of n bytes can be queued for c with
// room to spare: the outbound queue at most half full in stanzas and in
// bytes, and with stream management, half the unacknowledged bounds. It is
// for the server's own bulk sends (the offline backlog), which must wait
// for a client to read rather than get it dropped as one that does not.
// False: the session ended or ctx did first.
func (c *conn) waitForRoom(ctx context.Context, n int) bool {
	for {
		c.wmu.Lock()
		closed := c.closed
		room := c.out == nil || len(c.out) < OutQueue/2 && c.outBytes.Load()+int64(n) <= int64(c.srv.cfg.OutQueueBytes/2)
		if c.sm.enabled {
			maxItems, maxBytes := cmp.Or(c.sm.maxItems, DefaultMaxUnacked), cmp.Or(c.sm.maxBytes, DefaultMaxUnackedBytes)
			room = room && len(c.sm.unacked) < maxItems/2 && c.sm.bytes+n <= maxBytes/2
		}
		c.wmu.Unlock()
		switch {
		case closed:
			return false
		case room:
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-c.gone:
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
}
