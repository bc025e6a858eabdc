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

// One inbound stream authenticates at most maxDomainsPerStream peer
// domains; the next one ends the stream with policy-violation.
func TestDomainsPerStreamBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Domains: []string{"montague.example"}, Secret: []byte("d14lb4ck43v3r-montague"),
		TLS:       &tls.Config{Certificates: []tls.Certificate{selfSigned(t, "montague.example")}, MinVersion: tls.VersionTLS12},
		ClientTLS: func(string) *tls.Config { return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} },
		// Every key is good here: the bound is what is tested.
		Verify:  func(context.Context, string, string, string, string) (bool, error) { return true, nil },
		Deliver: func(jid.JID, jid.JID, *stanza.Element) {},
		Timeout: 5 * time.Second, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	defer func() { cancel(); <-done }()

	c, _, err := cfg.open(ctx, ln.Addr().String(), "peer0.example", "montague.example")
	if err != nil {
		t.Fatal(err)
	}
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

// Serve returns when its context ends, its open streams closed, however
// idle they are.
func TestServeStopsWithOpenStreams(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(Config{Domains: []string{"montague.example"}, Secret: []byte("d14lb4ck43v3r-montague"),
		TLS:     &tls.Config{Certificates: []tls.Certificate{selfSigned(t, "montague.example")}},
		Verify:  func(context.Context, string, string, string, string) (bool, error) { return false, nil },
		Deliver: func(jid.JID, jid.JID, *stanza.Element) {}, Timeout: time.Minute,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	time.Sleep(50 * time.Millisecond) // accepted
	cancel()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Serve waited for an idle stream's deadline")
	}
}

// Inbound streams are capped per address: one more is refused with
// policy-violation at once, and a slot freed serves the next.
func TestInboundConnectionsCapped(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(Config{Domains: []string{"montague.example"}, Secret: []byte("d14lb4ck43v3r-montague"),
		TLS:     &tls.Config{Certificates: []tls.Certificate{selfSigned(t, "montague.example")}},
		Verify:  func(context.Context, string, string, string, string) (bool, error) { return false, nil },
		Deliver: func(jid.JID, jid.JID, *stanza.Element) {}, Timeout: time.Minute, MaxConnectionsPerIP: 2,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	defer func() { cancel(); <-done }()
	var open []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
	}
	time.Sleep(50 * time.Millisecond) // both accepted
	third, err := net.Dial("tcp", ln.Addr().String())
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
	fourth, err := net.Dial("tcp", ln.Addr().String())
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
	open[1].Close()
}
