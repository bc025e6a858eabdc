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
