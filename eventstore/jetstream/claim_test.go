package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/oklog/ulid/v2"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/jetstream"
)

// claimed writes generation gen of id's claim, naming the append of
// stream at version first, as a writer that stopped after its claims
// would have left it.
func claimed(t testing.TB, prefix string, id ulid.ULID, gen int, stream string, first int) {
	t.Helper()
	nc, err := nats.Connect(sharedURLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	m := &nats.Msg{Subject: fmt.Sprintf("%s.id.%s.%d", prefix, id, gen),
		Data:   []byte(fmt.Sprintf("%s.log.%s.%d", prefix, jetstream.Token(stream), first)),
		Header: nats.Header{"Nats-Expected-Last-Subject-Sequence": {"0"}}}
	r, err := nc.RequestMsg(m, 5*time.Second)
	if err != nil || strings.Contains(string(r.Data), "error") {
		t.Fatalf("claim %s: %v %s", m.Subject, err, r.Data)
	}
}

// names returns what generation gen of id's claim names, "" if none.
func names(t testing.TB, prefix string, id ulid.ULID, gen int) string {
	t.Helper()
	nc, err := nats.Connect(sharedURLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r, err := nc.Request("$JS.API.DIRECT.GET."+strings.ToUpper(prefix)+"-IDS",
		[]byte(fmt.Sprintf(`{"last_by_subj":"%s.id.%s.%d"}`, prefix, id, gen)), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.Header.Get("Status") != "" {
		return ""
	}
	return string(r.Data)
}

// Claims left by writers that stopped (or lost) between claiming their
// IDs and writing their append: a retry of the same append in the same
// place uses them; one whose append another took is taken over, in the
// next generation; one naming another stream's append that is not
// written, and may still be on its way, makes the ID unusable there
// until that stream moves past it.
func TestClaims(t *testing.T) {
	p := "claims" + strings.ToLower(ulid.Make().String()[18:])
	s := connect(t, jetstream.Options{Stream: strings.ToUpper(p), Prefix: p})
	ctx := context.Background()
	stream, other := "room-a@example.com", "room-b@example.com"

	t.Run("unwritten, here", func(t *testing.T) {
		x := proposed(t, 1)
		claimed(t, p, x[0].ID, 1, stream, 1)
		out, err := s.Append(ctx, stream, eventstore.NoStream, x...)
		if err != nil || out[0].Version != 1 {
			t.Fatalf("append with its own unwritten claim: %v", err)
		}
		if got := names(t, p, x[0].ID, 2); got != "" {
			t.Fatalf("a second claim names %s", got)
		}
	})
	t.Run("refused", func(t *testing.T) {
		x := proposed(t, 1)
		claimed(t, p, x[0].ID, 1, stream, 1) // version 1 is taken
		out, err := s.Append(ctx, stream, eventstore.Any, x...)
		if err != nil || out[0].Version != 2 {
			t.Fatalf("append over a refused claim: %v", err)
		}
		if got, want := names(t, p, x[0].ID, 2), fmt.Sprintf("%s.log.%s.2", p, jetstream.Token(stream)); got != want {
			t.Fatalf("the second claim names %q, want %q", got, want)
		}
		// A retry, long after, finds it through the second claim.
		again, err := connect(t, jetstream.Options{Stream: strings.ToUpper(p), Prefix: p}).Append(ctx, stream, eventstore.Any, x...)
		if err != nil || again[0].Position != out[0].Position {
			t.Fatalf("retry: %v, %+v", err, again)
		}
	})
	t.Run("unwritten, elsewhere", func(t *testing.T) {
		x := proposed(t, 1)
		claimed(t, p, x[0].ID, 1, other, 1)
		if _, err := s.Append(ctx, stream, eventstore.Any, x...); !errors.Is(err, eventstore.ErrDuplicateID) {
			t.Fatalf("append of an ID claimed for another stream's unwritten append: err = %v, want ErrDuplicateID", err)
		}
		if _, err := s.Append(ctx, other, eventstore.NoStream, proposed(t, 2)...); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, stream, eventstore.Any, x...); err != nil {
			t.Fatalf("once the other stream moved past the claim: %v", err)
		}
	})
	t.Run("unwritten, later here", func(t *testing.T) {
		// Only a leader that lags could show this: a claim for an
		// append after the head. Append waits a little, then gives up.
		x := proposed(t, 1)
		claimed(t, p, x[0].ID, 1, stream, 100)
		began := time.Now()
		if _, err := s.Append(ctx, stream, eventstore.Any, x...); !errors.Is(err, eventstore.ErrConflict) {
			t.Fatalf("append of an ID claimed after the head: err = %v, want ErrConflict", err)
		}
		if d := time.Since(began); d > 5*time.Second {
			t.Fatalf("gave up after %v", d)
		}
	})
	checkStream(t, s, stream, 3)
}

// Appends sharing event IDs, made at once through two stores: each ID is
// stored once at most, whatever appends race for it, and every Append
// that succeeds returns what is stored. Runs of the same events to one
// stream are retries of each other; the same events to another stream,
// or overlapping runs, are refused (ErrDuplicateID) or lose (ErrConflict)
// unless they win. No duplicate window helps: the claims alone decide.
func TestConcurrentClaims(t *testing.T) {
	p := "race" + strings.ToLower(ulid.Make().String()[18:])
	opts := jetstream.Options{Stream: strings.ToUpper(p), Prefix: p}
	stores := []*jetstream.Store{connect(t, opts), connect(t, opts)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const rounds, writers = 20, 8
	var mu sync.Mutex
	returned := map[ulid.ULID]event.Envelope{}
	for r := 0; r < rounds; r++ {
		evs := proposed(t, 4)
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				run := evs[w%2 : 2+w%3] // overlapping runs
				stream := "room-race@example.com"
				if w == writers-1 {
					stream = "room-elsewhere@example.com"
				}
				out, err := stores[w%2].Append(ctx, stream, eventstore.Any, run...)
				switch {
				case errors.Is(err, eventstore.ErrDuplicateID), errors.Is(err, eventstore.ErrConflict):
				case err != nil:
					t.Error(err)
				default:
					mu.Lock()
					for _, e := range out {
						if prev, ok := returned[e.ID]; ok && prev.Position != e.Position {
							t.Errorf("%s returned at %s and at %s", e.ID, prev.Position, e.Position)
						}
						returned[e.ID] = e
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	stored := map[ulid.ULID]event.Envelope{}
	all, err := stores[0].ReadAll(ctx, event.Position{}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		if prev, ok := stored[e.ID]; ok {
			t.Fatalf("%s is stored twice: %s version %d and %s version %d", e.ID, prev.Stream, prev.Version, e.Stream, e.Version)
		}
		stored[e.ID] = e
	}
	for id, e := range returned {
		if got, ok := stored[id]; !ok || got.Position != e.Position || got.Stream != e.Stream {
			t.Fatalf("%s was returned at %s but is stored at %+v", id, e.Position, got)
		}
	}
	if _, err := eventstore.Verify(ctx, stores[0]); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events stored, %d returned", len(stored), len(returned))
}
