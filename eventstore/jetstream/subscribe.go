package jetstream

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// subscriptionPage bounds the events one Next returns.
const subscriptionPage = 1024

// Subscribe implements eventstore.Store. A subscription holds no state on
// the servers: each Next reads the log after the last event it returned,
// as ReadAll does, and when there is nothing yet waits for a tick (a core
// NATS message each Append publishes on Prefix+".tick" once its append is
// committed) or for Options.PollInterval, whichever comes first. So events
// arrive once each, in log order, and a server's loss costs no more than
// the reads' retries: nothing needs recreating.
func (s *Store) Subscribe(ctx context.Context, after event.Position) (eventstore.Subscription, error) {
	if s.isClosed() {
		return nil, eventstore.ErrClosed
	}
	sub := &subscription{s: s, after: after, wake: make(chan struct{}, 1), closed: make(chan struct{})}
	ns, err := s.nc.Subscribe(s.tickSubj, func(*nats.Msg) { sub.poke() })
	if err != nil {
		return nil, err
	}
	sub.ns = ns
	return sub, nil
}

type subscription struct {
	s         *Store
	after     event.Position // the last event returned
	ns        *nats.Subscription
	wake      chan struct{} // a tick came since the last read
	closed    chan struct{}
	closeOnce sync.Once
}

func (sub *subscription) poke() {
	select {
	case sub.wake <- struct{}{}:
	default:
	}
}

// Next implements eventstore.Subscription.
func (sub *subscription) Next(ctx context.Context) ([]event.Envelope, error) {
	poll := time.NewTimer(sub.s.opts.PollInterval)
	defer poll.Stop()
	for attempt := 0; ; {
		select {
		case <-sub.closed:
			return nil, eventstore.ErrClosed
		default:
		}
		evs, err := sub.s.ReadAll(ctx, sub.after, subscriptionPage)
		switch {
		case err == nil && len(evs) > 0:
			sub.after = evs[len(evs)-1].Position
			return evs, nil
		case errors.Is(err, eventstore.ErrClosed):
			sub.Close()
			return nil, err
		case err != nil && ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil && !transient(err):
			return nil, err
		case err != nil:
			// The servers are electing a leader: read again soon.
			backoff(ctx, attempt)
			attempt++
			continue
		}
		attempt = 0
		select {
		case <-sub.wake:
		case <-poll.C:
			poll.Reset(sub.s.opts.PollInterval)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-sub.closed:
			return nil, eventstore.ErrClosed
		case <-sub.s.done:
			sub.Close()
			return nil, eventstore.ErrClosed
		}
	}
}

// Close implements eventstore.Subscription.
func (sub *subscription) Close() error {
	sub.closeOnce.Do(func() {
		close(sub.closed)
		sub.ns.Unsubscribe()
	})
	return nil
}
