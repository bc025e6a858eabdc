package pep

import "sync"

// locks serializes work per account, holding a mutex only for the
// accounts being worked on, so that accounts never wait for each other
// and the map does not grow with every account ever seen.
type locks struct {
	mu sync.Mutex
	m  map[string]*lock
}

type lock struct {
	sync.Mutex
	users int
}

// lock locks acct and returns its unlock.
func (l *locks) lock(acct string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*lock)
	}
	al := l.m[acct]
	if al == nil {
		al = &lock{}
		l.m[acct] = al
	}
	al.users++
	l.mu.Unlock()
	al.Lock()
	return func() {
		al.Unlock()
		l.mu.Lock()
		if al.users--; al.users == 0 {
			delete(l.m, acct)
		}
		l.mu.Unlock()
	}
}
