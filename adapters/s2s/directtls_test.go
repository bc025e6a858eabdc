package s2s

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

// srvAt is an SRV record for a loopback address.
func srvAt(t *testing.T, addr string, priority uint16) *net.SRV {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return &net.SRV{Target: host + ".", Port: uint16(p), Priority: priority}
}

// Two servers find each other through DNS that offers direct TLS
// (XEP-0368): capulet's pool resolves montague.example, whose best
// record is dead, whose next is direct TLS to montague, and whose
// STARTTLS record (worse) is dead too; montague checks capulet's
// dialback key over direct TLS as well. With self-signed certificates
// they authenticate by dialback, with certificates of a CA both trust by
// SASL EXTERNAL; either way a message is delivered.
func TestDirectTLSBetweenTwoServers(t *testing.T) {
	ca := newCA(t, "Verona CA")
	for _, tc := range []struct {
		name              string
		capulet, montague []func(*Config)
		method            string
		verifies          int32
	}{
		{"dialback", nil, nil, AuthDialback, 1},
		{"EXTERNAL", []func(*Config){withCert(t, ca, "capulet.example", ca)}, []func(*Config){withCert(t, ca, "montague.example", ca)}, AuthExternal, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addrs := map[string]string{}
			at := func(d string) string { return addrs[d] }
			capulet := startPeer(t, "capulet.example", "s3cr3tf0rd14lb4ck", at, tc.capulet...)
			montague := startPeer(t, "montague.example", "d14lb4ck43v3r-montague", at, tc.montague...)
			addrs["capulet.example"] = DirectTLS + capulet.addr
			dead := deadAddr(t)
			dns := srvTable{records: map[string][]*net.SRV{
				"xmpps-server montague.example": {srvAt(t, montague.addr, 5), srvAt(t, dead, 0)},
				"xmpp-server montague.example":  {srvAt(t, dead, 10)},
			}}
			r := Resolver{LookupSRV: dns.lookup(t)}
			var b bounces
			p, err := NewPool(PoolConfig{Config: capulet.cfg, Resolve: r.Resolve, Bounce: b.add})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			p.Send("capulet.example", "montague.example", "<message xmlns='jabber:client' from='juliet@capulet.example/balcony' to='romeo@montague.example'><body>wherefore</body></message>")
			select {
			case d := <-montague.got:
				if d.from.String() != "juliet@capulet.example/balcony" || !strings.Contains(string(d.e.Inner), "wherefore") {
					t.Errorf("delivered %v: %s", d.from, d.e.Inner)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("nothing delivered; bounced %v\ncapulet's log:\n%s", b.all(), capulet.log)
			}
			if got := montague.verifies.Load(); got != tc.verifies {
				t.Errorf("%d dialback keys verified, want %d", got, tc.verifies)
			}
			if log := capulet.log.String(); !strings.Contains(log, "method="+tc.method) || !strings.Contains(log, "addr="+DirectTLS+montague.addr) {
				t.Errorf("capulet did not authenticate with %s at %s:\n%s", tc.method, DirectTLS+montague.addr, log)
			}
			// Montague took the stream, and with dialback capulet took the
			// verification, over direct TLS, ALPN xmpp-server.
			direct := "s2s direct TLS"
			if n := strings.Count(montague.log.String(), direct); n != 1 || !strings.Contains(montague.log.String(), "server_name=montague.example alpn=xmpp-server") {
				t.Errorf("montague took %d direct TLS streams, want 1:\n%s", n, montague.log)
			}
			if n := strings.Count(capulet.log.String(), direct); n != int(tc.verifies) {
				t.Errorf("capulet took %d direct TLS streams, want %d:\n%s", n, tc.verifies, capulet.log)
			}
		})
	}
}

// The one listener takes both: a stream that begins with TLS is secure
// from its header, offers no STARTTLS (XEP-0368 §3: it MUST NOT be used)
// and refuses it; a stream in the clear is offered STARTTLS as before.
// ALPN xmpp-server is chosen; a client that offers only another protocol
// is refused, one that offers none is taken (ALPN is a SHOULD).
func TestDirectTLSAndSTARTTLSOnOnePort(t *testing.T) {
	cfg, addr, _ := hostileTarget(t, nil)
	ctx := context.Background()

	o, err := cfg.open(ctx, DirectTLS+addr, "capulet.example", "montague.example")
	if err != nil {
		t.Fatal(err)
	}
	defer o.c.nc.Close()
	if _, ok := o.features.Named(nsTLS, "starttls"); ok {
		t.Errorf("STARTTLS offered on direct TLS: %s", o.features.Inner)
	}
	if !strings.Contains(string(o.features.Inner), "dialback") {
		t.Errorf("no dialback offered on direct TLS: %s", o.features.Inner)
	}
	if p := o.c.nc.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != alpnServer {
		t.Errorf("ALPN %q, want %q", p, alpnServer)
	}
	o.c.send("<starttls xmlns='" + nsTLS + "'/>")
	if got := streamErrorOf(t, o.c); !strings.Contains(got, "unsupported-stanza-type") {
		t.Errorf("STARTTLS on direct TLS: %s", got)
	}

	// In the clear on the same port: open requires STARTTLS offered.
	plain, err := cfg.open(ctx, addr, "capulet.example", "montague.example")
	if err != nil {
		t.Fatalf("a stream in the clear: %v", err)
	}
	plain.c.nc.Close()
	if p := plain.c.nc.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != "" {
		t.Errorf("ALPN %q after STARTTLS", p)
	}

	for protos, ok := range map[string]bool{"xmpp-client": false, "": true, "h2 xmpp-server": true} {
		tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{InsecureSkipVerify: true, ServerName: "montague.example", NextProtos: strings.Fields(protos)})
		if (err == nil) != ok {
			t.Errorf("ALPN %q: %v, want taken: %v", protos, err, ok)
		}
		if err == nil {
			if p := tc.ConnectionState().NegotiatedProtocol; protos != "" && p != alpnServer {
				t.Errorf("ALPN %q: chose %q", protos, p)
			}
			tc.Close()
		}
	}
}

// A connection is cut at the negotiation timeout however it stalls:
// before its first byte, after a TLS record's first byte, in the middle
// of a handshake it trickles (one deadline covers the first byte and the
// whole handshake), and after the first byte of a stream in the clear.
func TestDirectTLSStalls(t *testing.T) {
	const timeout = 500 * time.Millisecond
	_, addr, _ := hostileTarget(t, func(c *Config) { c.Timeout = timeout })
	for _, tc := range []struct {
		name  string
		sends func(net.Conn)
	}{
		{"nothing", func(net.Conn) {}},
		{"one TLS byte", func(c net.Conn) { c.Write([]byte{tlsHandshakeRecord}) }},
		{"a trickled handshake", func(c net.Conn) {
			// The first byte late, then a record header and the start of
			// a ClientHello, a byte at a time: a deadline of its own for
			// the handshake would cut this at 1.75 timeouts.
			time.Sleep(timeout * 3 / 4)
			for _, b := range []byte{tlsHandshakeRecord, 3, 1, 1, 0, 1, 0, 0, 0xfc, 3, 3} {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(timeout / 4)
			}
		}},
		{"one byte in the clear", func(c net.Conn) { c.Write([]byte("<")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			start := time.Now()
			go tc.sends(nc)
			nc.SetReadDeadline(time.Now().Add(10 * timeout))
			_, err = io.ReadAll(nc)
			took := time.Since(start)
			// Cut: the end of the stream, or a reset when the server
			// closed with bytes of ours unread.
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("not cut: %v after %v", err, took)
			}
			if took < timeout*9/10 || took > timeout*3/2 {
				t.Errorf("cut after %v, want about %v", took, timeout)
			}
		})
	}
}
