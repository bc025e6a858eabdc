package s2s

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// bounces records what a pool bounced.
type bounces struct {
	mu  sync.Mutex
	got []string // "cond stanza"
}

func (b *bounces) add(stanza, cond string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got = append(b.got, cond+" "+stanza)
}

func (b *bounces) all() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.got...)
}

// poolFor is a pool sending as capulet, resolving with addrs and counting
// its dials; a resolution waits for gate, if one is given.
func poolFor(t *testing.T, capulet *peer, addrs map[string]string, dials *atomic.Int32, b *bounces, gate chan struct{}, tweak func(*PoolConfig)) *Pool {
	t.Helper()
	cfg := PoolConfig{Config: capulet.cfg, Bounce: b.add,
		Resolve: func(_ context.Context, d string) ([]string, error) {
			if gate != nil {
				<-gate
			}
			dials.Add(1)
			if a, ok := addrs[d]; ok {
				return []string{a}, nil
			}
			return nil, fmt.Errorf("no server for %s", d)
		}}
	if tweak != nil {
		tweak(&cfg)
	}
	p, err := NewPool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// Stanzas to one domain share one stream, arrive in the order sent, those
// sent while it was being set up included; an idle stream is closed and
// the next stanza opens another.
func TestPoolReusesOneStreamInOrder(t *testing.T) {
	addrs := map[string]string{}
	at := func(d string) string { return addrs[d] }
	capulet := startPeer(t, "capulet.example", "s3cr3tf0rd14lb4ck", at)
	montague := startPeer(t, "montague.example", "d14lb4ck43v3r-montague", at)
	addrs["capulet.example"], addrs["montague.example"] = capulet.addr, montague.addr
	montague.got = make(chan delivered, 64)
	var dials atomic.Int32
	var b bounces
	p := poolFor(t, capulet, addrs, &dials, &b, nil, func(c *PoolConfig) { c.IdleTimeout = 300 * time.Millisecond })
	for i := range 20 {
		p.Send("capulet.example", "montague.example",
			fmt.Sprintf("<message xmlns='jabber:server' from='juliet@capulet.example' to='romeo@montague.example' id='m%d'/>", i))
	}
	for i := range 20 {
		select {
		case d := <-montague.got:
			if id := d.e.Attr("id"); id != fmt.Sprintf("m%d", i) {
				t.Fatalf("message %d arrived as %s", i, id)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d never arrived; bounced %v", i, b.all())
		}
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d streams for one pair", n)
	}
	time.Sleep(600 * time.Millisecond) // past the idle timeout
	p.Send("capulet.example", "montague.example", "<message xmlns='jabber:server' from='juliet@capulet.example' to='romeo@montague.example' id='later'/>")
	select {
	case d := <-montague.got:
		if d.e.Attr("id") != "later" {
			t.Errorf("got %s", d.e.Attr("id"))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stanza after the idle close never arrived")
	}
	if n := dials.Load(); n != 2 {
		t.Errorf("%d streams opened; want a second after the idle close", n)
	}
	if got := b.all(); len(got) != 0 {
		t.Errorf("bounced %v", got)
	}
}

// What cannot be sent is bounced with the condition its sender gets: an
// unreachable or refusing peer remote-server-not-found, too much waiting
// resource-constraint.
func TestPoolBounces(t *testing.T) {
	addrs := map[string]string{}
	at := func(d string) string { return addrs[d] }
	capulet := startPeer(t, "capulet.example", "s3cr3tf0rd14lb4ck", at)
	addrs["capulet.example"] = capulet.addr
	addrs["closed.example"] = "127.0.0.1:1" // nobody listens there
	var dials atomic.Int32
	var b bounces
	gate := make(chan struct{}) // the streams are being set up until every stanza is sent
	p := poolFor(t, capulet, addrs, &dials, &b, gate, func(c *PoolConfig) { c.MaxQueue = 3 })
	for i := range 5 {
		p.Send("capulet.example", "closed.example", fmt.Sprintf("<message id='c%d'/>", i))
	}
	p.Send("capulet.example", "nowhere.example", "<message id='n0'/>")
	close(gate)
	deadline := time.Now().Add(5 * time.Second)
	for len(b.all()) < 6 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	got := strings.Join(b.all(), "\n")
	for _, want := range []string{
		"resource-constraint <message id='c3'/>", "resource-constraint <message id='c4'/>",
		"remote-server-not-found <message id='c0'/>", "remote-server-not-found <message id='c2'/>",
		"remote-server-not-found <message id='n0'/>",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("bounces lack %q:\n%s", want, got)
		}
	}
}

func TestServerNamespace(t *testing.T) {
	for in, want := range map[string]string{
		"<message xmlns='jabber:client' to='a@b'><body>x</body></message>":                                               "<message xmlns='jabber:server' to='a@b'><body>x</body></message>",
		"<iq type='result' id='1' to='a@b/c'/>":                                                                          "<iq type='result' id='1' to='a@b/c'/>",
		"<message to='a@b'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'/></forwarded></message>": "<message to='a@b'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'/></forwarded></message>",
		"<presence xmlns='jabber:client' from='x&apos; xmlns=&apos;jabber:client'/>":                                     "<presence xmlns='jabber:server' from='x&apos; xmlns=&apos;jabber:client'/>",
	} {
		if got := ServerNamespace(in); got != want {
			t.Errorf("ServerNamespace(%s)\n = %s\nwant %s", in, got, want)
		}
	}
}

// A peer that stops reading holds up nobody: Send only queues, whatever
// the peer does, and past the pair's bound what is sent is bounced
// resource-constraint, while a pair with another peer goes on.
func TestPoolSlowPeerBlocksNobody(t *testing.T) {
	addrs := map[string]string{}
	at := func(d string) string { return addrs[d] }
	capulet := startPeer(t, "capulet.example", "s3cr3tf0rd14lb4ck", at)
	stuck := startPeer(t, "montague.example", "d14lb4ck43v3r-montague", at) // nobody drains its deliveries
	other := startPeer(t, "verona.example", "v3r0n4-d14lb4ck-s3cr3t", at)
	addrs["capulet.example"], addrs["montague.example"], addrs["verona.example"] = capulet.addr, stuck.addr, other.addr
	other.got = make(chan delivered, 1)
	// At the end its stream is let go, so that its server can stop.
	t.Cleanup(func() {
		go func() {
			for range stuck.got {
			}
		}()
	})
	var dials atomic.Int32
	var b bounces
	p := poolFor(t, capulet, addrs, &dials, &b, nil, func(c *PoolConfig) { c.MaxQueueBytes = 1 << 20 })
	body := strings.Repeat("x", 16<<10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 { // 32 MiB, more than the socket buffers and the queue
			p.Send("capulet.example", "montague.example",
				fmt.Sprintf("<message xmlns='jabber:server' from='juliet@capulet.example' to='romeo@montague.example' id='s%d'><body>%s</body></message>", i, body))
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second): // a blocked write waits 30 s
		t.Fatal("Send blocked on a peer that does not read")
	}
	if got := strings.Join(b.all(), "\n"); !strings.Contains(got, "resource-constraint") {
		t.Errorf("nothing bounced resource-constraint for a peer that does not read")
	}
	p.Send("capulet.example", "verona.example", "<message xmlns='jabber:server' from='juliet@capulet.example' to='friar@verona.example' id='v'/>")
	select {
	case d := <-other.got:
		if d.e.Attr("id") != "v" {
			t.Errorf("verona got %s", d.e.Attr("id"))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("another peer was not served while one was stuck")
	}
}

// Close lets what waits go out before the streams end (a stopping
// server's last unavailable presences), and bounces what comes after.
func TestPoolCloseDrains(t *testing.T) {
	addrs := map[string]string{}
	at := func(d string) string { return addrs[d] }
	capulet := startPeer(t, "capulet.example", "s3cr3tf0rd14lb4ck", at)
	montague := startPeer(t, "montague.example", "d14lb4ck43v3r-montague", at)
	addrs["capulet.example"], addrs["montague.example"] = capulet.addr, montague.addr
	montague.got = make(chan delivered, 64)
	var dials atomic.Int32
	var b bounces
	p := poolFor(t, capulet, addrs, &dials, &b, nil, nil)
	for i := range 50 {
		p.Send("capulet.example", "montague.example",
			fmt.Sprintf("<presence xmlns='jabber:server' type='unavailable' from='juliet@capulet.example/%d' to='romeo@montague.example'/>", i))
	}
	p.Close()
	p.Send("capulet.example", "montague.example", "<message xmlns='jabber:server' from='juliet@capulet.example' to='romeo@montague.example' id='late'/>")
	for i := range 50 {
		select {
		case d := <-montague.got:
			if want := fmt.Sprintf("juliet@capulet.example/%d", i); d.from.String() != want {
				t.Fatalf("stanza %d came from %s", i, d.from)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("stanza %d of those queued before Close never arrived; bounced %v", i, b.all())
		}
	}
	if got := b.all(); len(got) != 1 || !strings.Contains(got[0], "id='late'") {
		t.Errorf("bounced %v; want only the stanza sent after Close", got)
	}
}

// A peer that takes the connection and then says nothing is
// remote-server-timeout once the negotiation's time is up, not
// remote-server-not-found (the connect itself succeeded).
func TestPoolSilentPeerTimesOut(t *testing.T) {
	addrs := map[string]string{}
	at := func(d string) string { return addrs[d] }
	capulet := startPeer(t, "capulet.example", "s3cr3tf0rd14lb4ck", at)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, silent, until the test ends
		}
	}()
	addrs["silent.example"] = ln.Addr().String()
	var dials atomic.Int32
	var b bounces
	p := poolFor(t, capulet, addrs, &dials, &b, nil, func(c *PoolConfig) { c.Timeout = 300 * time.Millisecond })
	p.Send("capulet.example", "silent.example", "<message id='s0'/>")
	deadline := time.Now().Add(5 * time.Second)
	for len(b.all()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := b.all(); len(got) != 1 || !strings.HasPrefix(got[0], "remote-server-timeout ") {
		t.Fatalf("bounced %v; want remote-server-timeout", got)
	}
}
