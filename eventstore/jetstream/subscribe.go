package jetstream

import (
	"context"
	"errors"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

// subscriptionPage bounds the events one Next returns, and how many the
// subscription decodes ahead of its reader.
const subscriptionPage = 1024

// Subscribe implements eventstore.Store with an ordered consumer: an
// ephemeral consumer that the client recreates from the last stream
// sequence it delivered whenever it sees a gap or misses heartbeats, so
// events arrive once each, in log order, however the servers fail over.
func (s *Store) Subscribe(ctx context.Context, after event.Position) (eventstore.Subscription, error) {
	if s.isClosed() {
		return nil, eventstore.ErrClosed
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{s.logSubj + ".>"}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if !after.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after.Commit+1
	}
	cctx, cancel := s.bound(ctx)
	defer cancel()
	cons, err := s.js.OrderedConsumer(cctx, s.opts.Stream, cfg)
	if err != nil {
		return nil, err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(subscriptionPage))
	if err != nil {
		return nil, err
	}
	sub := &subscription{s: s, it: it, ch: make(chan item, subscriptionPage), closed: make(chan struct{}), exited: make(chan struct{})}
	go sub.pump()
	return sub, nil
}

type item struct {
	e   event.Envelope
	err error
}

type subscription struct {
	s         *Store
	it        jetstream.MessagesContext
	ch        chan item
	closed    chan struct{}
	exited    chan struct{}
	closeOnce sync.Once
	err       error // the pump's last error, once ch is drained
}

// pump decodes messages ahead of Next until the subscription or the store
// closes.
func (sub *subscription) pump() {
	defer close(sub.exited)
	defer close(sub.ch)
	for {
		m, err := sub.it.Next()
		var it item
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			it.err = err
		} else if md, merr := m.Metadata(); merr != nil {
			it.err = merr
		} else {
			it.e, it.err = sub.s.decode(msg{m.Subject(), md.Sequence.Stream, m.Data()})
		}
		select {
		case sub.ch <- it:
		case <-sub.closed:
			return
		}
		if it.err != nil {
			return
		}
	}
}

// Next implements eventstore.Subscription.
func (sub *subscription) Next(ctx context.Context) ([]event.Envelope, error) {
	if sub.err != nil {
		return nil, sub.err
	}
	var first item
	var ok bool
	select {
	case first, ok = <-sub.ch:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-sub.closed:
		return nil, eventstore.ErrClosed
	case <-sub.s.done:
		sub.Close()
		return nil, eventstore.ErrClosed
	}
	if !ok {
		return nil, eventstore.ErrClosed
	}
	if first.err != nil {
		sub.err = first.err
		return nil, first.err
	}
	out := []event.Envelope{first.e}
	for len(out) < subscriptionPage {
		select {
		case it, ok := <-sub.ch:
			if !ok {
				return out, nil
			}
			if it.err != nil {
				sub.err = it.err // after the events before it
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
	sub.closeOnce.Do(func() {
		close(sub.closed)
		sub.it.Stop()
	})
	<-sub.exited
	return nil
}
