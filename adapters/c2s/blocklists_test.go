package c2s

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/domain/account"
	"annals.im/annals/domain/blocking"
	"annals.im/annals/domain/event"
)

// The lists held are bounded in number and in bytes, however many
// accounts are asked about.
func TestBlockListsBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	heavy := blocking.State{JIDs: []string{strings.Repeat("x", 500) + ".example"}}
	for _, tc := range []struct {
		name          string
		max, maxBytes int
		list          blocking.State
	}{
		{"lists", 8, 1 << 20, blocking.State{}},
		{"bytes", 1000, 2000, heavy},
	} {
		l := newBlockLists(func(context.Context, string) (blocking.State, error) { return tc.list, nil })
		l.max, l.maxBytes = tc.max, tc.maxBytes
		for i := range 100 {
			if _, err := l.get(ctx, fmt.Sprintf("u%d@localhost", i)); err != nil {
				t.Fatal(err)
			}
			if n, b := l.held(); n > l.max || b > l.maxBytes || n == 0 {
				t.Fatalf("%s: after %d accounts, %d lists of %d bytes held", tc.name, i+1, n, b)
			}
		}
	}
	if l := newBlockLists(nil); l.max != maxBlockLists || l.maxBytes != maxBlockListBytes {
		t.Fatalf("default bounds %d and %d", l.max, l.maxBytes)
	}
}

// A held list costs no read; it follows the log and this process's
// commands, whichever says a change first, never going back to an older
// list; each incarnation starts empty; and a list the log changed while it
// was being read comes out current.
func TestBlockListsFollow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var reads atomic.Int64
	slow := make(chan struct{})
	l := newBlockLists(func(_ context.Context, acct string) (blocking.State, error) {
		reads.Add(1)
		if acct == "romeo@localhost" {
			<-slow
		}
		return blocking.State{}, nil
	})
	ids := event.NewIDs()
	ev := func(acct string, version uint64, cmd blocking.Command, st blocking.State) (event.Envelope, blocking.State) {
		evs, err := blocking.Decide(st, cmd, ids, time.Now(), "test")
		if err != nil || len(evs) != 1 {
			t.Fatal(evs, err)
		}
		evs[0].Stream, evs[0].Version = account.StreamOf(acct), version
		after, err := blocking.Evolve(st, evs[0])
		if err != nil {
			t.Fatal(err)
		}
		return evs[0], after
	}
	const juliet = "juliet@localhost"
	e1, s1 := ev(juliet, 2, blocking.Block{JIDs: []string{"romeo@localhost"}}, blocking.State{})
	e2, s2 := ev(juliet, 3, blocking.Block{JIDs: []string{"tybalt@localhost"}}, s1)
	e3, s3 := ev(juliet, 4, blocking.Unblock{JIDs: []string{"romeo@localhost"}}, s2)
	l.fold(e1) // not held: nothing to do
	if _, err := l.get(ctx, juliet); err != nil || reads.Load() != 1 {
		t.Fatalf("first use: %v, %d reads", err, reads.Load())
	}
	l.fold(e1)
	if st, _ := l.get(ctx, juliet); len(st.JIDs) != 1 || st.Version != 2 || reads.Load() != 1 {
		t.Fatalf("after a fold: %+v, %d reads", st, reads.Load())
	}
	l.set(juliet, s3) // a command here, before the log says so
	l.set(juliet, s1) // an older answer, late
	if st, _ := l.get(ctx, juliet); len(st.JIDs) != 1 || st.JIDs[0] != "tybalt@localhost" {
		t.Fatalf("after a command, and an older one late: %+v", st)
	}
	for _, e := range []event.Envelope{e1, e2, e3} {
		l.fold(e) // the log catches up, the first one again
	}
	if st, _ := l.get(ctx, juliet); len(st.JIDs) != 1 || st.JIDs[0] != "tybalt@localhost" || st.Version != 4 || reads.Load() != 1 {
		t.Fatalf("after a command and its events: %+v, %d reads", st, reads.Load())
	}
	l.fold(event.Envelope{Stream: account.StreamOf(juliet), Version: 5, Type: account.TypeCreated})
	l.fold(e2) // of the earlier incarnation
	if st, _ := l.get(ctx, juliet); len(st.JIDs) != 0 {
		t.Fatalf("a new incarnation: %+v", st)
	}

	got := make(chan blocking.State)
	go func() { st, _ := l.get(ctx, "romeo@localhost"); got <- st }()
	for reads.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	r1, _ := ev("romeo@localhost", 1, blocking.Block{JIDs: []string{juliet}}, blocking.State{})
	l.fold(r1) // while the read is under way
	close(slow)
	if st := <-got; len(st.JIDs) != 1 || st.JIDs[0] != juliet {
		t.Fatalf("a list read while the log moved on: %+v", st)
	}
}

// BenchmarkBlockCheck is what each stanza pays for a list held: the
// lookup of a list of 1000 JIDs and the match, from every core at once.
func BenchmarkBlockCheck(b *testing.B) {
	var jids []string
	for i := range 1000 {
		jids = append(jids, fmt.Sprintf("u%d@spam%d.example", i, i))
	}
	evs, _ := blocking.Decide(blocking.State{}, blocking.Block{JIDs: jids}, event.NewIDs(), time.Now(), "b")
	evs[0].Version = 1
	st, _ := blocking.Evolve(blocking.State{}, evs[0])
	l := newBlockLists(func(context.Context, string) (blocking.State, error) { return st, nil })
	from := jid.MustParse("romeo@montague.example/orchard")
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s, _ := l.get(ctx, "juliet@localhost")
			if s.Blocks(from) {
				b.Fatal("blocked")
			}
		}
	})
}
