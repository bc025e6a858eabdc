package c2s

// The block lists the router checks (XEP-0191), kept in memory: every
// stanza to or from an account asks its list, and none may cost a read of
// the log. A list is read on its first use, then kept current from the
// log (Publish) and from this process's own commands, whichever comes
// first; at most maxBlockLists lists and maxBlockListBytes bytes of JIDs
// are held, idle ones dropped past that and read again when next used.

import (
	"context"
	"sync"

	"annals.im/annals/domain/account"
	"annals.im/annals/domain/blocking"
	"annals.im/annals/domain/event"
)

// Bounds of the block lists held. They are no flags: past them the cost
// is one read of an account's stream when its list is next used.
const (
	// maxBlockLists is as many accounts as eventstore/owner keeps folded.
	maxBlockLists = 1 << 16
	// maxBlockListBytes: an empty list weighs listOverhead; a full one of
	// long JIDs a few MiB.
	maxBlockListBytes = 64 << 20
	listOverhead      = 128
	// maxPending bounds the events that arrive while a list is being read;
	// past it the list is read again on its next use.
	maxPending = 64
)

type blockLists struct {
	load     func(ctx context.Context, acct string) (blocking.State, error)
	max      int // lists held
	maxBytes int // their weight (listBytes)

	mu    sync.RWMutex
	lists map[string]*blockList // by account
	bytes int
}

// blockList is one account's list, or the read of it under way.
type blockList struct {
	st blocking.State
	// ver is the stream version the list is as of: that of the last
	// blocking event or AccountCreated folded into it, or the list's own
	// Version. An event at or below it is in the list already.
	ver    uint64
	loaded bool
	ready  chan struct{} // closed when the read ends, loaded or not
	err    error         // the read's, when it failed
	// While the read is under way: the events the log brought meanwhile
	// (too many: stale) and the newest list a command here returned.
	pending   []event.Envelope
	stale     bool
	candidate blocking.State
	bytes     int
}

func newBlockLists(load func(context.Context, string) (blocking.State, error)) *blockLists {
	return &blockLists{load: load, max: maxBlockLists, maxBytes: maxBlockListBytes, lists: make(map[string]*blockList)}
}

// get returns acct's list, reading it from the log on first use. Readers
// of one list that is not held share one read.
func (l *blockLists) get(ctx context.Context, acct string) (blocking.State, error) {
	for {
		l.mu.RLock()
		b, ok := l.lists[acct]
		if ok && b.loaded {
			st := b.st
			l.mu.RUnlock()
			return st, nil
		}
		l.mu.RUnlock()
		l.mu.Lock()
		b, ok = l.lists[acct]
		if !ok {
			l.evictLocked(1)
			b = &blockList{ready: make(chan struct{})}
			l.lists[acct] = b
			l.mu.Unlock()
			l.read(ctx, acct, b)
		} else {
			l.mu.Unlock()
		}
		select {
		case <-b.ready:
		case <-ctx.Done():
			return blocking.State{}, ctx.Err()
		}
		l.mu.RLock()
		st, loaded, err := b.st, b.loaded, b.err
		l.mu.RUnlock()
		if loaded || err != nil {
			return st, err
		}
		// The log moved on too far while it was read: read it again.
	}
}

// read reads b, acct's list, from the log, then brings it up to what the
// log and this process's commands said meanwhile.
func (l *blockLists) read(ctx context.Context, acct string, b *blockList) {
	st, err := l.load(ctx, acct)
	l.mu.Lock()
	defer l.mu.Unlock()
	defer close(b.ready)
	if err != nil || b.stale {
		b.err = err
		if l.lists[acct] == b {
			delete(l.lists, acct)
		}
		return
	}
	if b.candidate.Version > st.Version {
		st = b.candidate
	}
	b.st, b.ver, b.loaded = st, st.Version, true
	for _, e := range b.pending {
		if !b.apply(e) {
			// Not to be folded: read again (the log's own fold of it
			// fails the same way, and says so).
			b.loaded = false
			if l.lists[acct] == b {
				delete(l.lists, acct)
			}
			return
		}
	}
	b.pending, b.candidate = nil, blocking.State{}
	if l.lists[acct] == b {
		l.weigh(b)
		l.evictLocked(0)
	}
}

// fold brings the list of the account whose stream e is in up to e, a
// blocking event or AccountCreated from the log, if the list is held.
func (l *blockLists) fold(e event.Envelope) {
	acct := account.JIDOf(e.Stream)
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.lists[acct]
	switch {
	case !ok:
	case !b.loaded && len(b.pending) >= maxPending:
		b.stale = true
	case !b.loaded:
		b.pending = append(b.pending, e)
	default:
		if !b.apply(e) {
			// A list that does not fold is read again from the log.
			delete(l.lists, acct)
			l.bytes -= b.bytes
			return
		}
		l.weigh(b)
		l.evictLocked(0)
	}
}

// set makes st, the list a command here left, acct's list if it is newer
// than the one held: the account's next stanza sees the change before
// the log follower does.
func (l *blockLists) set(acct string, st blocking.State) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.lists[acct]
	switch {
	case !ok:
	case !b.loaded:
		if st.Version > b.candidate.Version {
			b.candidate = st
		}
	case st.Version > b.ver:
		b.st, b.ver = st, st.Version
		l.weigh(b)
		l.evictLocked(0)
	}
}

// apply folds e into a loaded list unless it is in it already; false
// when it cannot be decoded.
func (b *blockList) apply(e event.Envelope) bool {
	if e.Version <= b.ver {
		return true
	}
	if e.Type == account.TypeCreated {
		// Each incarnation starts with no list (app/accounts.Evolve).
		b.st, b.ver = blocking.State{}, e.Version
		return true
	}
	st, err := blocking.Evolve(b.st, e)
	if err != nil {
		return false
	}
	b.st, b.ver = st, e.Version
	return true
}

// weigh updates the bytes held for b, a list in the map.
func (l *blockLists) weigh(b *blockList) {
	n := listOverhead
	for _, j := range b.st.JIDs {
		n += len(j)
	}
	l.bytes += n - b.bytes
	b.bytes = n
}

// evictLocked makes room for `more` lists: past either bound it drops
// loaded lists down to half of both, so that it runs rarely. A list
// being read stays: its readers wait for it.
func (l *blockLists) evictLocked(more int) {
	if len(l.lists)+more <= l.max && l.bytes <= l.maxBytes {
		return
	}
	for acct, b := range l.lists {
		if len(l.lists)+more <= l.max/2 && l.bytes <= l.maxBytes/2 {
			return
		}
		if b.loaded {
			delete(l.lists, acct)
			l.bytes -= b.bytes
		}
	}
}

// held is how many lists are held and their weight (for tests).
func (l *blockLists) held() (int, int) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.lists), l.bytes
}
