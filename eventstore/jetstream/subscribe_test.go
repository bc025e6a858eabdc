package jetstream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/oklog/ulid/v2"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/jetstream"
)

// A subscription with nothing to read wakes on the tick an Append
// publishes once its append is committed, and without one (a writer that
// died between the two) reads again after PollInterval: an append
// written with no tick arrives within it, not before.
func TestSubscriptionWakes(t *testing.T) {
	p := "wake" + strings.ToLower(ulid.Make().String()[18:])
	opts := jetstream.Options{Stream: strings.ToUpper(p), Prefix: p}
	w := connect(t, opts)
	ctx := context.Background()
	next := func(sub eventstore.Subscription, within time.Duration) ([]event.Envelope, time.Duration) {
		t.Helper()
		began := time.Now()
		nctx, cancel := context.WithTimeout(ctx, within)
		defer cancel()
		evs, err := sub.Next(nctx)
		if err != nil && err != context.DeadlineExceeded {
			t.Fatal(err)
		}
		return evs, time.Since(began)
	}
	// The first read finds nothing; a tick wakes it long before the poll.
	opts.PollInterval = time.Hour
	sub, err := connect(t, opts).Subscribe(ctx, event.Position{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	go func() {
		time.Sleep(100 * time.Millisecond)
		w.Append(ctx, "room-tick@example.com", eventstore.Any, proposed(t, 2)...)
	}()
	if evs, d := next(sub, 5*time.Second); len(evs) != 2 {
		t.Fatalf("after a tick: %d events in %v", len(evs), d)
	}
	// An append with no tick, made while Next waits: this subscription
	// waits an hour...
	// (300ms: after Next's first read, which finds nothing, even on a
	// busy machine.)
	later := func(stream string) {
		go func() { time.Sleep(300 * time.Millisecond); untick(t, p, stream) }()
	}
	later("room-quiet@example.com")
	if evs, _ := next(sub, 1500*time.Millisecond); len(evs) != 0 {
		t.Fatalf("without a tick or a poll: %d events", len(evs))
	}
	if evs, _ := next(sub, time.Second); len(evs) != 1 {
		t.Fatalf("read again: %d events", len(evs))
	}
	// ...one polling every 200ms finds it within about that.
	opts.PollInterval = 200 * time.Millisecond
	polling, err := connect(t, opts).Subscribe(ctx, event.Position{})
	if err != nil {
		t.Fatal(err)
	}
	defer polling.Close()
	if evs, _ := next(polling, 5*time.Second); len(evs) != 3 {
		t.Fatalf("catching up: %d events", len(evs))
	}
	later("room-quiet2@example.com")
	if evs, d := next(polling, 5*time.Second); len(evs) != 1 || d > 1200*time.Millisecond {
		t.Fatalf("polling every 200ms: %d events in %v", len(evs), d)
	}
	// The default interval is a second.
	opts.PollInterval = 0
	dflt, err := connect(t, opts).Subscribe(ctx, event.Position{})
	if err != nil {
		t.Fatal(err)
	}
	defer dflt.Close()
	if evs, _ := next(dflt, 5*time.Second); len(evs) != 4 {
		t.Fatalf("catching up: %d events", len(evs))
	}
	later("room-quiet3@example.com")
	if evs, d := next(dflt, 5*time.Second); len(evs) != 1 || d < 700*time.Millisecond || d > 1800*time.Millisecond {
		t.Fatalf("polling by default: %d events in %v, want one in about a second", len(evs), d)
	}
}

// untick writes a valid one-event append as Append would, but publishes
// no tick.
func untick(t testing.TB, prefix, stream string) {
	t.Helper()
	e := proposed(t, 1)[0]
	e.Stream, e.Version = stream, 1
	e.Hash = event.Chain(nil, e)
	data, _ := json.Marshal([]event.Envelope{e})
	nc, err := nats.Connect(sharedURLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	m := &nats.Msg{Subject: fmt.Sprintf("%s.log.%s.1", prefix, jetstream.Token(stream)), Data: data,
		Header: nats.Header{"Nats-Expected-Last-Subject-Sequence": {"0"}}}
	if r, err := nc.RequestMsg(m, 5*time.Second); err != nil || strings.Contains(string(r.Data), "error") {
		t.Fatalf("append without a tick: %v %s", err, r.Data)
	}
}
