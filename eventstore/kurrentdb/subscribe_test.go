package kurrentdb

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// Next batches what the pump has received, at most maxBatch at a time, and
// passes on the pump's error after the events before it. The pump itself
// reads from a server and runs only in TestConformance.
func TestNextBatches(t *testing.T) {
	t.Parallel()
	dropped := errors.New("dropped")
	tests := []struct {
		name     string
		maxBatch int
		queued   int   // events the pump has sent
		err      error // then this
		want     []int // batch sizes, then the error
	}{
		{"one", 4, 1, nil, []int{1}},
		{"bounded by maxBatch", 4, 10, nil, []int{4, 4, 2}},
		{"error after the events", 4, 6, dropped, []int{4, 2}},
		{"error first", 4, 0, dropped, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// given
			sub := &subscription{maxBatch: tc.maxBatch, items: make(chan item, tc.queued+1), done: make(chan struct{})}
			for i := 0; i < tc.queued; i++ {
				sub.items <- item{e: event.Envelope{Version: uint64(i + 1)}}
			}
			if tc.err != nil {
				sub.items <- item{err: tc.err}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			// when, then
			next := uint64(1)
			for _, n := range tc.want {
				page, err := sub.Next(ctx)
				if err != nil || len(page) != n {
					t.Fatalf("Next = %d events, %v; want %d", len(page), err, n)
				}
				for _, e := range page {
					if e.Version != next {
						t.Fatalf("got version %d, want %d", e.Version, next)
					}
					next++
				}
			}
			_, err := sub.Next(ctx)
			want := tc.err
			if want == nil {
				want = context.DeadlineExceeded
			}
			if !errors.Is(err, want) {
				t.Fatalf("Next after the events: %v, want %v", err, want)
			}
			if tc.err != nil { // a dropped subscription stays dropped
				if _, again := sub.Next(context.Background()); !errors.Is(again, tc.err) {
					t.Fatalf("Next again: %v, want %v", again, tc.err)
				}
			}
		})
	}
}

func TestNextAfterClose(t *testing.T) {
	t.Parallel()
	sub := &subscription{maxBatch: 1, items: make(chan item), done: make(chan struct{})}
	close(sub.done)
	if _, err := sub.Next(context.Background()); !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("Next on a closed subscription: %v, want ErrClosed", err)
	}
}

// failOnce fails its first Open after changing the first event, then
// opens by setting Data to "opened"; it refuses what is not "sealed".
type failOnce struct{ calls int }

func (f *failOnce) Seal(_ context.Context, evs []event.Envelope) ([]event.Envelope, error) {
	return evs, nil
}

func (f *failOnce) Open(_ context.Context, evs []event.Envelope) error {
	f.calls++
	for _, e := range evs {
		if string(e.Data) != `"sealed"` {
			return fmt.Errorf("given %s to open", e.Data)
		}
	}
	for i := range evs {
		evs[i].Data = []byte(`"opened"`)
		if f.calls == 1 {
			return errors.New("a key could not be read now")
		}
	}
	return nil
}

// A batch the codec fails to open is neither handed out half opened nor
// lost: the next Next opens the same events, as the log keeps them.
func TestNextOpens(t *testing.T) {
	t.Parallel()
	c := &failOnce{}
	sub := &subscription{maxBatch: 4, items: make(chan item, 4), done: make(chan struct{}), codec: c}
	for i := range 3 {
		sub.items <- item{e: event.Envelope{Version: uint64(i + 1), Data: []byte(`"sealed"`)}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if page, err := sub.Next(ctx); err == nil {
		t.Fatalf("Next with a failing codec: %d events, no error", len(page))
	}
	page, err := sub.Next(ctx)
	if err != nil || len(page) != 3 {
		t.Fatalf("Next after the codec recovers: %d events, %v; want 3", len(page), err)
	}
	for i, e := range page {
		if e.Version != uint64(i+1) || string(e.Data) != `"opened"` {
			t.Fatalf("event %d: version %d, data %s", i, e.Version, e.Data)
		}
	}
	if c.calls != 2 {
		t.Fatalf("the codec opened %d times, want 2", c.calls)
	}
}
