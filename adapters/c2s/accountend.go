package c2s

import (
	"time"
)

// Ending an account's sessions: when an account is deleted or its password
// changes, the sessions opened with the old credentials must not outlive
// them (issue 10: a deleted account's live session received the messages
// of the next account of the same name).

// endedMemory is how long the server remembers that an account's sessions
// were ended, to refuse a bind by a connection whose authentication began
// before: longer than any login may take. maxEnded bounds the memory.
const (
	endedMemory = 10 * time.Minute
	maxEnded    = 4096
)

// EndAccount ends every session of the account with bare JID bare, bound
// or detached and waiting to be resumed, except the one whose session id
// is keep (none when keep is ""): each gets the stream error cond (text)
// and its stream closes. A connection that began authenticating before
// this call and has not bound yet is refused at bind. It returns how many
// sessions it ended.
func (s *Server) EndAccount(bare, cond, text, keep string) int {
	now := time.Now()
	s.mu.Lock()
	var victims []*conn
	for _, c := range s.sessions[bare] {
		if keep == "" || c.sid != keep {
			victims = append(victims, c)
		}
	}
	if s.ended == nil {
		s.ended = make(map[string]time.Time)
	}
	if len(s.ended) >= maxEnded {
		for k, t := range s.ended {
			if now.Sub(t) > endedMemory || len(s.ended) >= maxEnded {
				delete(s.ended, k)
			}
		}
	}
	s.ended[bare] = now
	s.mu.Unlock()
	final := (&streamError{cond: cond, text: text}).xml() + "</stream:stream>"
	for _, c := range victims {
		c.log.Info("session ended", "jid", c.jid.String(), "condition", cond, "text", text)
		c.shutdown(final)
	}
	return len(victims)
}

// endedSinceLocked reports whether bare's sessions were ended after t;
// the caller holds s.mu.
func (s *Server) endedSinceLocked(bare string, t time.Time) bool {
	at, ok := s.ended[bare]
	return ok && !at.Before(t) && time.Since(at) <= endedMemory
}
