package muc

import (
	"sync"

	"annals.im/annals/adapters/mux"
)

// Which sessions are attached to which rooms. Room events reach a session
// from the log (follow.go), never from the command that caused them, so
// attaching is a small protocol with the log follower:
//
//  1. A joining session attaches before its join is appended, as joining:
//     from then on the follower cannot pass an event of the room without
//     seeing it, and keeps the stanzas meant for it in pending.
//  2. The join is appended; its answer (the occupants, the session's own
//     presence, history, subject: XEP-0045 §7.2.3) goes out.
//  3. ready(version of the room the answer showed) sends what is pending
//     and newer than that version, in log order, and the session is live:
//     later events are delivered to it as the follower meets them, and
//     those the answer showed are not, however late the follower is.
//
// So the session sees each event once, after its join's answer, in log
// order, whichever process appended it.

// attachments records the sessions attached to rooms.
type attachments struct {
	mu    sync.Mutex
	rooms map[string]map[string]map[mux.Session]*attachment // room -> account -> session
	// changed, when set, hears of each (room, account) whose sessions
	// here attached, changed show or detached, outside the lock: the
	// other nodes of a cluster are told (Service.tellElsewhere).
	changed func(r, acct string)
}

// notify calls changed for each (room, account) touched.
func (a *attachments) notify(touched [][2]string) {
	if a.changed == nil {
		return
	}
	for _, t := range touched {
		a.changed(t[0], t[1])
	}
}

// attachment is one session's attachment to a room.
type attachment struct {
	show    string // the session's show in the room (XEP-0045 presence)
	joining bool   // between attach and ready: deliveries wait in pending
	since   uint64 // the room's version its join's answer showed (set by ready)
	// goneAt: the version of an exit of the account that came while this
	// session was joining (0: none). ready still sends what waited (the
	// exit among it) and forgets the session, unless its join came after
	// the exit.
	goneAt  uint64
	pending []pendingStanza
	// overflow: more than maxPending waited; the join's answer took too
	// long for the room's traffic, and the session cannot be told the rest
	// in order.
	overflow bool
}

type pendingStanza struct {
	version uint64 // of the room event it tells
	stanza  string
	urgent  bool
}

// maxPending bounds the stanzas a joining session holds back: a join's
// answer takes milliseconds, while a busy room says tens per second.
const maxPending = 1024

// attach attaches c to room r for account acct as joining (see above);
// an attached session only changes its show.
func (a *attachments) attach(r, acct string, c mux.Session, show string) {
	defer a.notify([][2]string{{r, acct}})
	a.mu.Lock()
	defer a.mu.Unlock()
	if at, ok := a.rooms[r][acct][c]; ok {
		at.show = show
		return
	}
	if a.rooms == nil {
		a.rooms = make(map[string]map[string]map[mux.Session]*attachment)
	}
	if a.rooms[r] == nil {
		a.rooms[r] = make(map[string]map[mux.Session]*attachment)
	}
	if a.rooms[r][acct] == nil {
		a.rooms[r][acct] = make(map[mux.Session]*attachment)
	}
	a.rooms[r][acct][c] = &attachment{show: show, joining: true}
}

// ready ends c's join in r: what waited and is newer than version (the
// room as its join's answer showed it) is delivered, and c is live. It
// reports false when too much waited: the caller ends the session.
func (a *attachments) ready(r, acct string, c mux.Session, version uint64) bool {
	defer a.notify([][2]string{{r, acct}})
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.rooms[r][acct][c]
	if !ok || !at.joining {
		return true
	}
	if at.overflow {
		a.removeLocked(r, acct, c)
		return false
	}
	for _, p := range at.pending {
		if p.version > version {
			c.Deliver(p.stanza, p.urgent)
		}
	}
	at.joining, at.pending, at.since = false, nil, version
	if at.goneAt > version {
		a.removeLocked(r, acct, c)
	}
	at.goneAt = 0
	return true
}

// cancel detaches c from r after a join that failed.
func (a *attachments) cancel(r, acct string, c mux.Session) {
	defer a.notify([][2]string{{r, acct}})
	a.mu.Lock()
	defer a.mu.Unlock()
	if at, ok := a.rooms[r][acct][c]; ok && at.joining {
		a.removeLocked(r, acct, c)
	}
}

func (a *attachments) removeLocked(r, acct string, c mux.Session) {
	delete(a.rooms[r][acct], c)
	if len(a.rooms[r][acct]) == 0 {
		delete(a.rooms[r], acct)
	}
	if len(a.rooms[r]) == 0 {
		delete(a.rooms, r)
	}
}

// tell delivers to every session of acct attached to r what stanza builds
// for it, as the room's event at version tells it: live sessions get it
// now, joining ones once their join is answered. Stanzas are delivered
// under the lock, so that ready's flush and the follower's next event
// cannot pass each other.
func (a *attachments) tell(r, acct string, version uint64, stanza func(c mux.Session) string, urgent bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tellLocked(r, acct, version, stanza, urgent)
}

// tellExit tells acct's sessions in r of its exit at version, as tell
// does, and detaches them (detachAccount) in the same hold of the lock: a
// client that rejoins as soon as it reads its exit must find itself
// detached, or its join would count as a change of presence in a room it
// is no longer in.
func (a *attachments) tellExit(r, acct string, version uint64, stanza func(c mux.Session) string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tellLocked(r, acct, version, stanza, true)
	a.detachAccountLocked(r, acct, version)
}

func (a *attachments) tellLocked(r, acct string, version uint64, stanza func(c mux.Session) string, urgent bool) {
	for c, at := range a.rooms[r][acct] {
		if !at.joining && version <= at.since {
			continue // its join's answer showed this already
		}
		x := stanza(c)
		switch {
		case x == "":
		case !at.joining:
			c.Deliver(x, urgent)
		case len(at.pending) < maxPending:
			at.pending = append(at.pending, pendingStanza{version, x, urgent})
		default:
			at.overflow = true
		}
	}
}

// occupied reports whether any session here is attached to r, joining
// ones included: only then does the follower fold the room's events.
func (a *attachments) occupied(r string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.rooms[r]) > 0
}

// detachAccount forgets every session of acct in room r, which the
// account left at version. A session still joining keeps what waits for
// it until its answer is out (ready decides then).
func (a *attachments) detachAccount(r, acct string, version uint64) {
	defer a.notify([][2]string{{r, acct}})
	a.mu.Lock()
	defer a.mu.Unlock()
	a.detachAccountLocked(r, acct, version)
}

func (a *attachments) detachAccountLocked(r, acct string, version uint64) {
	for c, at := range a.rooms[r][acct] {
		if at.joining {
			at.goneAt = version
			continue
		}
		a.removeLocked(r, acct, c)
	}
}

// detachSession forgets c everywhere and returns the rooms it was in.
func (a *attachments) detachSession(c mux.Session) []string {
	var touched [][2]string
	defer func() { a.notify(touched) }()
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for r, accts := range a.rooms {
		for acct, sessions := range accts {
			if _, ok := sessions[c]; ok {
				a.removeLocked(r, acct, c)
				out = append(out, r)
				touched = append(touched, [2]string{r, acct})
			}
		}
	}
	return out
}

// sessions returns the sessions of acct attached to r, for what does not
// come from the log (private messages, invitations).
func (a *attachments) sessions(r, acct string) []mux.Session {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]mux.Session, 0, len(a.rooms[r][acct]))
	for c, at := range a.rooms[r][acct] {
		if at.goneAt == 0 {
			out = append(out, c)
		}
	}
	return out
}

// attached reports whether c is live in r (joined and answered).
func (a *attachments) attached(r, acct string, c mux.Session) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.rooms[r][acct][c]
	return ok && !at.joining
}

// show is the account's presence in the room: the most available show of
// its attached sessions; ok is false when none is attached.
func (a *attachments) show(r, acct string) (show string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	best, found := "", false
	for _, at := range a.rooms[r][acct] {
		if at.goneAt != 0 {
			continue
		}
		if !found || showRank[at.show] < showRank[best] {
			best, found = at.show, true
		}
	}
	return best, found
}

// showRank orders shows from the most available.
var showRank = map[string]int{"chat": 0, "": 1, "away": 2, "dnd": 3, "xa": 4}
