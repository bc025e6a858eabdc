package jetstream

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// mux routes the replies to the store's requests from one wildcard
// subscription, made once: a subscription per request would send its
// interest to every server of the cluster and take it back, which costs
// the servers more than the request itself.
type mux struct {
	prefix string // "_INBOX.<unique>."
	sub    *nats.Subscription

	mu      sync.Mutex
	next    uint64
	waiting map[uint64]chan reply // burst -> its replies
}

type reply struct {
	i int
	m *nats.Msg
}

func newMux(nc *nats.Conn) (*mux, error) {
	x := &mux{prefix: nc.NewInbox() + ".", waiting: make(map[uint64]chan reply)}
	sub, err := nc.Subscribe(x.prefix+"*.*", x.route)
	if err != nil {
		return nil, err
	}
	// Replies to a large burst may come faster than route takes them.
	sub.SetPendingLimits(-1, -1)
	x.sub = sub
	return x, nil
}

// route hands a reply to the burst waiting for it; one nobody waits for
// (it came after its burst gave up) is dropped.
func (x *mux) route(m *nats.Msg) {
	burst, i, ok := strings.Cut(strings.TrimPrefix(m.Subject, x.prefix), ".")
	if !ok {
		return
	}
	id, err1 := strconv.ParseUint(burst, 10, 64)
	n, err2 := strconv.Atoi(i)
	if err1 != nil || err2 != nil {
		return
	}
	x.mu.Lock()
	ch := x.waiting[id]
	x.mu.Unlock()
	if ch != nil {
		select {
		case ch <- reply{n, m}:
		default: // more replies than requests: not ours to take
		}
	}
}

// requests sends each of msgs as a request, all at once, and returns the
// replies by index. A reply that has not come within wait (or when ctx
// ends, an error) is nil.
func (s *Store) requests(ctx context.Context, msgs []*nats.Msg, wait time.Duration) ([]*nats.Msg, error) {
	x := s.mux
	ch := make(chan reply, len(msgs))
	x.mu.Lock()
	x.next++
	id := x.next
	x.waiting[id] = ch
	x.mu.Unlock()
	defer func() {
		x.mu.Lock()
		delete(x.waiting, id)
		x.mu.Unlock()
	}()
	base := x.prefix + strconv.FormatUint(id, 10) + "."
	for i, m := range msgs {
		m.Reply = base + strconv.Itoa(i)
		if err := s.nc.PublishMsg(m); err != nil {
			return nil, err
		}
	}
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	out := make([]*nats.Msg, len(msgs))
	for n := 0; n < len(msgs); {
		select {
		case r := <-ch:
			if r.i < len(out) && out[r.i] == nil {
				out[r.i] = r.m
				n++
			}
		case <-rctx.Done():
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			return out, nil
		}
	}
	return out, nil
}
