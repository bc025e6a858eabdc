package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/sqlite"
)

// storeMetrics records what the store reports.
type storeMetrics struct {
	mu                 sync.Mutex
	appends, syncs     int
	batches, events    int
	appendsNonPositive int
}

func (m *storeMetrics) Appended(took time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.appends++
	if took <= 0 {
		m.appendsNonPositive++
	}
}

func (m *storeMetrics) Committed(events int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.batches++
	m.events += events
}

func (m *storeMetrics) Synced(time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.syncs++
}

// The store reports each committed append, each group commit with its
// events and, with DurabilityFull, the fsyncs; a refused append (a
// version conflict) is neither an append nor a commit. Err says closed
// after Close.
func TestStoreMetrics(t *testing.T) {
	for _, d := range []sqlite.Durability{sqlite.DurabilityFull, sqlite.DurabilityNormal} {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			m := &storeMetrics{}
			s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "annals.db"), sqlite.Options{Durability: d, Metrics: m})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Err(); err != nil {
				t.Fatalf("Err of an open store: %v", err)
			}
			ids := event.NewIDs()
			ev := func() event.Envelope {
				e, err := event.New(ids, time.Now(), "TestHappened", 1, "test", map[string]int{"n": 1})
				if err != nil {
					t.Fatal(err)
				}
				return e
			}
			const writers, each = 8, 10
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					stream := "test-" + string(rune('a'+w))
					for range each {
						if _, err := s.Append(ctx, stream, eventstore.Any, ev(), ev()); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			if _, err := s.Append(ctx, "test-a", 1, ev()); err == nil {
				t.Fatal("an append at a stale version was accepted")
			}
			// Unlocked before Close: the syncer may still be reporting an
			// fsync, and Close waits for it (holding the lock here hung the
			// test once, on a loaded machine).
			m.mu.Lock()
			if m.appends != writers*each || m.appendsNonPositive > 0 {
				t.Errorf("appends reported: %d (%d took no time), want %d", m.appends, m.appendsNonPositive, writers*each)
			}
			if m.events != 2*writers*each || m.batches < 1 || m.batches > writers*each {
				t.Errorf("commits reported: %d events in %d batches, want %d events in 1..%d", m.events, m.batches, 2*writers*each, writers*each)
			}
			if d == sqlite.DurabilityFull && m.syncs < 1 {
				t.Errorf("fsyncs reported: %d, want some", m.syncs)
			}
			if d == sqlite.DurabilityNormal && m.syncs != 0 {
				t.Errorf("fsyncs reported with durability normal: %d", m.syncs)
			}
			m.mu.Unlock()
			s.Close()
			if err := s.Err(); !errors.Is(err, eventstore.ErrClosed) {
				t.Errorf("Err after Close: %v, want ErrClosed", err)
			}
		})
	}
}
