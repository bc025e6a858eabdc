package owner_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/owner"
	"annals.im/annals/eventstore/sqlite"
)

// slowReads is a store whose reads take longer, as a node's whose log is
// a network round trip away and whose cache a lost race made stale.
type slowReads struct {
	eventstore.Store
	delay time.Duration
}

func (s slowReads) ReadStream(ctx context.Context, stream string, from uint64, max int) ([]event.Envelope, error) {
	time.Sleep(s.delay)
	return s.Store.ReadStream(ctx, stream, from, max)
}

// Appends take a round trip too, on both nodes.
func (s slowReads) Append(ctx context.Context, stream string, expected int64, evs ...event.Envelope) ([]event.Envelope, error) {
	time.Sleep(time.Millisecond)
	return s.Store.Append(ctx, stream, expected, evs...)
}

// Two nodes writing one busy stream without pause: the one with the
// slower reads keeps losing races, but every command of both still lands
// (the loser waits a little at random and decides its queue again), and
// no version is taken twice.
func TestContendedStreamFromTwoNodes(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "a.db"), sqlite.Options{Durability: sqlite.DurabilityNormal})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ids := event.NewIDs()
	inc := func(c counter) ([]event.Envelope, error) {
		e, err := event.New(ids, time.Now(), "Counted", 1, "", map[string]int{"n": c.n + 1})
		return []event.Envelope{e}, err
	}
	fast, slow := owner.New(slowReads{s, 0}, evolve), owner.New(slowReads{s, 3 * time.Millisecond}, evolve)
	const writers, each = 8, 40
	var wg sync.WaitGroup
	for _, o := range []*owner.Owner[counter]{fast, slow} {
		for range writers {
			wg.Go(func() {
				for range each {
					if _, _, err := o.Do(ctx, "room-busy", inc); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	c, err := owner.New(s, evolve).Get(ctx, "room-busy")
	if err != nil || c.n != 2*writers*each {
		t.Fatalf("the stream has %d events, %v; want %d", c.n, err, 2*writers*each)
	}
	if _, err := eventstore.Verify(ctx, s); err != nil {
		t.Fatal(err)
	}
}
