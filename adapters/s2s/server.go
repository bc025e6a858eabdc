package s2s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/connlimit"
	"annals.im/annals/adapters/stanza"
)

// Config is what federation needs.
type Config struct {
	Domains []string // the domains this server serves
	// Secret is the dialback secret (adapters/keys, keys.Dialback).
	Secret []byte
	// TLS is offered with STARTTLS on inbound streams, and required. It
	// asks peers for a client certificate (tls.RequestClientCert, unless
	// ClientAuth asks already) without requiring one. The certificate it
	// serves one of Domains with is also our client certificate on
	// outbound streams from that domain, for SASL EXTERNAL.
	TLS *tls.Config
	// Roots verifies peers' certificates (--s2s-ca): an inbound peer's
	// client certificate for SASL EXTERNAL, and an outbound peer's server
	// certificate when ClientTLS is nil. Nil: the system roots.
	Roots *x509.CertPool
	// Insecure reports whether domain is a lab's domain (repeatable
	// --s2s-insecure-domain): when ClientTLS is nil, any certificate of
	// it is accepted for TLS on outbound streams (logged at each use);
	// in both roles a certificate never authenticates it with SASL
	// EXTERNAL, so dialback is needed. Nil: no such domain.
	Insecure func(domain string) bool
	// ClientTLS, if set, is the TLS configuration of an outbound stream
	// to domain, instead of Roots and Insecure's: the roots it verifies
	// the peer against, or, for a lab's domain, none (said loudly in the
	// log by the caller). Its ServerName is set to domain, and without a
	// certificate of its own it presents TLS's.
	ClientTLS func(domain string) *tls.Config
	// Verify asks the authoritative server of originating whether key is
	// the one it made for a stream to receiving with id streamID
	// (XEP-0220 §2.1.2; VerifyKey does it over a stream of its own).
	Verify func(ctx context.Context, receiving, originating, streamID, key string) (bool, error)
	// Deliver takes a stanza from a peer whose stream authenticated the
	// stanza's from domain, to one of Domains. On an outbound stream it
	// is what lets Dial ask for bidi.
	Deliver func(from, to jid.JID, e *stanza.Element)
	// Bidi, if set, offers XEP-0288 bidi on inbound streams, and takes,
	// for each pair (one of our domains, a peer's) such a stream
	// authenticated, an Outbound that sends on that stream (Pool.Adopt).
	Bidi func(*Outbound)
	// MaxStanza bounds a peer's stanza in bytes (default 256 KiB);
	// Timeout bounds a negotiation step (default 60 s); IdleTimeout an
	// authenticated inbound stream on which the peer sends nothing
	// (default 10 minutes): a peer keeps its
	// stream between bursts, and opens another after.
	MaxStanza   int
	Timeout     time.Duration
	IdleTimeout time.Duration
	// MaxConnections and MaxConnectionsPerIP cap the inbound streams open
	// at once, in all (default 256) and from one address (default 8: a
	// peer needs one per domain pair it serves, plus verifications).
	MaxConnections, MaxConnectionsPerIP int
	// MaxStanzaRate and StanzaBurst bound the stanzas one peer stream
	// sends (defaults DefaultMaxStanzaRate per second and
	// DefaultStanzaBurst at once); past them the stream ends with
	// policy-violation.
	MaxStanzaRate float64
	StanzaBurst   int
	Log           *slog.Logger
}

func (cfg *Config) defaults() {
	if cfg.MaxStanza <= 0 {
		cfg.MaxStanza = 256 << 10
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 10 * time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 256
	}
	if cfg.MaxStanzaRate <= 0 {
		cfg.MaxStanzaRate = DefaultMaxStanzaRate
	}
	if cfg.StanzaBurst <= 0 {
		cfg.StanzaBurst = DefaultStanzaBurst
	}
	if cfg.MaxConnectionsPerIP <= 0 {
		cfg.MaxConnectionsPerIP = 8
	}
}

// Server accepts streams from other servers.
type Server struct {
	cfg Config
	tls *tls.Config // cfg.TLS, asking for client certificates
	// directTLSConfig is tls with ALPN xmpp-server (XEP-0368 §3), for
	// streams that begin with TLS.
	directTLSConfig *tls.Config
	limits          *connlimit.Limits
}

// NewServer checks cfg and returns a server.
func NewServer(cfg Config) (*Server, error) {
	if len(cfg.Domains) == 0 || len(cfg.Secret) < 16 || cfg.TLS == nil || cfg.Verify == nil || cfg.Deliver == nil {
		return nil, errors.New("s2s: domains, a dialback secret, TLS, Verify and Deliver are needed")
	}
	cfg.defaults()
	s := &Server{cfg: cfg, tls: cfg.serverTLS(), limits: connlimit.New(cfg.MaxConnections, cfg.MaxConnectionsPerIP)}
	s.directTLSConfig = s.tls.Clone()
	s.directTLSConfig.NextProtos = []string{alpnServer}
	return s, nil
}

// Serve accepts streams on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	go func() { <-ctx.Done(); ln.Close() }()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("s2s: accept: %w", err)
		}
		release, cond, text := s.limits.Admit(connlimit.Key(nc.RemoteAddr()))
		if release == nil {
			// Refused before the peer's header is read: waiting for it
			// would hold the descriptor the cap is there to keep.
			s.cfg.Log.Info("s2s connection refused", "remote", nc.RemoteAddr().String(), "condition", cond)
			c := newConn(nc, s.cfg.MaxStanza)
			c.header(s.cfg.Domains[0], "", stanza.NewID())
			c.fail(&streamError{cond: cond, text: text})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer release()
			defer nc.Close()
			// Streams end with the server, not at their next read deadline.
			defer context.AfterFunc(ctx, func() { nc.Close() })()
			c := newConn(nc, s.cfg.MaxStanza)
			if err := s.serve(ctx, c); err != nil {
				var se *streamError
				if errors.As(err, &se) {
					c.fail(se)
				}
				s.cfg.Log.Info("s2s stream ended", "remote", nc.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// maxDomainsPerStream bounds the peer domains one inbound stream may
// authenticate (XEP-0220 §4 multiplexing): each costs a verification
// round trip, and a peer hosting more opens more streams.
const maxDomainsPerStream = 64

// inbound is the state of one inbound stream.
type inbound struct {
	id       string          // of our stream header (the dialback stream id)
	domain   string          // ours, as the peer addressed it
	from     string          // the peer's domain, as its stream header claims it
	verified map[string]bool // peer domains this stream authenticated
	secure   bool

	chain        []*x509.Certificate // the peer's client certificate and intermediates
	certErr      error               // why the certificate does not authenticate from (nil: it does)
	sasl         bool                // SASL succeeded: no more <auth/>
	saslFailures int

	limit  *limiter // the peer's stanzas
	remote string   // the peer's address, for the log

	bidi   bool               // the peer asked for bidi
	pairs  map[pair]string    // (ours, theirs) authenticated, and how
	handed map[pair]*Outbound // given to Config.Bidi
}

func (s *Server) serve(ctx context.Context, c *conn) error {
	in := &inbound{verified: map[string]bool{}, pairs: map[pair]string{}, handed: map[pair]*Outbound{}, remote: c.nc.RemoteAddr().String()}
	defer func() {
		for _, o := range in.handed {
			o.end()
		}
	}()
	if err := s.directTLS(ctx, c, in); err != nil {
		return err
	}
	for {
		// A stream: the header, our features, then what the peer sends.
		from, to, _, err := c.readHeader(time.Now().Add(s.cfg.Timeout))
		if err != nil {
			return err
		}
		in.from = from
		in.id = stanza.NewID()
		ours := to
		if !slices.Contains(s.cfg.Domains, to) {
			ours = s.cfg.Domains[0] // the header goes out even for an error: a stream error needs a stream
		}
		if err := c.header(ours, "", in.id); err != nil {
			return err
		}
		if ours != to {
			return &streamError{cond: "host-unknown", text: "this server does not serve " + to}
		}
		in.domain = to
		bidi := ""
		if s.cfg.Bidi != nil && !in.bidi {
			bidi = bidiFeature // before and after TLS (XEP-0288 §2)
		}
		features := "<stream:features><starttls xmlns='" + nsTLS + "'><required/></starttls>" + bidi + "</stream:features>"
		if in.secure {
			features = "<stream:features>" + bidi + "<dialback xmlns='" + nsDialbackFeature + "'><errors/></dialback></stream:features>"
			if !in.sasl && s.external(c, in) {
				features = "<stream:features>" + mechanisms + bidi + "<dialback xmlns='" + nsDialbackFeature + "'><errors/></dialback></stream:features>"
			}
		}
		if err := c.send(features); err != nil {
			return err
		}
		s.handBidi(c, in) // after SASL's restart
		restart, err := s.stanzas(ctx, c, in)
		if err != nil || !restart {
			return err
		}
	}
}

// stanzas handles a stream's elements; restart: a new stream follows
// (after STARTTLS).
func (s *Server) stanzas(ctx context.Context, c *conn, in *inbound) (restart bool, err error) {
	for {
		wait := s.cfg.Timeout
		if len(in.verified) > 0 {
			wait = s.cfg.IdleTimeout
		}
		e, err := c.next(time.Now().Add(wait))
		if err != nil {
			return false, err
		}
		switch {
		case !in.secure && e.XMLName.Space == nsTLS && e.XMLName.Local == "starttls":
			if err := c.send("<proceed xmlns='" + nsTLS + "'/>"); err != nil {
				return false, err
			}
			tc := tls.Server(c.nc, s.tls)
			tc.SetDeadline(time.Now().Add(s.cfg.Timeout))
			if err := tc.HandshakeContext(ctx); err != nil {
				return false, fmt.Errorf("s2s: TLS handshake: %w", err)
			}
			c.nc, in.secure = tc, true
			in.chain = tc.ConnectionState().PeerCertificates
			c.reset()
			return true, nil
		case !in.secure && e.XMLName.Space == nsSASL && e.XMLName.Local == "auth":
			// Nothing authenticates before TLS (RFC 6120 §6.4.5
			// encryption-required), and the stream is not worth keeping.
			s.cfg.Log.Info("s2s EXTERNAL refused", "remote", c.nc.RemoteAddr().String(), "domain", in.from, "condition", "encryption-required", "err", "before STARTTLS")
			if err := c.send(saslFailure("encryption-required")); err != nil {
				return false, err
			}
			return false, &streamError{cond: "policy-violation", text: "STARTTLS is required"}
		case !in.secure:
			return false, &streamError{cond: "policy-violation", text: "STARTTLS is required"}
		case e.XMLName.Space == nsSASL && e.XMLName.Local == "auth":
			switch err := s.auth(c, in, e); {
			case errors.Is(err, errSASLRestart):
				return true, nil
			case err != nil:
				return false, err
			}
		case e.XMLName.Space == nsBidi && e.XMLName.Local == "bidi" && s.cfg.Bidi != nil:
			in.bidi = true
			s.handBidi(c, in)
		case e.XMLName.Space == nsDialback && e.XMLName.Local == "result":
			if err := s.result(ctx, c, in, e); err != nil {
				return false, err
			}
			s.handBidi(c, in)
		case e.XMLName.Space == nsDialback && e.XMLName.Local == "verify":
			if err := s.verify(c, e); err != nil {
				return false, err
			}
		case e.XMLName.Space == nsServer:
			if err := s.stanza(in, e); err != nil {
				return false, err
			}
		default:
			return false, &streamError{cond: "unsupported-stanza-type", text: e.XMLName.Local}
		}
	}
}

// result handles a dialback key (XEP-0220 §2.2.1): the peer asks to send
// from a domain of its to one of ours; the authoritative server of its
// domain says whether the key is one it made.
func (s *Server) result(ctx context.Context, c *conn, in *inbound, e *stanza.Element) error {
	from, to := e.Attr("from"), e.Attr("to")
	answer := func(typ string) error {
		return c.send("<db:result xmlns:db='" + nsDialback + "' from='" + stanza.Escape(to) + "' to='" + stanza.Escape(from) + "' type='" + typ + "'/>")
	}
	f, err := jid.Parse(from)
	if err != nil || f.Localpart() != "" || f.Resourcepart() != "" || slices.Contains(s.cfg.Domains, from) {
		return &streamError{cond: "invalid-from", text: "not a peer's domain: " + from}
	}
	if !slices.Contains(s.cfg.Domains, to) {
		return c.send("<db:result xmlns:db='" + nsDialback + "' from='" + stanza.Escape(to) + "' to='" + stanza.Escape(from) +
			"' type='error'><error type='cancel'><item-not-found xmlns='" + stanza.NSStanzas + "'/></error></db:result>")
	}
	vctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	ok, err := s.cfg.Verify(vctx, to, from, in.id, e.Text())
	switch {
	case err != nil:
		s.cfg.Log.Info("dialback: the authoritative server did not answer", "domain", from, "err", err)
		return c.send("<db:result xmlns:db='" + nsDialback + "' from='" + stanza.Escape(to) + "' to='" + stanza.Escape(from) +
			"' type='error'><error type='cancel'><remote-server-not-found xmlns='" + stanza.NSStanzas + "'/></error></db:result>")
	case !ok:
		s.cfg.Log.Warn("dialback: invalid key", "domain", from)
		answer("invalid")
		return &streamError{cond: "not-authorized", text: "the dialback key is invalid"}
	}
	if len(in.verified) >= maxDomainsPerStream {
		return &streamError{cond: "policy-violation", text: fmt.Sprintf("at most %d domains per stream", maxDomainsPerStream)}
	}
	in.verified[from] = true
	in.pairs[pair{to, from}] = AuthDialback
	s.cfg.Log.Info("dialback: peer authenticated", "domain", from, "to", to)
	return answer("valid")
}

// verify answers a receiving server that asks whether a key is one this
// server made (XEP-0220 §2.2.2: this server is the authoritative one).
func (s *Server) verify(c *conn, e *stanza.Element) error {
	from, to, id := e.Attr("from"), e.Attr("to"), e.Attr("id")
	typ := "invalid"
	if slices.Contains(s.cfg.Domains, to) && VerifyDialbackKey(s.cfg.Secret, from, to, id, e.Text()) {
		typ = "valid"
	}
	return c.send("<db:verify xmlns:db='" + nsDialback + "' from='" + stanza.Escape(to) + "' to='" + stanza.Escape(from) +
		"' id='" + stanza.Escape(id) + "' type='" + typ + "'/>")
}

// stanza takes a stanza from the peer: its from must be at a domain this
// stream authenticated (RFC 6120 §13.7.2.3), its to at one of ours.
func (s *Server) stanza(in *inbound, e *stanza.Element) error {
	if in.limit == nil {
		in.limit = newLimiter(s.cfg.MaxStanzaRate, s.cfg.StanzaBurst)
	}
	if err := in.limit.take(time.Now()); err != nil {
		s.cfg.Log.Warn("s2s peer flooding: stream ended", "remote", in.remote, "domain", in.from, "err", err)
		return err
	}
	from, err := jid.Parse(e.Attr("from"))
	if err != nil || !in.verified[from.Domainpart()] {
		return &streamError{cond: "invalid-from", text: "the stream did not authenticate " + e.Attr("from")}
	}
	to, err := jid.Parse(e.Attr("to"))
	if err != nil || !slices.Contains(s.cfg.Domains, to.Domainpart()) {
		return &streamError{cond: "host-unknown", text: "this server does not serve " + e.Attr("to")}
	}
	s.cfg.Deliver(from, to, e)
	return nil
}
