package cluster

import "strings"

// Which accounts' sessions on each node are attached to which rooms: an
// account occupies a room once, whichever node its clients are on, and
// its show there is the best of all its attached sessions'. A room
// service asks before it says an account has no client attached (its
// show turns to the detached one, or an idle account leaves).

// attachmentKey is the table key of acct's attachment to room: '@' starts
// no JID, and neither a room's nor an account's JID holds a space.
func attachmentKey(room, acct string) string { return "@" + room + " " + acct }

func isAttachment(key string) bool { return strings.HasPrefix(key, "@") }

// Attach tells the other nodes whether acct has sessions here attached to
// room, and their best show (ok false: none is attached any more).
func (b *Bus) Attach(room, acct, show string, ok bool) {
	b.announce(attachmentKey(room, acct), ok, show)
}

// Attached returns the best show of acct's sessions attached to room on
// the other nodes; ok is false when none is.
func (b *Bus) Attached(room, acct string, rank func(show string) int) (show string, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.attached[attachmentKey(room, acct)] {
		if !ok || rank(s) < rank(show) {
			show, ok = s, true
		}
	}
	return show, ok
}

// setAttached records node's attachment under key; called with b.mu held.
func (b *Bus) setAttached(key, node, show string, ok bool) {
	m := b.attached[key]
	if !ok {
		delete(m, node)
		if len(m) == 0 {
			delete(b.attached, key)
		}
		return
	}
	if m == nil {
		m = make(map[string]string)
		b.attached[key] = m
	}
	m[node] = show
}
