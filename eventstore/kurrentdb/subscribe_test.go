package kurrentdb

import (
	"context"
	"errors"
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
