package jetstream_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/jetstream"
	"annals.im/annals/eventstore/jetstream/natstest"
)

// Losing the log stream leader's server mid-traffic loses no acknowledged
// event and fails no Append: the other two servers elect a leader, Append
// retries by itself (its IDs make that safe), the subscription goes on,
// and afterwards every acknowledged event is where its Append said, and
// the log verifies. Writers would retry a failed append with the same IDs,
// as callers do, but are not expected to need to. The embedded leader is
// shut down; the Debian one (2.9) is killed with SIGKILL.
func TestLeaderLoss(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { t.Parallel(); testLeaderLoss(t, natstest.Embedded(t, 3)) })
	t.Run("debian", func(t *testing.T) { t.Parallel(); testLeaderLoss(t, natstest.Debian(t, 3)) })
}

func testLeaderLoss(t *testing.T, c *natstest.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := jetstream.Connect(ctx, c.URLs(), jetstream.Options{Stream: "LOSS", Prefix: "loss", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sub, err := s.Subscribe(ctx, event.Position{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	const writers, before, total = 4, 100, 300
	var (
		mu    sync.Mutex
		acked []event.Envelope
		wg    sync.WaitGroup
	)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	retries, errs := 0, map[string]int{}
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for count() < total && ctx.Err() == nil {
				evs := proposed(t, 1+w%2)
				stream := fmt.Sprintf("account-w%d@example.com", w)
				for ctx.Err() == nil {
					out, err := s.Append(ctx, stream, eventstore.Any, evs...)
					if err == nil {
						mu.Lock()
						acked = append(acked, out...)
						mu.Unlock()
						break
					}
					mu.Lock()
					retries++
					errs[err.Error()]++
					mu.Unlock()
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	for count() < before && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	leader, err := c.StreamLeader(ctx, "LOSS")
	if err != nil {
		t.Fatal(err)
	}
	c.Kill(leader)
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("only %d events acknowledged: %v", count(), ctx.Err())
	}
	if now, err := c.StreamLeader(ctx, "LOSS"); err != nil || now == leader {
		t.Fatalf("the stream is led by server %d (%v), the one stopped was %d", now+1, err, leader+1)
	}
	for _, a := range acked {
		got, err := s.ReadStream(ctx, a.Stream, a.Version, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].ID != a.ID || got[0].Position != a.Position || string(got[0].Hash) != string(a.Hash) {
			t.Fatalf("acknowledged %s version %d (%s at %s) is not stored so (found %v)", a.Stream, a.Version, a.ID, a.Position, got)
		}
	}
	// The subscription, whose consumer may have lived on the stopped
	// server, delivered each event once, in log order, acknowledged or
	// not (an append whose ack was lost may be stored: its retry then
	// found it).
	seen := make(map[ulid.ULID]bool)
	var last event.Position
	for len(seen) < len(acked) {
		page, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("subscription after %d events: %v", len(seen), err)
		}
		for _, e := range page {
			if seen[e.ID] || !last.Less(e.Position) {
				t.Fatalf("subscription delivered %s at %s after %s (seen before: %v)", e.ID, e.Position, last, seen[e.ID])
			}
			seen[e.ID] = true
			last = e.Position
		}
	}
	for _, a := range acked {
		if !seen[a.ID] {
			t.Fatalf("subscription missed %s", a.ID)
		}
	}
	rep, err := eventstore.Verify(ctx, s)
	if err != nil {
		t.Fatalf("log after losing the leader does not verify: %v", err)
	}
	if rep.Events != len(acked) {
		t.Fatalf("log holds %d events, %d acknowledged", rep.Events, len(acked))
	}
	// Losing one server of three is invisible to callers: Append rode it
	// out by itself.
	if retries > 0 {
		t.Errorf("%d appends failed while the leader changed: %v", retries, errs)
	}
	t.Logf("%d events acknowledged, %d before server %d (the leader) stopped; %d appends retried after %v", len(acked), before, leader+1, retries, errs)
}
