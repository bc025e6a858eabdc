package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// Open opens the store kept in dir (an empty directory per test; a store on
// a server may ignore it). Opening the same dir twice, also from another
// process, must reach the same log. Open calls t.Fatal on failure.
type Open func(t testing.TB, dir string) eventstore.Store

// Run runs the whole suite against the stores open returns.
func Run(t *testing.T, open Open) {
	if crashChild(t, open) {
		return
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s eventstore.Store, p string)
	}{
		{"AppendAndRead", testAppendAndRead},
		{"ExpectedVersion", testExpectedVersion},
		{"IdempotentRetry", testIdempotentRetry},
		{"ConcurrentWriters", testConcurrentWriters},
		{"ReadAllPaging", testReadAllPaging},
		{"ReadStreamRanges", testReadStreamRanges},
		{"Subscription", testSubscription},
		{"InvalidInput", testInvalidInput},
		{"Head", testHead},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, t.TempDir())
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s, prefix())
		})
	}
	t.Run("Crash", func(t *testing.T) { testCrash(t, open) })
}

func prefix() string { return "st" + strings.ToLower(ulid.Make().String()[16:]) + "-" }

var ids = event.NewIDs()

// proposed returns n new events with distinguishable data.
func proposed(n int, tag string) []event.Envelope {
	out := make([]event.Envelope, n)
	for i := range out {
		at := time.Date(2026, 11, 27, 10, 0, i, 123456789, time.UTC)
		e, err := event.New(ids, at, "TestHappened", 1, fmt.Sprintf("%s-%d", tag, i),
			map[string]any{"tag": tag, "n": i, "text": "héllo \"world\""})
		if err != nil {
			panic(err)
		}
		out[i] = e
	}
	return out
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustAppend(t testing.TB, s eventstore.Store, stream string, expected int64, evs ...event.Envelope) []event.Envelope {
	t.Helper()
	out, err := s.Append(ctxT(t), stream, expected, evs...)
	if err != nil {
		t.Fatalf("append to %s at %d: %v", stream, expected, err)
	}
	return out
}

func readStream(t testing.TB, s eventstore.Store, stream string) []event.Envelope {
	t.Helper()
	var all []event.Envelope
	for from := uint64(1); ; {
		page, err := s.ReadStream(ctxT(t), stream, from, 100)
		if err != nil {
			t.Fatalf("read %s: %v", stream, err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		from = page[len(page)-1].Version + 1
	}
}

// readAll pages through the log with page size max, keeping events whose
// stream starts with p.
func readAll(t testing.TB, s eventstore.Store, p string, max int) []event.Envelope {
	t.Helper()
	var all []event.Envelope
	var last event.Position
	for {
		page, err := s.ReadAll(ctxT(t), last, max)
		if err != nil {
			t.Fatalf("read all: %v", err)
		}
		if len(page) > max {
			t.Fatalf("ReadAll returned %d events, asked for at most %d", len(page), max)
		}
		if len(page) == 0 {
			return all
		}
		for _, e := range page {
			if !last.Less(e.Position) {
				t.Fatalf("ReadAll: position %s after %s", e.Position, last)
			}
			last = e.Position
			if strings.HasPrefix(e.Stream, p) {
				all = append(all, e)
			}
		}
	}
}

func sameEvent(t testing.TB, got, want event.Envelope) {
	t.Helper()
	if got.ID != want.ID || got.Stream != want.Stream || got.Version != want.Version ||
		got.Position != want.Position || got.Type != want.Type || got.Schema != want.Schema ||
		!got.OccurredAt.Equal(want.OccurredAt) || got.Cause != want.Cause ||
		string(got.Data) != string(want.Data) || string(got.Hash) != string(want.Hash) {
		t.Fatalf("event differs:\n got %+v\nwant %+v", got, want)
	}
}

func checkChain(t testing.TB, evs []event.Envelope) {
	t.Helper()
	var prev []byte
	for i, e := range evs {
		if e.Version != uint64(i+1) {
			t.Fatalf("%s: event %d has version %d", e.Stream, i, e.Version)
		}
		if !event.Verify(prev, e) {
			t.Fatalf("%s version %d: hash does not chain", e.Stream, e.Version)
		}
		prev = e.Hash
	}
}

func testAppendAndRead(t *testing.T, s eventstore.Store, p string) {
	stream := p + "account-romeo@example.com"
	in := proposed(5, "a")
	out := mustAppend(t, s, stream, eventstore.NoStream, in[:2]...)
	out = append(out, mustAppend(t, s, stream, 2, in[2:]...)...)
	if len(out) != 5 {
		t.Fatalf("append returned %d events, want 5", len(out))
	}
	for i, e := range out {
		if e.ID != in[i].ID || e.Stream != stream || e.Version != uint64(i+1) || e.Type != in[i].Type ||
			e.Cause != in[i].Cause || !e.OccurredAt.Equal(in[i].OccurredAt) || string(e.Data) != string(in[i].Data) {
			t.Fatalf("stored event %d = %+v, proposed %+v", i, e, in[i])
		}
		if e.OccurredAt.Location() != time.UTC {
			t.Fatalf("occurred_at not in UTC: %v", e.OccurredAt)
		}
		if i > 0 && !out[i-1].Position.Less(e.Position) {
			t.Fatalf("positions not increasing: %s then %s", out[i-1].Position, e.Position)
		}
		// Read models key and page on Commit alone (the archive's pos), so
		// the events of one append must not share it.
		if i > 0 && out[i-1].Position.Commit >= e.Position.Commit {
			t.Fatalf("Commit not increasing within the log: %s then %s", out[i-1].Position, e.Position)
		}
	}
	checkChain(t, out)
	got := readStream(t, s, stream)
	if len(got) != len(out) {
		t.Fatalf("read %d events, appended %d", len(got), len(out))
	}
	for i := range got {
		sameEvent(t, got[i], out[i])
	}
	tail, err := s.ReadStream(ctxT(t), stream, 4, 10)
	if err != nil || len(tail) != 2 || tail[0].Version != 4 {
		t.Fatalf("ReadStream from 4 = %d events (err %v), want versions 4 and 5", len(tail), err)
	}
	none, err := s.ReadStream(ctxT(t), p+"nobody", 1, 10)
	if err != nil || len(none) != 0 {
		t.Fatalf("ReadStream of a missing stream = %v, %v; want nothing, no error", none, err)
	}
	all := readAll(t, s, p, 1000)
	for i := range all {
		sameEvent(t, all[i], out[i])
	}
}

func testExpectedVersion(t *testing.T, s eventstore.Store, p string) {
	stream := p + "room-balcony@conference.example.com"
	mustAppend(t, s, stream, eventstore.NoStream, proposed(3, "e")...)
	for _, expected := range []int64{eventstore.NoStream, 1, 2, 4, 100} {
		_, err := s.Append(ctxT(t), stream, expected, proposed(1, "x")...)
		if !errors.Is(err, eventstore.ErrConflict) {
			t.Errorf("append at expected %d to a stream at 3: err = %v, want ErrConflict", expected, err)
		}
	}
	if _, err := s.Append(ctxT(t), p+"fresh", 1, proposed(1, "y")...); !errors.Is(err, eventstore.ErrConflict) {
		t.Errorf("append at expected 1 to a missing stream: err = %v, want ErrConflict", err)
	}
	out := mustAppend(t, s, stream, eventstore.Any, proposed(2, "any")...)
	if out[0].Version != 4 || out[1].Version != 5 {
		t.Fatalf("append with Any got versions %d, %d; want 4, 5", out[0].Version, out[1].Version)
	}
	checkChain(t, readStream(t, s, stream))
	if n := len(readStream(t, s, p+"fresh")); n != 0 {
		t.Fatalf("a refused append wrote %d events", n)
	}
}

func testIdempotentRetry(t *testing.T, s eventstore.Store, p string) {
	stream := p + "account-juliet@example.com"
	evs := proposed(3, "i")
	first := mustAppend(t, s, stream, eventstore.NoStream, evs...)
	for _, expected := range []int64{eventstore.NoStream, eventstore.Any, 3} {
		again := mustAppend(t, s, stream, expected, evs...)
		for i := range again {
			sameEvent(t, again[i], first[i])
		}
	}
	if n := len(readStream(t, s, stream)); n != 3 {
		t.Fatalf("after retries the stream has %d events, want 3", n)
	}
	// A single event of the batch retried alone is the same append too.
	if again := mustAppend(t, s, stream, eventstore.Any, evs[1]); again[0].Version != 2 {
		t.Fatalf("retry of the middle event returned version %d", again[0].Version)
	}
	// An ID stored elsewhere, or mixed with new events, is not a retry.
	if _, err := s.Append(ctxT(t), p+"other", eventstore.NoStream, evs[0]); !errors.Is(err, eventstore.ErrDuplicateID) {
		t.Errorf("same ID in another stream: err = %v, want ErrDuplicateID", err)
	}
	mixed := append([]event.Envelope{evs[2]}, proposed(1, "new")...)
	if _, err := s.Append(ctxT(t), stream, eventstore.Any, mixed...); !errors.Is(err, eventstore.ErrDuplicateID) {
		t.Errorf("stored ID followed by a new one: err = %v, want ErrDuplicateID", err)
	}
	if n := len(readStream(t, s, stream)); n != 3 {
		t.Fatalf("refused appends changed the stream to %d events", n)
	}
	if n := len(readStream(t, s, p+"other")); n != 0 {
		t.Fatalf("refused append wrote %d events", n)
	}
}

func testConcurrentWriters(t *testing.T, s eventstore.Store, p string) {
	const writers, target = 16, 160
	stream := p + "room-hot@conference.example.com"
	var (
		mu   sync.Mutex
		wins = make(map[ulid.ULID]int) // event ID -> writer
		wg   sync.WaitGroup
	)
	// Correctness, not speed: 16 writers lose most rounds, and an
	// embedded three-server cluster under the race detector on a busy
	// machine needed more than ctxT's minute (seen in CI with benchmarks
	// running beside it).
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				evs, err := s.ReadStream(ctx, stream, 1, 1000)
				if err != nil {
					errs <- err
					return
				}
				v := len(evs)
				if v >= target {
					return
				}
				e := proposed(1, fmt.Sprintf("w%d", w))
				out, err := s.Append(ctx, stream, int64(v), e...)
				switch {
				case errors.Is(err, eventstore.ErrConflict):
				case err != nil:
					errs <- err
					return
				default:
					if out[0].Version != uint64(v+1) {
						errs <- fmt.Errorf("won at expected %d but got version %d", v, out[0].Version)
						return
					}
					mu.Lock()
					wins[out[0].ID] = w
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := readStream(t, s, stream)
	checkChain(t, got)
	if len(got) != len(wins) {
		t.Fatalf("stream has %d events but %d appends succeeded", len(got), len(wins))
	}
	for _, e := range got {
		if _, ok := wins[e.ID]; !ok {
			t.Fatalf("version %d (%s) was not reported as a success to any writer", e.Version, e.ID)
		}
	}
	if len(got) < target {
		t.Fatalf("stream reached %d versions, want %d", len(got), target)
	}
}

func testReadAllPaging(t *testing.T, s eventstore.Store, p string) {
	var want []event.Envelope
	for i := 0; i < 40; i++ {
		stream := fmt.Sprintf("%saccount-u%d@example.com", p, i%3)
		want = append(want, mustAppend(t, s, stream, eventstore.Any, proposed(1+i%2, "p")...)...)
	}
	for _, max := range []int{1, 7, 60, 10000} {
		got := readAll(t, s, p, max)
		if len(got) != len(want) {
			t.Fatalf("page size %d: read %d events, appended %d", max, len(got), len(want))
		}
		for i := range got {
			sameEvent(t, got[i], want[i])
		}
	}
	// Reading after the last position gives nothing more of ours.
	if rest, err := s.ReadAll(ctxT(t), want[len(want)-1].Position, 10); err != nil {
		t.Fatal(err)
	} else {
		for _, e := range rest {
			if strings.HasPrefix(e.Stream, p) {
				t.Fatalf("ReadAll after the last event returned %s version %d", e.Stream, e.Version)
			}
		}
	}
}

func testSubscription(t *testing.T, s eventstore.Store, p string) {
	const before, live = 30, 300
	for i := 0; i < before; i++ {
		mustAppend(t, s, p+"account-early@example.com", eventstore.Any, proposed(1, "b")...)
	}
	ctx := ctxT(t)
	sub, err := s.Subscribe(ctx, event.Position{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var wg sync.WaitGroup
	appended := make(chan []event.Envelope, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []event.Envelope
			for i := 0; i < live/4; i++ {
				out, err := s.Append(ctx, fmt.Sprintf("%sroom-r%d@example.com", p, w), eventstore.Any, proposed(1, "l")...)
				if err != nil {
					t.Error(err)
					break
				}
				mine = append(mine, out...)
			}
			appended <- mine
		}()
	}
	var got []event.Envelope
	seen := make(map[ulid.ULID]bool)
	var last event.Position
	for len(got) < before+live {
		page, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("after %d events: %v", len(got), err)
		}
		if len(page) == 0 {
			t.Fatal("Next returned an empty batch")
		}
		for _, e := range page {
			if !last.Less(e.Position) {
				t.Fatalf("subscription: position %s after %s", e.Position, last)
			}
			last = e.Position
			if !strings.HasPrefix(e.Stream, p) {
				continue
			}
			if seen[e.ID] {
				t.Fatalf("subscription delivered %s twice", e.ID)
			}
			seen[e.ID] = true
			got = append(got, e)
		}
	}
	wg.Wait()
	close(appended)
	for mine := range appended {
		for _, e := range mine {
			if !seen[e.ID] {
				t.Fatalf("subscription missed %s version %d", e.Stream, e.Version)
			}
		}
	}
	// The subscription matches what ReadAll says, event for event.
	all := readAll(t, s, p, 1000)
	if len(all) != len(got) {
		t.Fatalf("subscription gave %d events, ReadAll %d", len(got), len(all))
	}
	for i := range all {
		sameEvent(t, got[i], all[i])
	}
	// Nothing more arrives; Next honours its context.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	for {
		page, err := sub.Next(short)
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("idle Next: err = %v, want deadline exceeded", err)
			}
			break
		}
		for _, e := range page {
			if strings.HasPrefix(e.Stream, p) {
				t.Fatalf("idle subscription delivered %s", e.ID)
			}
		}
	}
}

func testInvalidInput(t *testing.T, s eventstore.Store, p string) {
	good := proposed(1, "v")[0]
	bad := func(f func(e *event.Envelope)) event.Envelope {
		e := proposed(1, "bad")[0]
		f(&e)
		return e
	}
	cases := []struct {
		name   string
		stream string
		evs    []event.Envelope
	}{
		{"empty stream", "", []event.Envelope{good}},
		{"control character in stream", p + "a\nb", []event.Envelope{good}},
		{"no events", p + "s", nil},
		{"zero id", p + "s", []event.Envelope{bad(func(e *event.Envelope) { e.ID = ulid.ULID{} })}},
		{"no type", p + "s", []event.Envelope{bad(func(e *event.Envelope) { e.Type = "" })}},
		{"schema 0", p + "s", []event.Envelope{bad(func(e *event.Envelope) { e.Schema = 0 })}},
		{"data not JSON", p + "s", []event.Envelope{bad(func(e *event.Envelope) { e.Data = []byte("{nope") })}},
		{"no time", p + "s", []event.Envelope{bad(func(e *event.Envelope) { e.OccurredAt = time.Time{} })}},
		{"same id twice", p + "s", []event.Envelope{good, good}},
		{"same id twice in a long append", p + "s", append(proposed(20, "long"), good, good)},
	}
	for _, c := range cases {
		if _, err := s.Append(ctxT(t), c.stream, eventstore.Any, c.evs...); !errors.Is(err, event.ErrInvalid) {
			t.Errorf("%s: err = %v, want event.ErrInvalid", c.name, err)
		}
	}
	if _, err := s.Append(ctxT(t), p+"s", -2, good); !errors.Is(err, event.ErrInvalid) {
		t.Errorf("expected version -2: err = %v, want event.ErrInvalid", err)
	}
	if n := len(readAll(t, s, p, 100)); n != 0 {
		t.Fatalf("refused appends wrote %d events", n)
	}
	// Data is stored compact, whatever spacing the caller used.
	e := proposed(1, "c")[0]
	e.Data = []byte("{ \"a\" : [1, 2] }")
	out := mustAppend(t, s, p+"s", eventstore.NoStream, e)
	if string(out[0].Data) != `{"a":[1,2]}` {
		t.Fatalf("stored data %s, want compact JSON", out[0].Data)
	}
	if _, err := eventstore.Verify(ctxT(t), s); err != nil {
		t.Fatalf("a fresh log does not verify: %v", err)
	}
}

// testReadStreamRanges reads a long stream, interleaved with another, in
// many (from, max) windows: stores may index streams sparsely.
func testReadStreamRanges(t *testing.T, s eventstore.Store, p string) {
	const n = 700
	stream := p + "room-long@conference.example.com"
	var want []event.Envelope
	for len(want) < n {
		k := min(1+len(want)%37, n-len(want))
		want = append(want, mustAppend(t, s, stream, int64(len(want)), proposed(k, "r")...)...)
		mustAppend(t, s, p+"room-other@conference.example.com", eventstore.Any, proposed(1, "o")...)
	}
	for _, w := range []struct {
		from uint64
		max  int
	}{{1, 1}, {1, n}, {1, 10 * n}, {0, 5}, {2, 126}, {127, 2}, {128, 1}, {129, 300}, {250, 7}, {256, 256},
		{n, 1}, {n, 50}, {n + 1, 5}, {n - 3, 10}, {384, 129}, {500, 1000}} {
		got, err := s.ReadStream(ctxT(t), stream, w.from, w.max)
		if err != nil {
			t.Fatalf("ReadStream(%d, %d): %v", w.from, w.max, err)
		}
		lo := max(w.from, 1) - 1
		hi := min(lo+uint64(w.max), n)
		if lo > n {
			lo = n
		}
		if len(got) != int(hi-lo) {
			t.Fatalf("ReadStream(%d, %d) gave %d events, want %d", w.from, w.max, len(got), hi-lo)
		}
		for i := range got {
			sameEvent(t, got[i], want[int(lo)+i])
		}
	}
}

// header is a store that tells the position of the log's last event: a
// node of a cluster waits for its read models to pass it to read what was
// acknowledged anywhere. Every store here is one.
type header interface {
	Head(ctx context.Context) (event.Position, error)
}

func testHead(t *testing.T, s eventstore.Store, p string) {
	h, ok := s.(header)
	if !ok {
		t.Skip("the store does not tell its head")
	}
	mustAppend(t, s, p+"a", eventstore.NoStream, proposed(2, "a")...)
	got := mustAppend(t, s, p+"b", eventstore.NoStream, proposed(3, "b")...)
	head, err := h.Head(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if last := got[len(got)-1].Position; head != last {
		t.Fatalf("Head is %s, want the last event's position %s", head, last)
	}
}
