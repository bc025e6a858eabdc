package s2s

import (
	"context"
	"hash/maphash"
	"sync"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
)

// Ordered returns a Config.Deliver that hands stanzas to deliver on
// workers goroutines instead of the stream's reader: stanzas from one
// sender's bare JID go to one worker, so each sender's are handled in the
// order sent (RFC 6120 §10.1; a room's occupants share the room's JID, so
// a join's answer keeps its order), while different senders' are handled
// side by side. A peer's 1:1 messages were recorded one durable commit
// after another on its stream's reader (BenchmarkFederation: half a
// thousand a second); side by side they share commits.
//
// What waits is bounded: depth stanzas per worker, and maxBytes in all
// (each stanza counted by its payload, and at least 256 bytes). Past
// either the reader waits, which holds the peer back. The workers stop
// when ctx ends; stanzas handed over after that are dropped.
func Ordered(ctx context.Context, workers, depth, maxBytes int, deliver func(from, to jid.JID, e *stanza.Element)) func(from, to jid.JID, e *stanza.Element) {
	type item struct {
		from, to jid.JID
		e        *stanza.Element
		size     int
	}
	var (
		mu      sync.Mutex
		room    = sync.NewCond(&mu)
		waiting int // bytes handed over and not yet delivered
	)
	context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		room.Broadcast()
	})
	queues := make([]chan item, max(workers, 1))
	for i := range queues {
		q := make(chan item, max(depth, 1))
		queues[i] = q
		go func() {
			for {
				select {
				case it := <-q:
					deliver(it.from, it.to, it.e)
					mu.Lock()
					waiting -= it.size
					room.Broadcast()
					mu.Unlock()
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	seed := maphash.MakeSeed()
	return func(from, to jid.JID, e *stanza.Element) {
		it := item{from, to, e, max(len(e.Inner), 256)}
		mu.Lock()
		// One stanza always fits when nothing waits, whatever its size.
		for waiting > 0 && waiting+it.size > maxBytes && ctx.Err() == nil {
			room.Wait()
		}
		if ctx.Err() != nil {
			mu.Unlock()
			return
		}
		waiting += it.size
		mu.Unlock()
		q := queues[maphash.String(seed, from.Bare().String())%uint64(len(queues))]
		select {
		case q <- it:
		case <-ctx.Done():
		}
	}
}
