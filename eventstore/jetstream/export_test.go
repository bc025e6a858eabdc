package jetstream

// CachedHeads is how many stream heads s remembers.
func (s *Store) CachedHeads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.heads)
}
