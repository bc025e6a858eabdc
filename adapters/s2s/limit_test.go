package s2s

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
)

// The bucket lets a burst through at once, then the rate; one stanza past
// them ends the stream with policy-violation.
func TestLimiter(t *testing.T) {
	l := newLimiter(10, 5)
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		if err := l.take(now); err != nil {
			t.Fatalf("stanza %d of the burst refused: %v", i, err)
		}
	}
	var se *streamError
	if err := l.take(now); !errors.As(err, &se) || se.cond != "policy-violation" {
		t.Fatalf("past the burst: %v, want policy-violation", err)
	}
	now = now.Add(100 * time.Millisecond) // one more at 10 per second
	if err := l.take(now); err != nil {
		t.Fatalf("after 100 ms at 10/s: %v", err)
	}
	if err := l.take(now); err == nil {
		t.Fatal("a second one within the same 100 ms went through")
	}
	now = now.Add(time.Hour) // refills to the burst, no further
	for i := range 5 {
		if err := l.take(now); err != nil {
			t.Fatalf("stanza %d after an hour: %v", i, err)
		}
	}
	if err := l.take(now); err == nil {
		t.Fatal("the bucket held more than its burst")
	}
}

// A peer that sends stanzas faster than the bound has its stream ended
// with policy-violation once the burst is spent; what came before is
// delivered, and another stream of the same peer is served.
func TestHostilePeerFlood(t *testing.T) {
	var delivered atomic.Int64
	cfg, addr, _ := hostileTarget(t, func(c *Config) {
		c.MaxStanzaRate, c.StanzaBurst = 50, 100
		c.Deliver = func(_, _ jid.JID, _ *stanza.Element) { delivered.Add(1) }
	})
	c := authenticated(t, cfg, addr)
	go func() {
		for range 5000 {
			if c.send("<message from='a@capulet.example' to='b@montague.example'><body>flood</body></message>") != nil {
				return
			}
		}
	}()
	if got := streamErrorOf(t, c); !strings.Contains(got, "policy-violation") {
		t.Fatalf("a flood: stream error %s, want policy-violation", got)
	}
	if n := delivered.Load(); n < 100 || n > 200 {
		t.Errorf("%d stanzas of the flood delivered; want the burst (100) and what the rate allowed meanwhile", n)
	}
	other := authenticated(t, cfg, addr)
	before := delivered.Load()
	other.send("<message from='a@capulet.example' to='b@montague.example'><body>calm</body></message>")
	deadline := time.Now().Add(5 * time.Second)
	for delivered.Load() == before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if delivered.Load() == before {
		t.Error("a calm stream of the same peer was not served after the flood")
	}
}

// A stream that authenticated a domain may stay quiet between bursts for
// IdleTimeout; one that did not is cut off after a negotiation step's
// Timeout.
func TestInboundIdle(t *testing.T) {
	delivered := make(chan string, 1)
	cfg, addr, _ := hostileTarget(t, func(c *Config) {
		c.Timeout, c.IdleTimeout = 300*time.Millisecond, 5*time.Second
		c.Deliver = func(_, _ jid.JID, e *stanza.Element) { delivered <- e.Attr("id") }
	})
	c := authenticated(t, cfg, addr)
	time.Sleep(900 * time.Millisecond) // three negotiation timeouts
	c.send("<message from='a@capulet.example' to='b@montague.example' id='after-a-pause'/>")
	select {
	case id := <-delivered:
		if id != "after-a-pause" {
			t.Fatalf("delivered %s", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an authenticated stream was cut off while quiet for less than IdleTimeout")
	}
	o, err := cfg.open(context.Background(), addr, "capulet.example", "montague.example")
	if err != nil {
		t.Fatal(err)
	}
	defer o.c.nc.Close()
	if _, err := o.c.next(time.Now().Add(5 * time.Second)); err == nil {
		t.Fatal("a stream that never authenticated was kept past Timeout")
	}
}
