package jetstream

import "annals.im/annals/domain/event"

// SeqOf is the log sequence of the append holding the event at p.
func SeqOf(p event.Position) uint64 { return seqOf(p) }

// CachedHeads is how many stream heads s remembers.
func (s *Store) CachedHeads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.heads)
}

// Lag makes every direct get of s miss the log's messages after sequence
// seq, as from a replica that has applied nothing later.
func (s *Store) Lag(seq uint64) {
	s.lagging = func(m msg) bool { return m.seq > seq }
}
