package s2s

import (
	"errors"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
)

// Bidirectional streams (XEP-0288): one connection carries stanzas both
// ways. The initiating server sends <bidi/> after TLS and before
// authenticating; then the receiving server may send, on that stream,
// stanzas for the pairs the stream authenticated, inverted (§2: with
// EXTERNAL, from the domain the stream was opened to, to the one SASL
// authenticated; with dialback, from a <db:result/>'s to, to its from).

const (
	nsBidi        = "urn:xmpp:bidi"
	nsBidiFeature = "urn:xmpp:features:bidi"
)

const bidiFeature = "<bidi xmlns='" + nsBidiFeature + "'/>"

func offersBidi(features *stanza.Element) bool {
	_, ok := features.Named(nsBidiFeature, "bidi")
	return ok
}

// handBidi gives Config.Bidi an Outbound for each pair the inbound
// stream authenticated that has none yet, once the peer asked for bidi.
// Called where no stream restart is pending (the peer's stanzas may
// follow at once).
func (s *Server) handBidi(c *conn, in *inbound) {
	if !in.bidi || s.cfg.Bidi == nil {
		return
	}
	for p, method := range in.pairs {
		if in.handed[p] != nil {
			continue
		}
		o := newOutbound(p.from, p.to, method, c)
		o.Bidi = true
		in.handed[p] = o
		s.cfg.Log.Info("s2s bidi: sending on the peer's stream", "remote", c.nc.RemoteAddr().String(), "from", p.from, "domain", p.to)
		s.cfg.Bidi(o)
	}
}

// readBidi reads, on an outbound stream with bidi, what the peer sends
// us, until the stream ends.
func (cfg *Config) readBidi(o *Outbound) {
	defer o.end()
	defer o.c.nc.Close()
	for {
		e, err := o.c.next(time.Time{}) // the pool closes an idle stream
		if err == nil {
			err = cfg.fromPeer(o, e)
		}
		if err != nil {
			var se *streamError
			if errors.As(err, &se) {
				o.mu.Lock()
				o.c.fail(se)
				o.mu.Unlock()
			}
			cfg.Log.Info("s2s bidi stream ended", "remote", o.c.nc.RemoteAddr().String(), "domain", o.To, "err", err)
			return
		}
	}
}

// fromPeer takes one element the peer sent on our outbound stream with
// bidi: a stanza from its domain to ours (the stream authenticated that
// pair, and that pair only).
func (cfg *Config) fromPeer(o *Outbound, e *stanza.Element) error {
	switch {
	case e.XMLName.Space == nsServer:
		if o.limit == nil {
			o.limit = newLimiter(cfg.MaxStanzaRate, cfg.StanzaBurst)
		}
		if err := o.limit.take(time.Now()); err != nil {
			cfg.Log.Warn("s2s peer flooding: stream ended", "remote", o.c.nc.RemoteAddr().String(), "domain", o.To, "err", err)
			return err
		}
		from, err := jid.Parse(e.Attr("from"))
		if err != nil || from.Domainpart() != o.To {
			return &streamError{cond: "invalid-from", text: "this stream authenticated " + o.To + " only"}
		}
		to, err := jid.Parse(e.Attr("to"))
		if err != nil || to.Domainpart() != o.From {
			return &streamError{cond: "host-unknown", text: "this stream is for " + o.From}
		}
		cfg.Deliver(from, to, e)
		return nil
	case e.XMLName.Space == nsStream && e.XMLName.Local == "error":
		return &peerError{inner: string(e.Inner)}
	case e.XMLName.Space == nsDialback && e.XMLName.Local == "result" && e.Attr("type") == "":
		// NOTSPEC(XEP-0288 §2): the receiving server may ask to send for
		// more of its domains with dialback on our stream; we do not
		// verify those, and say so with a dialback error (XEP-0220 §2.4),
		// which a peer using bidi with dialback must understand.
		cfg.Log.Info("s2s bidi: refusing dialback for another domain on our stream", "domain", e.Attr("from"))
		return o.Send("<db:result from='" + stanza.Escape(e.Attr("to")) + "' to='" + stanza.Escape(e.Attr("from")) +
			"' type='error'><error type='cancel'><feature-not-implemented xmlns='" + stanza.NSStanzas + "'/></error></db:result>")
	}
	return &streamError{cond: "unsupported-stanza-type", text: e.XMLName.Local}
}

// peerError is a stream error the peer ended its stream with.
type peerError struct{ inner string }

func (e *peerError) Error() string { return "s2s: the peer's stream error: " + clip(e.inner, 256) }
