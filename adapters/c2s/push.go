package c2s

// What push notifications (XEP-0357, adapters/features/push) need of the
// session core: to hear of each message an account receives, with which
// of its clients are awake to take it themselves.

// Pusher is told of a 1:1 message with a body (or encrypted) for a local
// account. It must not block: the recipient's delivery lock is held.
type Pusher interface {
	// Wants reports whether a message for acct may need a push: false
	// for an account known to have no registrations, which then costs
	// nothing more.
	Wants(acct string) bool
	// Message: acct received a message from sender (a full JID here or
	// elsewhere) with body ("" if it had none, encrypted); awake lists the
	// resources of its clients that are connected, available and active,
	// which got it themselves and need no push.
	Message(acct, sender, body string, awake []string)
}

// pushFor tells the Pusher of message e for acct.
func (s *Server) pushFor(acct, sender string, e *element) {
	if s.cfg.Push == nil || !s.cfg.Push.Wants(acct) {
		return
	}
	s.cfg.Push.Message(acct, sender, e.ChildText("body"), s.awake(acct))
}

// awake returns the resources of acct's sessions that can take a stanza
// now: available, with a connection (not detached awaiting resumption),
// and not inactive (XEP-0352).
func (s *Server) awake(acct string) []string {
	s.mu.Lock()
	sessions := make([]*conn, 0, len(s.sessions[acct]))
	for _, c := range s.sessions[acct] {
		if c.available != "" {
			sessions = append(sessions, c)
		}
	}
	s.mu.Unlock()
	var out []string
	for _, c := range sessions {
		c.wmu.Lock()
		asleep := c.detached || c.inactive || c.closed
		c.wmu.Unlock()
		if !asleep {
			out = append(out, c.jid.Resourcepart())
		}
	}
	return out
}
