package jetstream_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/jetstream"
)

// Losing the stream leader's server mid-traffic loses no acknowledged
// event: writers retry what failed with the same IDs (as callers do), the
// other two servers elect a leader, and afterwards every acknowledged
// event is where its Append said, and the log verifies.
func TestLeaderLoss(t *testing.T) {
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := jetstream.Connect(ctx, c.urls(), jetstream.Options{Stream: "LOSS", Prefix: "loss", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const writers, before, total = 4, 100, 300
	var (
		mu    sync.Mutex
		acked []event.Envelope
		wg    sync.WaitGroup
	)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	retries := 0
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
					mu.Unlock()
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	for count() < before && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	var leader int = -1
	for i, srv := range c.servers {
		if srv.JetStreamIsStreamLeader(srv.GlobalAccount().Name, "LOSS") {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatal("no server leads the stream")
	}
	c.servers[leader].Shutdown()
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("only %d events acknowledged: %v", count(), ctx.Err())
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
	rep, err := eventstore.Verify(ctx, s)
	if err != nil {
		t.Fatalf("log after losing the leader does not verify: %v", err)
	}
	if rep.Events != len(acked) {
		t.Fatalf("log holds %d events, %d acknowledged", rep.Events, len(acked))
	}
	t.Logf("%d events acknowledged, %d before server %d (the leader) stopped; %d appends retried", len(acked), before, leader+1, retries)
}
