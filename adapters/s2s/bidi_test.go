package s2s

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// bidiTo collects the Outbounds a server hands for bidi.
func bidiTo(ch chan *Outbound) func(*Config) {
	return func(c *Config) { c.Bidi = func(o *Outbound) { ch <- o } }
}

func handed(t *testing.T, ch chan *Outbound) *Outbound {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(5 * time.Second):
		t.Fatal("no bidi stream handed")
		return nil
	}
}

// With bidi, the stream capulet opens carries montague's stanzas back,
// after EXTERNAL or dialback: montague gets an Outbound for the inverted
// pair, capulet delivers what comes on it, and capulet's listener
// authenticates no stream of montague's. A stanza from another domain on
// it ends the stream, and capulet's Outbound says so.
func TestBidiBothWays(t *testing.T) {
	ca := newCA(t, "Verona CA")
	for _, method := range []string{AuthExternal, AuthDialback} {
		t.Run(method, func(t *testing.T) {
			addrs := map[string]string{}
			at := func(d string) string { return addrs[d] }
			ch := make(chan *Outbound, 4)
			capulet := startPeer(t, "capulet.example", "s3cr3tf0rd14lb4ck", at, withCert(t, ca, "capulet.example", ca))
			montague := startPeer(t, "montague.example", "d14lb4ck43v3r-montague", at, withCert(t, ca, "montague.example", ca), bidiTo(ch),
				func(c *Config) { // for dialback, montague takes no certificate of capulet's
					c.Insecure = func(d string) bool { return method == AuthDialback && d == "capulet.example" }
				})
			addrs["capulet.example"], addrs["montague.example"] = capulet.addr, montague.addr

			out, err := capulet.cfg.Dial(context.Background(), montague.addr, "capulet.example", "montague.example")
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			if out.Auth != method || !out.Bidi {
				t.Fatalf("authenticated with %s, bidi %v", out.Auth, out.Bidi)
			}
			back := handed(t, ch)
			if back.From != "montague.example" || back.To != "capulet.example" || back.Auth != method || !back.Bidi {
				t.Fatalf("handed %+v", back)
			}
			expectDelivery(t, out, montague, "juliet@capulet.example/balcony", "romeo@montague.example")
			expectDelivery(t, back, capulet, "romeo@montague.example/orchard", "juliet@capulet.example")
			if strings.Contains(capulet.log.String(), "peer authenticated") {
				t.Errorf("capulet authenticated an inbound stream:\n%s", capulet.log)
			}

			back.Send("<message xmlns='jabber:server' from='tybalt@verona.example' to='juliet@capulet.example'><body>spoof</body></message>")
			select {
			case <-out.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("a spoofed from did not end the stream")
			}
			nothingDelivered(t, capulet)
			select {
			case <-back.Done(): // montague's server saw its stream end
			case <-time.After(5 * time.Second):
				t.Error("montague's end of the stream is not done")
			}
			if !strings.Contains(capulet.log.String(), "invalid-from") {
				t.Errorf("capulet did not log the refusal:\n%s", capulet.log)
			}
		})
	}
}

// Without Config.Bidi a server does not offer bidi, a sender does not ask
// for it, and a <bidi/> sent anyway ends the stream; a <bidi/> before
// STARTTLS does too, where it is offered.
func TestBidiOnlyWhereOffered(t *testing.T) {
	capulet := startPeer(t, "capulet.example", "s3cr3tf0rd14lb4ck", func(string) string { return "" })
	plain, addr, _ := hostileTarget(t, nil)
	o, err := capulet.cfg.open(context.Background(), addr, "capulet.example", "montague.example")
	if err != nil {
		t.Fatal(err)
	}
	defer o.c.nc.Close()
	if offersBidi(o.features) {
		t.Fatal("bidi offered without Config.Bidi")
	}
	o.c.send("<bidi xmlns='" + nsBidi + "'/>")
	if got := streamErrorOf(t, o.c); !strings.Contains(got, "unsupported-stanza-type") {
		t.Errorf("<bidi/> not offered: %s", got)
	}
	out, err := plain.Dial(context.Background(), addr, "capulet.example", "montague.example")
	if err != nil {
		t.Fatal(err)
	}
	out.Close()
	if out.Bidi {
		t.Error("bidi without the offer")
	}

	_, addr, _ = hostileTarget(t, func(c *Config) { c.Bidi = func(*Outbound) {} })
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := newConn(nc, 1<<20)
	c.header("capulet.example", "montague.example", "")
	if _, _, _, err := c.readHeader(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if f, err := c.next(time.Now().Add(5 * time.Second)); err != nil || !offersBidi(f) {
		t.Fatalf("features before TLS: %v %v", f, err)
	}
	c.send("<bidi xmlns='" + nsBidi + "'/>")
	if got := streamErrorOf(t, c); !strings.Contains(got, "policy-violation") {
		t.Errorf("<bidi/> before STARTTLS: %s", got)
	}
}

// A pool adopts a bidi stream a peer opened: stanzas to the peer go over
// it without a dial; when it ends the pool forgets it, and the next
// stanza dials a stream of its own.
func TestPoolAdoptsBidiStream(t *testing.T) {
	ca := newCA(t, "Verona CA")
	addrs := map[string]string{}
	at := func(d string) string { return addrs[d] }
	var pool atomic.Pointer[Pool]
	capulet := startPeer(t, "capulet.example", "s3cr3tf0rd14lb4ck", at, withCert(t, ca, "capulet.example", ca))
	montague := startPeer(t, "montague.example", "d14lb4ck43v3r-montague", at, withCert(t, ca, "montague.example", ca),
		func(c *Config) { c.Bidi = func(o *Outbound) { pool.Load().Adopt(o) } })
	addrs["capulet.example"], addrs["montague.example"] = capulet.addr, montague.addr
	var dials atomic.Int32
	b := &bounces{}
	pool.Store(poolFor(t, montague, addrs, &dials, b, nil, nil))

	out, err := capulet.cfg.Dial(context.Background(), montague.addr, "capulet.example", "montague.example")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		p := pool.Load()
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.links[pair{"montague.example", "capulet.example"}] != nil
	})
	send := func(body string) {
		pool.Load().Send("montague.example", "capulet.example",
			"<message xmlns='jabber:server' from='romeo@montague.example' to='juliet@capulet.example'><body>"+body+"</body></message>")
		select {
		case d := <-capulet.got:
			if !strings.Contains(string(d.e.Inner), body) {
				t.Errorf("delivered %s, want %s", d.e.Inner, body)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s never arrived (bounced: %v)", body, b.all())
		}
	}
	send("over the bidi stream")
	if n := dials.Load(); n != 0 {
		t.Errorf("%d dials, want none", n)
	}
	out.Close()
	waitFor(t, func() bool {
		p := pool.Load()
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.links[pair{"montague.example", "capulet.example"}] == nil
	})
	send("over a stream of montague's own")
	if n := dials.Load(); n != 1 {
		t.Errorf("%d dials, want 1", n)
	}
	if got := b.all(); len(got) != 0 {
		t.Errorf("bounced %v", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}

// Once a bidi stream was handed for a pair dialback authenticated, SASL
// (which restarts the stream under the pool's stanzas) is refused; the
// stream goes on.
func TestNoSASLAfterDialbackOnBidi(t *testing.T) {
	ca := newCA(t, "Verona CA")
	ch := make(chan *Outbound, 4)
	target, addr, _ := hostileTarget(t, func(c *Config) {
		c.TLS = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "montague.example", nil)}, MinVersion: tls.VersionTLS12}
		c.Roots = ca.pool
		bidiTo(ch)(c)
	})
	client := target
	client.TLS = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "capulet.example", nil)}}
	o, err := client.open(context.Background(), addr, "capulet.example", "montague.example")
	if err != nil {
		t.Fatal(err)
	}
	defer o.c.nc.Close()
	if !offersExternal(o.features) || !offersBidi(o.features) {
		t.Fatal("EXTERNAL and bidi not both offered")
	}
	o.c.send("<bidi xmlns='" + nsBidi + "'/><db:result from='capulet.example' to='montague.example'>00</db:result>")
	if r, err := o.c.next(time.Now().Add(5 * time.Second)); err != nil || r.Attr("type") != "valid" {
		t.Fatalf("dialback: %v %v", r, err)
	}
	handed(t, ch)
	if got, cond := saslAnswer(t, o.c, authEXTERNAL("=")); got != "failure" || cond != "not-authorized" {
		t.Errorf("SASL after dialback on bidi: %s %s", got, cond)
	}
	o.c.send("<db:result from='rooms.capulet.example' to='montague.example'>00</db:result>")
	if r, err := o.c.next(time.Now().Add(5 * time.Second)); err != nil || r.Attr("type") != "valid" {
		t.Fatalf("the stream did not go on: %v %v", r, err)
	}
}
