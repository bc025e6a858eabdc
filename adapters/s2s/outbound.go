package s2s

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"annals.im/annals/adapters/stanza"
)

// Outbound is an authenticated stream to another server, for stanzas
// from one of our domains to one of its: one we opened, or, with bidi,
// one the peer opened to us (Config.Bidi).
type Outbound struct {
	From, To string // our domain, theirs
	// Auth is how the stream authenticated the pair: AuthExternal (SASL
	// EXTERNAL with a certificate) or AuthDialback.
	Auth string
	// Bidi: the stream carries stanzas both ways (XEP-0288). On a stream
	// we opened, what the peer sends from To to From goes to
	// Config.Deliver.
	Bidi bool

	mu     sync.Mutex
	c      *conn
	closed bool
	limit  *limiter // what the peer sends back with bidi; its reader's
	done   chan struct{}
	once   sync.Once
}

func newOutbound(from, to, auth string, c *conn) *Outbound {
	return &Outbound{From: from, To: to, Auth: auth, c: c, done: make(chan struct{})}
}

// Send writes a stanza (serialized, from From to To) to the peer.
func (o *Outbound) Send(stanza string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return net.ErrClosed
	}
	return o.c.send(stanza)
}

// SendAll sends stanzas in order, in one flush.
func (o *Outbound) SendAll(stanzas []string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return net.ErrClosed
	}
	return o.c.sendAll(stanzas)
}

// Close ends the stream (with bidi, both ways).
func (o *Outbound) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	defer o.end()
	if o.closed {
		return nil
	}
	o.closed = true
	o.c.send("</stream:stream>")
	return o.c.nc.Close()
}

// Abort cuts the connection at once, without the closing tag: a write
// blocked on a peer that does not read fails now rather than at its
// deadline.
func (o *Outbound) Abort() {
	o.c.nc.Close() // safe beside a blocked write; that write then fails
	o.end()
}

// Done is closed once the stream ended, closed by either side. Without
// bidi nothing reads a stream we opened, so the peer's end shows only
// when a Send fails.
func (o *Outbound) Done() <-chan struct{} { return o.done }

func (o *Outbound) end() { o.once.Do(func() { close(o.done) }) }

// opened is a secured outbound stream, before authentication.
type opened struct {
	c        *conn
	id       string          // of the peer's stream header (the dialback stream id)
	features *stanza.Element // the peer's, after TLS
	// verified: the peer's certificate verified for its domain (not an
	// insecure domain's, nor one ClientTLS skipped verifying).
	verified bool
}

// open connects to addr as from for to, negotiates TLS, and returns the
// secured stream. At an address with the DirectTLS prefix the TLS
// handshake comes first (XEP-0368 §3: SNI the peer's domain, ALPN
// xmpp-server, the certificate checked as for STARTTLS, and no STARTTLS
// after); elsewhere the stream begins in the clear and STARTTLS is
// required.
func (cfg *Config) open(ctx context.Context, addr, from, to string) (*opened, error) {
	cfg.defaults()
	hostport, direct := strings.CutPrefix(addr, DirectTLS)
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, fmt.Errorf("s2s: connect to %s for %s: %w", addr, to, err)
	}
	c := newConn(nc, cfg.MaxStanza)
	fail := func(err error) (*opened, error) {
		c.nc.Close()
		return nil, fmt.Errorf("s2s: stream to %s at %s: %w", to, addr, err)
	}
	deadline := time.Now().Add(cfg.Timeout)
	if !direct {
		if err := c.startTLS(from, to, deadline); err != nil {
			return fail(err)
		}
	}
	tcfg := cfg.clientTLS(from, to)
	if direct {
		tcfg.NextProtos = []string{alpnServer}
	}
	tc := tls.Client(nc, tcfg)
	tc.SetDeadline(deadline)
	if err := tc.HandshakeContext(ctx); err != nil {
		return fail(fmt.Errorf("TLS: %w", err))
	}
	tc.SetDeadline(time.Time{})
	c.nc = tc
	c.reset()
	o := &opened{c: c, verified: len(tc.ConnectionState().VerifiedChains) > 0 && !cfg.insecure(to)}
	if err := c.header(from, to, ""); err != nil {
		return fail(err)
	}
	if _, _, o.id, err = c.readHeader(deadline); err != nil {
		return fail(err)
	}
	if o.id == "" {
		return fail(errors.New("the peer's stream header has no id"))
	}
	if o.features, err = c.next(deadline); err != nil || o.features.XMLName.Local != "features" {
		return fail(fmt.Errorf("no stream features after TLS (%v)", err))
	}
	return o, nil
}

// startTLS opens a stream in the clear on c and asks for TLS, which the
// peer must offer; the handshake is the caller's.
func (c *conn) startTLS(from, to string, deadline time.Time) error {
	if err := c.header(from, to, ""); err != nil {
		return err
	}
	if _, _, _, err := c.readHeader(deadline); err != nil {
		return err
	}
	if f, err := c.next(deadline); err != nil || f.XMLName.Local != "features" {
		return fmt.Errorf("no stream features (%v)", err)
	} else if _, ok := f.Named(nsTLS, "starttls"); !ok {
		return errors.New("the peer offers no STARTTLS")
	}
	if err := c.send("<starttls xmlns='" + nsTLS + "'/>"); err != nil {
		return err
	}
	if p, err := c.next(deadline); err != nil || p.XMLName.Local != "proceed" {
		return fmt.Errorf("STARTTLS refused (%v)", err)
	}
	return nil
}

// Dial opens a stream to the server at addr (with the DirectTLS prefix:
// direct TLS) and authenticates from to it.
// With SASL EXTERNAL (XEP-0178 §3) when the peer offers it and its own
// certificate verified for to: the peer checked ours. Else with dialback
// (XEP-0220 §2.1.1): the key is the one this server's secret makes for
// the pair and the peer's stream id, which the peer checks with our
// authoritative server.
func (cfg Config) Dial(ctx context.Context, addr, from, to string) (*Outbound, error) {
	cfg.defaults()
	o, err := cfg.open(ctx, addr, from, to)
	if err != nil {
		return nil, err
	}
	c := o.c
	// Bidi before authenticating (XEP-0288 §2), and only if what the peer
	// sends back has somewhere to go.
	bidi := cfg.Deliver != nil && offersBidi(o.features)
	if bidi {
		if err := c.send("<bidi xmlns='" + nsBidi + "'/>"); err != nil {
			c.nc.Close()
			return nil, err
		}
	}
	authenticated := func(method string) *Outbound {
		cfg.Log.Info("s2s stream authenticated", "from", from, "domain", to, "method", method, "bidi", bidi, "addr", addr)
		out := newOutbound(from, to, method, c)
		if out.Bidi = bidi; bidi {
			go cfg.readBidi(out)
		}
		return out
	}
	if offersExternal(o.features) {
		if !o.verified {
			// The peer would take our certificate, but we have not
			// checked its: dialback at least asks its domain's
			// authoritative server.
			cfg.Log.Info("s2s: not using EXTERNAL: the peer's certificate is not verified; trying dialback", "domain", to)
		} else {
			ok, err := cfg.external(o, from, to)
			if err != nil {
				c.nc.Close()
				return nil, fmt.Errorf("s2s: EXTERNAL with %s: %w", to, err)
			}
			if ok {
				return authenticated(AuthExternal), nil
			}
		}
	}
	key := DialbackKey(cfg.Secret, to, from, o.id)
	if err := c.send("<db:result from='" + stanza.Escape(from) + "' to='" + stanza.Escape(to) + "'>" + key + "</db:result>"); err != nil {
		c.nc.Close()
		return nil, err
	}
	r, err := c.next(time.Now().Add(cfg.Timeout))
	switch {
	case err != nil:
		c.nc.Close()
		return nil, fmt.Errorf("s2s: dialback with %s: %w", to, err)
	case r.XMLName.Space != nsDialback || r.XMLName.Local != "result" || r.Attr("from") != to || r.Attr("to") != from:
		c.nc.Close()
		return nil, fmt.Errorf("s2s: dialback with %s: unexpected %s", to, r.XMLName.Local)
	case r.Attr("type") != "valid":
		c.nc.Close()
		return nil, fmt.Errorf("s2s: dialback with %s: %s", to, r.Attr("type"))
	}
	return authenticated(AuthDialback), nil
}

// VerifyKey asks the authoritative server of originating, at addr,
// whether key is one it made for a stream from it to receiving with id
// streamID (XEP-0220 §2.1.2), over a stream of its own.
func (cfg Config) VerifyKey(ctx context.Context, addr, receiving, originating, streamID, key string) (bool, error) {
	cfg.defaults()
	o, err := cfg.open(ctx, addr, receiving, originating)
	if err != nil {
		return false, err
	}
	c := o.c
	defer c.nc.Close()
	if err := c.send("<db:verify from='" + stanza.Escape(receiving) + "' to='" + stanza.Escape(originating) + "' id='" + stanza.Escape(streamID) + "'>" +
		stanza.Escape(key) + "</db:verify>"); err != nil {
		return false, err
	}
	r, err := c.next(time.Now().Add(cfg.Timeout))
	if err != nil {
		return false, fmt.Errorf("s2s: verifying a key of %s: %w", originating, err)
	}
	if r.XMLName.Space != nsDialback || r.XMLName.Local != "verify" || r.Attr("id") != streamID || r.Attr("from") != originating {
		return false, fmt.Errorf("s2s: verifying a key of %s: unexpected %s", originating, r.XMLName.Local)
	}
	c.send("</stream:stream>")
	return r.Attr("type") == "valid", nil
}
