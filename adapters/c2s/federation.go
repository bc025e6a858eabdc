package c2s

// Federation, outbound: what this server's clients send to JIDs at other
// servers, and what comes back when it cannot get there. Stanzas from
// other servers are inbound.go's.

import (
	"cmp"
	"context"
	"fmt"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/roster"
	"annals.im/annals/domain/wellformed"
)

// Remote reaches other servers (adapters/s2s, wired by cmd/).
type Remote interface {
	// Send queues a stanza, serialized as it is for a client, from one of
	// our JIDs to a JID at another server, after the stanzas sent before
	// it between the same two domains. One that cannot be delivered comes
	// back through Server.Bounce.
	Send(from, to jid.JID, stanza string)
}

// remote sends a stanza that is not 1:1 chat to another server: an IQ, a
// directed presence (a room join), a groupchat message. With no route to
// other servers it is answered remote-server-not-found.
func (c *conn) remote(e *element, to jid.JID) error {
	typ := e.Attr("type")
	if c.srv.cfg.Remote != nil {
		c.srv.cfg.Remote.Send(c.jid, to, stanza.Restamp(e, c.jid.String()))
		return nil
	}
	if typ == "error" || e.XMLName.Local == "iq" && typ == "result" {
		return nil // errors and answers are never answered (RFC 6120 §8.3.1)
	}
	return c.write(c.errorReplyText(e, "cancel", "remote-server-not-found", "this server does not reach other servers"))
}

// sendRemote sends a stanza the server writes on an account's behalf
// (a subscription, a probe, a presence broadcast) to another server.
func (s *Server) sendRemote(from, to, wire string) {
	f, err1 := jid.Parse(from)
	t, err2 := jid.Parse(to)
	if s.cfg.Remote == nil || err1 != nil || err2 != nil {
		return
	}
	s.cfg.Remote.Send(f, t, wire)
}

// subscriptionOut tells a contact at another server of a subscription
// stanza the account's roster let through (RFC 6121 §3). Approving a
// subscription shares the account's presence at once (§3.1.5); cancelling
// one takes it back (§3.2.2).
func (s *Server) subscriptionOut(account, contact string, kind roster.Stanza) {
	typ := kind[len("out-"):]
	s.sendRemote(account, contact, fmt.Sprintf(`<presence xmlns='%s' type='%s' from='%s' to='%s'/>`, nsClient, typ, stanza.Escape(account), stanza.Escape(contact)))
	switch kind {
	case roster.OutSubscribed:
		for _, o := range s.availableOf(account) {
			s.mu.Lock()
			p := o.available
			s.mu.Unlock()
			if p != "" {
				s.sendRemote(o.jid.String(), contact, stanza.WithTo(p, contact))
			}
		}
	case roster.OutUnsubscribed:
		for _, o := range s.availableOf(account) {
			s.sendRemote(o.jid.String(), contact, fmt.Sprintf(`<presence xmlns='%s' type='unavailable' from='%s' to='%s'/>`,
				nsClient, stanza.Escape(o.jid.String()), stanza.Escape(contact)))
		}
	}
}

// Bounce answers the local sender of a stanza that could not reach
// another server with cond (remote-server-not-found or
// remote-server-timeout, RFC 6120 §8.3.3), from the address it was sent
// to; a service's (a room's) gets it as the recipient's answer. An error
// or an IQ answer is dropped: they are never answered.
func (s *Server) Bounce(wire, cond string) {
	e, err := stanza.Parse([]byte(wire), cmp.Or(s.cfg.MaxDepth, wellformed.DefaultMaxDepth))
	if err != nil {
		s.cfg.Log.Error("bouncing a stanza this server wrote", "err", err)
		return
	}
	typ := e.Attr("type")
	if typ == "error" || e.XMLName.Local == "iq" && typ == "result" {
		return
	}
	from, err1 := jid.Parse(e.Attr("from"))
	to, err2 := jid.Parse(e.Attr("to"))
	if err1 != nil || err2 != nil {
		return
	}
	reply := fmt.Sprintf(`<%s xmlns='%s' type='error' id='%s'%s><error type='%s'><%s xmlns='%s'/></error></%s>`,
		e.XMLName.Local, nsClient, stanza.Escape(e.Attr("id")), stanza.ToFrom(from.String(), to.String()), stanza.Types[cond], cond, nsStanzas, e.XMLName.Local)
	if svc, ok := s.cfg.Mux.Service(from.Domainpart()); ok {
		// A room's stanza to an occupant elsewhere: the room hears of it
		// as if the occupant's server had answered (it may remove a ghost).
		r, err := stanza.Parse([]byte(reply), cmp.Or(s.cfg.MaxDepth, wellformed.DefaultMaxDepth))
		if err != nil {
			return
		}
		// Not here and now: the pool may bounce from inside the send, and
		// a room sends under its own locks.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), mux.TeardownTimeout)
			defer cancel()
			svc.Handle(ctx, peer{srv: s, from: to.String(), domain: from.Domainpart()}, r, from)
		}()
		return
	}
	if e.XMLName.Local == "iq" && from.Resourcepart() == "" && from.Localpart() != "" && s.isLocal(from) {
		// One the server sent for an account (AccountIQ): it hears of it
		// as if the other server had answered.
		if r, err := stanza.Parse([]byte(reply), cmp.Or(s.cfg.MaxDepth, wellformed.DefaultMaxDepth)); err == nil {
			s.answered(from, to.String(), r)
		}
		return
	}
	if !s.isLocal(from) || from.Resourcepart() == "" && e.XMLName.Local != "message" {
		return // the server's own (a probe, a subscription): nobody to tell
	}
	for _, t := range s.route(from) {
		t.deliver(stanza.WithTo(reply, t.jid.String()), true)
	}
}

// probeRemote asks a contact's server for its presence, on the account's
// behalf (RFC 6121 §4.3.1).
func (s *Server) probeRemote(account, contact string) {
	s.sendRemote(account, contact, fmt.Sprintf(`<presence xmlns='%s' type='probe' from='%s' to='%s'/>`, nsClient, stanza.Escape(account), stanza.Escape(contact)))
}

func (s *Server) remoteContact(contact string) bool {
	j, err := jid.Parse(contact)
	return err == nil && !s.isLocal(j)
}

// AccountGone tells the contacts at other servers of a deleted account
// that it no longer shares or wants presence (RFC 6121 §2.5.2, XEP-0077
// §3.2): unsubscribe and unsubscribed from its bare JID, as local
// contacts' rosters are told by the deletion itself. The log follower
// calls it when it sees the deletion, whichever process made it.
func (s *Server) AccountGone(acct string, contacts []string) {
	for _, contact := range contacts {
		if !s.remoteContact(contact) {
			continue
		}
		for _, typ := range []string{"unsubscribe", "unsubscribed"} {
			s.sendRemote(acct, contact, fmt.Sprintf(`<presence xmlns='%s' type='%s' from='%s' to='%s'/>`,
				nsClient, typ, stanza.Escape(acct), stanza.Escape(contact)))
		}
	}
}
