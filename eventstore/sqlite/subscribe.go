package sqlite

import (
	"context"
	"sync"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// Subscribe implements eventstore.Store.
func (s *Store) Subscribe(ctx context.Context, after event.Position) (eventstore.Subscription, error) {
	return &subscription{s: s, last: after, closed: make(chan struct{})}, nil
}

type subscription struct {
	s         *Store
	last      event.Position
	closed    chan struct{}
	closeOnce sync.Once
}

const subscriptionPage = 1024

func (sub *subscription) Next(ctx context.Context) ([]event.Envelope, error) {
	for {
		// Take the channel before reading, so a commit between the read and
		// the wait still wakes us.
		changed := sub.s.changedCh()
		page, err := sub.s.ReadAll(ctx, sub.last, subscriptionPage)
		if err != nil {
			return nil, err
		}
		if len(page) > 0 {
			sub.last = page[len(page)-1].Position
			return page, nil
		}
		t := time.NewTimer(sub.s.opts.Poll)
		select {
		case <-changed:
		case <-t.C: // another process may have appended
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-sub.closed:
			t.Stop()
			return nil, eventstore.ErrClosed
		case <-sub.s.done:
			t.Stop()
			return nil, eventstore.ErrClosed
		}
		t.Stop()
	}
}

func (sub *subscription) Close() error {
	sub.closeOnce.Do(func() { close(sub.closed) })
	return nil
}
