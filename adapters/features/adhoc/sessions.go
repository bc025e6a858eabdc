package adhoc

import (
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
)

// The bounds of the command sessions: how many may be open at once in
// all and per administrator, and how long one may sit idle. Only
// administrators open sessions, so these guard against a client that
// abandons its forms rather than against strangers; they are settings
// of Config with these defaults rather than flags.
const (
	DefaultMaxSessions         = 64
	DefaultMaxSessionsPerAdmin = 8
	DefaultSessionTimeout      = 10 * time.Minute
	// endedRemembered is how many ended sessions' ids are kept, so that
	// a request in one gets session-expired rather than bad-sessionid.
	endedRemembered = 256
)

// session is one execution of a command with forms (XEP-0050 §3.3):
// the stage it is at and the values submitted so far.
type session struct {
	// mu is held while one of its requests is handled. Requests of one
	// client session arrive one at a time, but a client replaced on its
	// resource may still be in one when the new one sends the next.
	mu        sync.Mutex
	id, node  string
	requester jid.JID // the full JID it belongs to (XEP-0050 §3.3: one requester/responder pair)
	stage     int
	values    values
	used      time.Time // under sessions.mu
}

// sessions keeps the open sessions. A session ends when its command
// completes or is canceled, when it sits idle past the timeout, or when
// its administrator opens one too many and it is the oldest.
type sessions struct {
	max, perAdmin int
	timeout       time.Duration

	mu         sync.Mutex
	open       map[string]*session
	ended      map[string]bool
	endedOrder []string // the same ids, oldest first, at most endedRemembered
}

func newSessions(max, perAdmin int, timeout time.Duration) *sessions {
	return &sessions{max: max, perAdmin: perAdmin, timeout: timeout, open: map[string]*session{}, ended: map[string]bool{}}
}

// start opens a session of node for requester and returns it held
// (release it). The requester's oldest session goes when it has
// perAdmin open already; when all are taken, the answer is
// resource-constraint.
func (t *sessions) start(requester jid.JID, node string, now time.Time) (*session, error) {
	t.mu.Lock()
	t.sweepLocked(now)
	admin := requester.Bare()
	var (
		mine   int
		oldest *session
	)
	for _, se := range t.open {
		if se.requester.Bare().Equal(admin) {
			mine++
			if oldest == nil || se.used.Before(oldest.used) {
				oldest = se
			}
		}
	}
	if mine >= t.perAdmin {
		t.endLocked(oldest)
	}
	if len(t.open) >= t.max {
		t.mu.Unlock()
		return nil, stanza.Errorf("resource-constraint", fmt.Sprintf("%d command sessions are open, the most the server keeps: complete or cancel one, or wait %v", t.max, t.timeout))
	}
	se := &session{id: "adhoc-" + rand.Text(), node: node, requester: requester, values: values{}, used: now}
	t.open[se.id] = se
	se.mu.Lock() // nobody else knows its id yet: this never waits
	t.mu.Unlock()
	return se, nil
}

// take returns session id, held (release it), if it is requester's and
// node's and still open: bad-sessionid when it is not one the requester
// was given for node, session-expired when it was and has ended.
func (t *sessions) take(id string, requester jid.JID, node string, now time.Time) (*session, error) {
	t.mu.Lock()
	t.sweepLocked(now)
	se := t.open[id]
	switch {
	case se == nil && t.ended[id]:
		t.mu.Unlock()
		return nil, errExpired
	case se == nil, !se.requester.Equal(requester), se.node != node:
		t.mu.Unlock()
		return nil, &cmdError{cond: "bad-request", app: "bad-sessionid", text: "no such session of this command for you"}
	}
	t.mu.Unlock()
	se.mu.Lock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.open[id] != se { // ended while this request waited for the last one
		se.mu.Unlock()
		return nil, errExpired
	}
	se.used = now
	return se, nil
}

// release lets the next request of se in.
func (t *sessions) release(se *session) { se.mu.Unlock() }

// end closes se; its id is remembered as ended.
func (t *sessions) end(se *session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.endLocked(se)
}

func (t *sessions) endLocked(se *session) {
	if t.open[se.id] != se {
		return
	}
	delete(t.open, se.id)
	t.ended[se.id] = true
	t.endedOrder = append(t.endedOrder, se.id)
	if len(t.endedOrder) > endedRemembered {
		delete(t.ended, t.endedOrder[0])
		t.endedOrder = t.endedOrder[1:]
	}
}

// sweepLocked ends the sessions idle past the timeout.
func (t *sessions) sweepLocked(now time.Time) {
	for _, se := range t.open {
		if now.Sub(se.used) > t.timeout {
			t.endLocked(se)
		}
	}
}

// count returns how many sessions are open.
func (t *sessions) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.open)
}

// errExpired is XEP-0050 §4.6's session-expired: the session was
// completed, canceled, or timed out.
var errExpired = &cmdError{cond: "not-allowed", app: "session-expired", text: "this session has ended (completed, canceled or idle too long)"}
