package c2s

import (
	"context"
	"encoding/xml"
	"fmt"
	"strings"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/event"
)

// stanzas handles a bound session's stanzas until the stream ends.
func (c *conn) stanzas(session context.Context) error {
	for {
		e, err := c.next()
		if err != nil {
			return err
		}
		// Every event a stanza causes says which: the session and the
		// stanza's id (the client's, bounded by event.WithCause).
		ctx := event.WithCause(session, "c2s:"+c.sid+"/"+e.Attr("id"))
		switch e.XMLName {
		case xml.Name{Space: nsClient, Local: "iq"}:
			if isRegister(e) && (e.Attr("to") == "" || e.Attr("to") == c.domain) {
				q, _ := e.Child()
				removed, rerr := c.register(ctx, e, q)
				if removed {
					return &streamError{cond: "not-authorized", text: "the account was removed"}
				}
				err = rerr
				break
			}
			err = c.routeStanza(ctx, e)
		case xml.Name{Space: nsClient, Local: "message"}:
			err = c.routeStanza(ctx, e)
		case xml.Name{Space: nsStream, Local: "error"}:
			c.log.Info("the client sent a stream error", "error", clip(string(e.Inner), 256))
			return errStreamClosed
		case xml.Name{Space: nsClient, Local: "presence"}:
			err = c.routeStanza(ctx, e)
		default:
			ok, err := c.smElement(e)
			if err != nil {
				return err
			}
			if !ok {
				return &streamError{cond: "unsupported-stanza-type", text: e.XMLName.Local}
			}
			continue // not a stanza: not counted
		}
		if err != nil {
			return err
		}
		c.srv.cfg.Metrics.StanzaReceived(e.XMLName.Local)
		c.handled++
	}
}

func (c *conn) iq(ctx context.Context, e *element) error {
	typ := e.Attr("type")
	to := e.Attr("to")
	if j, err := jid.Parse(to); err == nil && c.srv.blocksLocal(ctx, j, c.jid) {
		return c.refusedBy(e) // XEP-0191 §3.3
	}
	if typ == "result" || typ == "error" {
		j, err := jid.Parse(to)
		switch {
		case c.capsAnswer(ctx, e):
		case err != nil:
		case j.Resourcepart() != "":
			// An answer to another client's IQ goes to it; to a resource
			// that has gone, nowhere (errors are never answered).
			if t := c.srv.sessionAt(j); t != nil {
				t.deliver(stanza.Restamp(e, c.jid.String()), true)
			} else if n := c.srv.boundAt(j); n != nil {
				c.srv.toNode(*n, stanza.Restamp(e, c.jid.String()))
			}
		}
		return nil // else a reply to nothing we asked
	}
	if typ != "get" && typ != "set" || e.Attr("id") == "" {
		return c.write(c.errorReply(e, "modify", "bad-request"))
	}
	child, ok := e.Child()
	if !ok {
		return c.write(c.errorReply(e, "modify", "bad-request"))
	}
	for _, d := range c.destinations(ctx, to) {
		iq := &mux.IQ{Stanza: e, Payload: child, Session: c, From: c.replyFrom(e)}
		if handled, err := c.srv.cfg.Mux.Serve(ctx, d, iq); handled {
			if err != nil {
				c.log.Error("IQ handler failed", "ns", child.XMLName.Space, "dest", d.String(), "err", err)
			}
			return nil
		}
	}
	toSelf := to == c.jid.Bare().String() || to == c.jid.String()
	if j, err := jid.Parse(to); err == nil && j.Resourcepart() != "" && !toSelf && c.srv.isLocal(j) {
		// RFC 6121 §8.5.3.1: an IQ to a connected resource is delivered
		// to it (its answer comes back through the case above); to a
		// resource that is not connected, service-unavailable (§8.5.3.2.1).
		if t := c.srv.sessionAt(j); t != nil {
			t.deliver(stanza.Restamp(e, c.jid.String()), true)
			return nil
		}
		if n := c.srv.boundAt(j); n != nil {
			c.srv.toNode(*n, stanza.Restamp(e, c.jid.String()))
			return nil
		}
	}
	return c.write(c.errorReply(e, "cancel", "service-unavailable"))
}

// sessionAt returns the session bound to full JID j, or nil.
func (s *Server) sessionAt(j jid.JID) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[j.Bare().String()][j.Resourcepart()]
}

// errorReply answers e from this session with an error, to the session's
// own full JID: a from the client wrote is never trusted (RFC 6120 §8.1.2.1).
func (c *conn) errorReply(e *element, typ, cond string) string {
	return fmt.Sprintf(`<%s type='error' id='%s'%s><error type='%s'><%s xmlns='%s'/></error></%s>`,
		e.XMLName.Local, stanza.Escape(e.Attr("id")), stanza.ToFrom(c.jid.String(), c.replyFrom(e)), typ, cond, nsStanzas, e.XMLName.Local)
}

// errorReplyText is errorReply with an explanation.
func (c *conn) errorReplyText(e *element, typ, cond, text string) string {
	return fmt.Sprintf(`<%s type='error' id='%s'%s><error type='%s'><%s xmlns='%s'/><text xmlns='%s'>%s</text></error></%s>`,
		e.XMLName.Local, stanza.Escape(e.Attr("id")), stanza.ToFrom(c.jid.String(), c.replyFrom(e)), typ, cond, nsStanzas, nsStanzas, stanza.Escape(text), e.XMLName.Local)
}

// errorFor answers e with se.
func (c *conn) errorFor(e *element, se *stanza.Error) string {
	if se.Text == "" {
		return c.errorReply(e, se.Type, se.Cond)
	}
	return c.errorReplyText(e, se.Type, se.Cond, se.Text)
}

// replyFrom is the from of an answer to e: the address it was sent to,
// or, when that is not a valid JID (clients drop stanzas from invalid
// JIDs), the nearest valid one: without an empty resource, else the server.
func (c *conn) replyFrom(e *element) string {
	to := e.Attr("to")
	if to == "" {
		return ""
	}
	if j, err := jid.Parse(to); err == nil {
		return j.String()
	}
	if j, err := jid.Parse(strings.TrimSuffix(to, "/")); err == nil {
		return j.String()
	}
	return c.domain
}

// route finds the sessions a message to `to` goes to: the full JID's
// session, or else every session of the account (RFC 6121 §8.5.2.1.1:
// sending to all is allowed where priorities are equal).
func (s *Server) route(to jid.JID) []*conn {
	if to.Resourcepart() != "" {
		s.mu.Lock()
		c, ok := s.sessions[to.Bare().String()][to.Resourcepart()]
		s.mu.Unlock()
		if ok {
			return []*conn{c}
		}
		if s.boundAt(to) != nil {
			return nil // on another node: nodeRoute
		}
	}
	return s.sessionsOf(to.Bare().String())
}
