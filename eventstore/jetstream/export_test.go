package jetstream

// CachedHeads is how many stream heads s remembers.
func (s *Store) CachedHeads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.heads)
}

// Lag makes every direct page of s lose its last n messages, as from a
// replica n messages behind the leader.
func (s *Store) Lag(n int) {
	s.lagging = func(page []msg) []msg { return page[:max(len(page)-n, 0)] }
}
