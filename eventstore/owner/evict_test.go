package owner

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore/sqlite"
)

// The owner keeps a bounded number of streams in memory; a dropped one is
// folded again from the log, whole.
func TestEviction(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "a.db"), sqlite.Options{Durability: sqlite.DurabilityNormal})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	count := func(n int, e event.Envelope) (int, error) { return n + 1, nil }
	o := New(s, count)
	o.max = 8
	ids := event.NewIDs()
	inc := func(int) ([]event.Envelope, error) {
		e, err := event.New(ids, time.Now(), "Counted", 1, "", map[string]int{})
		return []event.Envelope{e}, err
	}
	for i := range 3 {
		if _, _, err := o.Do(ctx, "kept", inc); err != nil {
			t.Fatal(i, err)
		}
	}
	for i := range 100 {
		if _, err := o.Get(ctx, fmt.Sprintf("nobody-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	o.mu.Lock()
	n := len(o.streams)
	o.mu.Unlock()
	if n > 8 {
		t.Fatalf("%d streams in memory, max 8", n)
	}
	if got, err := o.Get(ctx, "kept"); err != nil || got != 3 {
		t.Fatalf("a dropped stream folds again to %d, %v; want 3", got, err)
	}
	if st, _, err := o.Do(ctx, "kept", inc); err != nil || st != 4 {
		t.Fatalf("and takes commands: %d, %v", st, err)
	}
}
