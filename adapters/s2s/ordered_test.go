package s2s

import (
	"context"
	"encoding/xml"
	"fmt"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
)

// Each sender's stanzas (its resources' together: a room's occupants)
// are delivered in the order sent, while the workers take several
// senders at once.
func TestOrdered(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	got := map[string][]string{}
	busy, most := 0, 0
	deliver := Ordered(ctx, 8, 4, 1<<20, func(from, _ jid.JID, e *stanza.Element) {
		mu.Lock()
		busy++
		most = max(most, busy)
		mu.Unlock()
		time.Sleep(time.Millisecond) // a commit
		mu.Lock()
		defer mu.Unlock()
		busy--
		got[from.Bare().String()] = append(got[from.Bare().String()], e.Attr("id"))
	})
	to := jid.MustParse("juliet@capulet.example")
	senders := []string{"romeo", "mercutio", "benvolio", "tybalt", "paris", "friar", "nurse", "balthasar"}
	for i := range 50 {
		for _, who := range senders {
			from := jid.MustParse(fmt.Sprintf("%s@montague.example/r%d", who, i%3))
			deliver(from, to, &stanza.Element{Attrs: []xml.Attr{{Name: xml.Name{Local: "id"}, Value: fmt.Sprint(i)}}})
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := 0
		for _, ids := range got {
			n += len(ids)
		}
		mu.Unlock()
		if n == 50*len(senders) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d delivered", n, 50*len(senders))
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for who, ids := range got {
		for i, id := range ids {
			if id != fmt.Sprint(i) {
				t.Fatalf("%s's stanza %d arrived as %s", who, i, id)
			}
		}
	}
	if most < 2 {
		t.Errorf("never more than %d stanza handled at once", most)
	}
}

// What waits is bounded in bytes: with the workers stuck, a reader that
// hands over more than maxBytes waits, and is let go when they move on;
// when ctx ends a waiting reader returns.
func TestOrderedBytesBounded(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	release := make(chan struct{})
	var delivered sync.WaitGroup
	deliver := Ordered(ctx, 2, 100, 10_000, func(jid.JID, jid.JID, *stanza.Element) {
		<-release
		delivered.Done()
	})
	big := &stanza.Element{Inner: make([]byte, 4000)}
	to := jid.MustParse("juliet@capulet.example")
	handed := make(chan int, 10)
	go func() {
		for i := range 5 {
			delivered.Add(1)
			deliver(jid.MustParse(fmt.Sprintf("s%d@montague.example", i)), to, big)
			handed <- i
		}
	}()
	for range 2 { // 8,000 bytes fit; the third would make 12,000
		<-handed
	}
	select {
	case i := <-handed:
		t.Fatalf("stanza %d was handed over past the byte bound", i)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	for range 3 {
		select {
		case <-handed:
		case <-time.After(5 * time.Second):
			t.Fatal("a waiting reader was not let go when the workers moved on")
		}
	}
	delivered.Wait()
	// With ctx ended, a reader waiting for room returns.
	stuck := make(chan struct{})
	block := Ordered(ctx, 1, 100, 10_000, func(jid.JID, jid.JID, *stanza.Element) { <-stuck })
	block(to, to, big)
	block(to, to, big)
	done := make(chan struct{})
	go func() { block(to, to, big); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a reader waiting for room did not return when ctx ended")
	}
	close(stuck)
}
