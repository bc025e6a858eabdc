package s2s

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
)

// hostileTarget starts montague.example, which takes every dialback key
// (what these tests probe is what comes after), adjusted by tweak; it
// returns the config a client of it can open streams with, its address,
// and a stop that waits for Serve to return.
func hostileTarget(t *testing.T, tweak func(*Config)) (Config, string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Domains: []string{"montague.example"}, Secret: []byte("d14lb4ck43v3r-montague"),
		TLS:       &tls.Config{Certificates: []tls.Certificate{selfSigned(t, "montague.example")}, MinVersion: tls.VersionTLS12},
		ClientTLS: func(string) *tls.Config { return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} },
		Verify:    func(context.Context, string, string, string, string) (bool, error) { return true, nil },
		Deliver:   func(jid.JID, jid.JID, *stanza.Element) {},
		Timeout:   5 * time.Second, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	var once bool
	stop := func() {
		if !once {
			once = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return cfg, ln.Addr().String(), stop
}

// authenticated opens a stream to addr that authenticated
// capulet.example.
func authenticated(t *testing.T, cfg Config, addr string) *conn {
	t.Helper()
	o, err := cfg.open(context.Background(), addr, "capulet.example", "montague.example")
	if err != nil {
		t.Fatal(err)
	}
	c := o.c
	t.Cleanup(func() { c.nc.Close() })
	c.send("<db:result from='capulet.example' to='montague.example'>00</db:result>")
	if r, err := c.next(time.Now().Add(5 * time.Second)); err != nil || r.Attr("type") != "valid" {
		t.Fatalf("dialback: %v %v", r, err)
	}
	return c
}

// streamErrorOf reads until the stream error the server ends with.
func streamErrorOf(t *testing.T, c *conn) string {
	t.Helper()
	for {
		e, err := c.next(time.Now().Add(5 * time.Second))
		if err != nil {
			t.Fatalf("no stream error: %v", err)
		}
		if e.XMLName.Local == "error" && e.XMLName.Space == nsStream {
			return string(e.Inner)
		}
	}
}

// One inbound stream authenticates at most maxDomainsPerStream peer
// domains; the next one ends the stream with policy-violation.
func TestDomainsPerStreamBounded(t *testing.T) {
	cfg, addr, _ := hostileTarget(t, nil)
	o, err := cfg.open(context.Background(), addr, "peer0.example", "montague.example")
	if err != nil {
		t.Fatal(err)
	}
	c := o.c
	defer c.nc.Close()
	var last *stanza.Element
	for i := range maxDomainsPerStream + 1 {
		if err := c.send(fmt.Sprintf("<db:result from='peer%d.example' to='montague.example'>00</db:result>", i)); err != nil {
			t.Fatal(err)
		}
		if last, err = c.next(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if i < maxDomainsPerStream && last.Attr("type") != "valid" {
			t.Fatalf("domain %d: %s %s", i, last.XMLName.Local, last.Attr("type"))
		}
	}
	if last.XMLName.Local != "error" || !strings.Contains(string(last.Inner), "policy-violation") {
		t.Fatalf("past the bound: %s %s", last.XMLName.Local, last.Inner)
	}
}

// What an authenticated peer sends is held to the same rules as a
// client's: a stanza past MaxStanza, XML that is not namespace-well-formed
// and a stanza to a domain the server does not serve each end the
// stream with their condition, and nothing of them is delivered.
func TestHostilePeerStanzas(t *testing.T) {
	delivered := make(chan string, 4)
	cfg, addr, _ := hostileTarget(t, func(c *Config) {
		c.MaxStanza = 4096
		c.Deliver = func(_, _ jid.JID, e *stanza.Element) { delivered <- string(e.Inner) }
	})
	for _, tc := range []struct{ name, stanza, cond string }{
		{"oversized", "<message from='a@capulet.example' to='b@montague.example'><body>" + strings.Repeat("x", 8192) + "</body></message>", "policy-violation"},
		{"undeclared prefix", "<message from='a@capulet.example' to='b@montague.example'><foo:bar/></message>", "not-well-formed"},
		{"not ours", "<message from='a@capulet.example' to='b@verona.example'><body>hi</body></message>", "host-unknown"},
		{"not authenticated", "<message from='a@tybalt.example' to='b@montague.example'><body>hi</body></message>", "invalid-from"},
	} {
		c := authenticated(t, cfg, addr)
		c.send(tc.stanza)
		if got := streamErrorOf(t, c); !strings.Contains(got, tc.cond) {
			t.Errorf("%s: stream error %s, want %s", tc.name, got, tc.cond)
		}
	}
	// A stanza that never ends is cut off after MaxStanza and the reader's
	// read-ahead, not read into memory for as long as the peer sends.
	c := authenticated(t, cfg, addr)
	go func() {
		c.send("<message from='a@capulet.example' to='b@montague.example'><body>")
		chunk := strings.Repeat("y", 64<<10)
		for range 1024 { // 64 MiB, if the server kept reading
			if c.send(chunk) != nil {
				return
			}
		}
	}()
	if got := streamErrorOf(t, c); !strings.Contains(got, "policy-violation") {
		t.Errorf("a stanza without end: %s", got)
	}
	select {
	case d := <-delivered:
		t.Errorf("delivered %q", d)
	default:
	}
}

// Serve returns when its context ends, its open streams closed, however
// idle they are.
func TestServeStopsWithOpenStreams(t *testing.T) {
	_, addr, stop := hostileTarget(t, func(c *Config) { c.Timeout = time.Minute })
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	time.Sleep(50 * time.Millisecond) // accepted
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(3 * time.Second):
		t.Fatal("Serve waited for an idle stream's deadline")
	}
}

// Inbound streams are capped per address: one more is refused with
// policy-violation at once, and a slot freed serves the next.
func TestInboundConnectionsCapped(t *testing.T) {
	_, addr, _ := hostileTarget(t, func(c *Config) { c.Timeout, c.MaxConnectionsPerIP = time.Minute, 2 })
	var open []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		open = append(open, c)
	}
	time.Sleep(50 * time.Millisecond) // both accepted
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	third.SetReadDeadline(time.Now().Add(3 * time.Second))
	got, _ := io.ReadAll(third)
	if !strings.Contains(string(got), "policy-violation") {
		t.Fatalf("the third connection from one address: %q", got)
	}
	open[0].Close()
	time.Sleep(50 * time.Millisecond) // released
	fourth, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer fourth.Close()
	fourth.Write([]byte("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='montague.example' version='1.0'>"))
	fourth.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 4096)
	n, _ := fourth.Read(buf)
	if !strings.Contains(string(buf[:n]), "stream:stream") || strings.Contains(string(buf[:n]), "policy-violation") {
		t.Fatalf("after a slot was freed: %q", buf[:n])
	}
}
