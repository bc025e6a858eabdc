package owner_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/owner"
	"annals.im/annals/eventstore/sqlite"
)

type counter struct{ n int }

func evolve(c counter, e event.Envelope) (counter, error) { c.n++; return c, nil }

// Concurrent commands on one stream are serialized, and a second owner on
// the same store (another process) makes the first decide again.
func TestDoSerializesAndRetries(t *testing.T) {
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
	a, b := owner.New(s, evolve), owner.New(s, evolve)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := a
			if i%2 == 1 {
				o = b
			}
			if _, _, err := o.Do(ctx, "counter-x", inc); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	all, _ := s.ReadStream(ctx, "counter-x", 1, 100)
	if len(all) != 20 {
		t.Fatalf("%d events, want 20", len(all))
	}
	if _, err := eventstore.Verify(ctx, s); err != nil {
		t.Fatal(err)
	}
	c, err := owner.New(s, evolve).Get(ctx, "counter-x")
	if err != nil || c.n != 20 {
		t.Fatalf("fresh owner folds %d, %v", c.n, err)
	}
}

// A command that decides nothing still sees what another process wrote.
func TestGetAndDoCatchUp(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "a.db"), sqlite.Options{Durability: sqlite.DurabilityNormal})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o := owner.New(s, evolve)
	if c, err := o.Get(ctx, "counter-y"); err != nil || c.n != 0 {
		t.Fatalf("empty stream: %d, %v", c.n, err)
	}
	e, _ := event.New(event.NewIDs(), time.Now(), "Counted", 1, "", map[string]int{})
	if _, err := s.Append(ctx, "counter-y", eventstore.Any, e); err != nil {
		t.Fatal(err)
	}
	var seen int
	if _, _, err := o.Do(ctx, "counter-y", func(c counter) ([]event.Envelope, error) { seen = c.n; return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if seen != 1 {
		t.Fatalf("Do decided on %d events, want 1", seen)
	}
}

// countingStore counts appends.
type countingStore struct {
	eventstore.Store
	mu      sync.Mutex
	appends int
}

func (c *countingStore) Append(ctx context.Context, stream string, expected int64, evs ...event.Envelope) ([]event.Envelope, error) {
	c.mu.Lock()
	c.appends++
	c.mu.Unlock()
	return c.Store.Append(ctx, stream, expected, evs...)
}

// Commands that arrive while an append is being made durable go into the
// next append together; each is decided on the state the ones before it
// leave, gets its own events back, and a refused one does not hold up the
// others.
func TestDoBatches(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "a.db"), sqlite.Options{Durability: sqlite.DurabilityFull})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cs := &countingStore{Store: s}
	ids := event.NewIDs()
	o := owner.New(cs, evolve)
	const n = 200
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[int]bool{}
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got int
			st, stored, err := o.Do(ctx, "counter-z", func(c counter) ([]event.Envelope, error) {
				if i%10 == 9 {
					return nil, errors.New("refused")
				}
				got = c.n + 1
				e, err := event.New(ids, time.Now(), "Counted", 1, "", map[string]int{"n": got})
				return []event.Envelope{e}, err
			})
			if i%10 == 9 {
				if err == nil {
					t.Error("a refused command succeeded")
				}
				return
			}
			if err != nil || len(stored) != 1 || st.n != got || stored[0].Version != uint64(got) {
				t.Errorf("command %d: state %d, stored %+v, err %v (decided %d)", i, st.n, stored, err, got)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[got] {
				t.Errorf("two commands decided on the same state %d", got-1)
			}
			seen[got] = true
		}()
	}
	wg.Wait()
	if len(seen) != n*9/10 {
		t.Fatalf("%d commands stored, want %d", len(seen), n*9/10)
	}
	if cs.appends >= n*9/10 {
		t.Fatalf("%d appends for %d commands: not batched", cs.appends, n*9/10)
	}
	t.Logf("%d commands in %d appends", n*9/10, cs.appends)
}
