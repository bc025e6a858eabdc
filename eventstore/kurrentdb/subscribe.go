package kurrentdb

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// Subscribe implements eventstore.Store with a catch-up subscription to
// $all from after (KurrentDB's positions are exclusive there, as
// Subscription needs), filtered on the server to leave out system events.
// The subscription lives until Close, not until ctx ends: ctx only bounds
// starting it.
func (s *Store) Subscribe(ctx context.Context, after event.Position) (eventstore.Subscription, error) {
	if s.closed.Load() {
		return nil, eventstore.ErrClosed
	}
	life, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel) // until started
	ks, err := s.db.SubscribeToAll(life, kurrentdb.SubscribeToAllOptions{
		From:   fromPosition(after),
		Filter: kurrentdb.ExcludeSystemEventsFilter(),
	})
	if !stop() {
		err = ctx.Err()
	}
	if err != nil {
		if ks != nil {
			ks.Close()
		}
		cancel()
		return nil, s.wrap("subscribe to $all", err)
	}
	sub := &subscription{
		s: s, ks: ks, cancel: cancel, maxBatch: s.opts.MaxBatch, codec: s.opts.Codec,
		items: make(chan item, s.opts.SubscriptionBuffer), done: make(chan struct{}),
	}
	s.mu.Lock()
	if s.subs == nil { // closed meanwhile
		s.mu.Unlock()
		sub.Close()
		return nil, eventstore.ErrClosed
	}
	s.subs[sub] = true
	s.mu.Unlock()
	go sub.pump(after)
	return sub, nil
}

type item struct {
	e   event.Envelope
	err error
}

type subscription struct {
	s        *Store
	ks       *kurrentdb.Subscription
	cancel   context.CancelFunc
	maxBatch int
	items    chan item // from pump; an error is the last item
	done     chan struct{}
	once     sync.Once
	err      error // the error Next returned once, returned ever after
	// held is a batch taken from items that the codec did not open: the
	// next Next opens it again, so that an error opening (a key that
	// could not be read now) loses no event.
	held  []event.Envelope
	codec eventstore.Codec // the store's, when it has one
}

// pump turns the client's stream of subscription messages into envelopes,
// in order, each after the one before.
func (sub *subscription) pump(last event.Position) {
	send := func(it item) bool {
		select {
		case sub.items <- it:
			return true
		case <-sub.done:
			return false
		}
	}
	for {
		m := sub.ks.Recv()
		switch {
		case m.SubscriptionDropped != nil:
			err := m.SubscriptionDropped.Error
			select {
			case <-sub.done:
				err = eventstore.ErrClosed
			default:
				err = sub.s.wrap("subscription to $all dropped", err)
			}
			send(item{err: err})
			return
		case m.EventAppeared != nil:
			r := m.EventAppeared.OriginalEvent()
			pos := toPosition(r.Position)
			// Positions only grow; one not after the last is not new.
			if !last.Less(pos) {
				continue
			}
			last = pos
			if skipped(r) {
				continue
			}
			e, err := toEnvelope(r)
			if err != nil {
				send(item{err: err})
				return
			}
			if !send(item{e: e}) {
				return
			}
		}
		// Checkpoints, caught-up and fell-behind notices carry no event.
	}
}

// Next implements eventstore.Subscription.
func (sub *subscription) Next(ctx context.Context) ([]event.Envelope, error) {
	if sub.held == nil {
		evs, err := sub.take(ctx)
		if err != nil {
			return nil, err
		}
		sub.held = evs
	}
	if sub.codec == nil {
		evs := sub.held
		sub.held = nil
		return evs, nil
	}
	// Opened in a copy: a codec that fails halfway leaves the batch as
	// the log keeps it, to be opened whole next time.
	evs := slices.Clone(sub.held)
	if err := sub.codec.Open(ctx, evs); err != nil {
		return nil, fmt.Errorf("kurrentdb: open: %w", err)
	}
	sub.held = nil
	return evs, nil
}

// take returns the next batch of events as the log keeps them.
func (sub *subscription) take(ctx context.Context) ([]event.Envelope, error) {
	if sub.err != nil {
		return nil, sub.err
	}
	var first item
	select {
	case first = <-sub.items:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-sub.done:
		return nil, eventstore.ErrClosed
	}
	if first.err != nil {
		sub.err = first.err
		return nil, first.err
	}
	out := []event.Envelope{first.e}
	for len(out) < sub.maxBatch {
		select {
		case it := <-sub.items:
			if it.err != nil {
				sub.err = it.err // after this batch
				return out, nil
			}
			out = append(out, it.e)
		default:
			return out, nil
		}
	}
	return out, nil
}

// Close implements eventstore.Subscription.
func (sub *subscription) Close() error {
	sub.once.Do(func() {
		close(sub.done)
		sub.ks.Close()
		sub.cancel()
		sub.s.mu.Lock()
		delete(sub.s.subs, sub)
		sub.s.mu.Unlock()
	})
	return nil
}
