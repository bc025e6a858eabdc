package c2s

import (
	"context"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/roster"
)

// presence handles a presence stanza from this session (RFC 6121 §4).
func (c *conn) presence(ctx context.Context, e *element) error {
	if c.srv.cfg.Accounts == nil {
		return nil // no rosters, no presence to share
	}
	account := c.jid.Bare().String()
	typ := e.Attr("type")
	to := e.Attr("to")
	switch typ {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		contact, err := jid.Parse(to)
		if err != nil || to == "" {
			return c.write(c.errorReply(e, "modify", "jid-malformed"))
		}
		if err := c.srv.subscription(ctx, account, contact.Bare().String(), roster.Stanza("out-"+typ), false); errors.Is(err, roster.ErrFull) {
			return c.write(c.rosterFull(e))
		}
		return nil
	case "probe", "error":
		return nil // the server answers probes itself; errors end here
	case "", "unavailable":
	default:
		return c.write(c.errorReply(e, "modify", "bad-request"))
	}
	stamped := stanza.Restamp(e, c.jid.String())
	if typ == "" {
		stamped = c.srv.dress(ctx, account, e, stamped)
	}
	if to != "" {
		// Directed presence: delivered as it is, not remembered.
		t, err := jid.Parse(to)
		if err != nil {
			return c.write(c.errorReply(e, "modify", "jid-malformed"))
		}
		if c.srv.blocksLocal(ctx, t, c.jid) {
			return nil // dropped without a word (XEP-0191 §3.3)
		}
		for _, target := range c.srv.route(t) {
			target.deliver(stanza.WithTo(stamped, target.jid.String()), false)
		}
		for _, n := range c.srv.nodeRoute(t) {
			c.srv.toNode(n, stamped)
		}
		return nil
	}
	c.presenceMu.Lock()
	c.srv.mu.Lock()
	initial := c.available == "" && typ == ""
	if typ == "" {
		c.available, c.availableEl = stamped, e
	} else {
		c.available, c.availableEl = "", nil
		c.lastStatus = e.ChildText("status")
	}
	c.srv.mu.Unlock()
	if typ == "" {
		c.srv.announce(c, stamped)
	} else {
		c.srv.announce(c, "")
	}
	c.srv.broadcast(ctx, c, stamped)
	c.presenceMu.Unlock()
	if initial {
		c.srv.probe(ctx, c)
		c.srv.flushOffline(ctx, c)
	}
	if typ == "" {
		c.learnCaps(ctx, e, initial)
	}
	if typ == "unavailable" {
		// RFC 6121 §4.6.2 would end the client's directed presence to its
		// rooms; here the account occupies them, so the client only
		// detaches.
		c.srv.sessionGone(c)
	}
	return nil
}

// broadcast sends this session's presence to itself and every available
// session of the account (RFC 6121 §4.2.2), and to every available
// session of the contacts subscribed to it (From or Both): a session that
// has sent no initial presence yet gets none (§4.2.2, §4.4.2); it learns
// its contacts' presence by probe when it becomes available. A contact
// that the account blocks, or that blocks the account, gets none
// (XEP-0191 §3.3). Sessions on other nodes get it over the bus.
func (s *Server) broadcast(ctx context.Context, c *conn, wire string) {
	s.fanOut(ctx, c.jid, c, wire, true)
}

// fanOut is broadcast for the session from: self, when it is here, gets
// its own presence back; nodes says whether the sessions of other nodes
// are this node's to reach (not when each node hears of from's end on
// its own: NodeSessionGone).
func (s *Server) fanOut(ctx context.Context, from jid.JID, self *conn, wire string, nodes bool) {
	account := from.Bare().String()
	if self != nil {
		self.deliver(stanza.WithTo(wire, self.jid.String()), false)
	}
	for _, o := range s.availableOf(account) {
		if o != self {
			o.deliver(stanza.WithTo(wire, o.jid.String()), false)
		}
	}
	if nodes {
		for _, n := range s.nodeSessions(account, true) {
			s.toNode(n, wire)
		}
	}
	st, err := s.cfg.Accounts.Roster(ctx, account)
	if err != nil {
		s.cfg.Log.Error("presence broadcast", "account", account, "err", err)
		return
	}
	for contact, it := range st.Items {
		if it.Subscription != roster.From && it.Subscription != roster.Both {
			continue
		}
		if s.remoteContact(contact) {
			// To the contact's bare JID: its server hands it to each of
			// the contact's available resources (RFC 6121 §4.4.2).
			if !s.eitherBlocks(ctx, account, contact) {
				s.sendRemote(from.String(), contact, stanza.WithTo(wire, contact))
			}
			continue
		}
		targets := s.availableOf(contact)
		var elsewhere []NodeSession
		if nodes {
			elsewhere = s.nodeSessions(contact, true)
		}
		if len(targets)+len(elsewhere) > 0 && s.eitherBlocks(ctx, account, contact) {
			continue
		}
		for _, o := range targets {
			o.deliver(stanza.WithTo(wire, o.jid.String()), false)
		}
		for _, n := range elsewhere {
			s.toNode(n, wire)
		}
	}
}

// probe gives a session that just became available the presence of the
// contacts it is subscribed to (To or Both) and of its own other sessions.
// A contact at another server is probed there; the answers reach the
// session as presence does. A contact blocked either way is not asked
// (XEP-0191 §3.3).
func (s *Server) probe(ctx context.Context, c *conn) {
	account := c.jid.Bare().String()
	st, err := s.cfg.Accounts.Roster(ctx, account)
	if err != nil {
		s.cfg.Log.Error("presence probe", "account", account, "err", err)
		return
	}
	for contact, it := range st.Items {
		switch {
		case it.Subscription != roster.To && it.Subscription != roster.Both:
		case s.remoteContact(contact) && s.eitherBlocks(ctx, account, contact):
		case s.remoteContact(contact):
			// The answers come to the account's bare JID (RFC 6121
			// §4.3.2), so its other sessions see them again: harmless,
			// and cheaper than keeping every remote contact's presence.
			s.probeRemote(account, contact)
		case len(s.availableOf(contact))+len(s.nodeSessions(contact, true)) > 0 && !s.eitherBlocks(ctx, account, contact):
			s.presenceOf(contact, c)
		}
	}
	s.presenceOf(account, c)
}

// presenceOf writes to c the presence of every available session of
// account but c itself (which had its own from broadcast), on this node
// and the others.
func (s *Server) presenceOf(account string, c *conn) {
	for _, o := range s.sessionsOf(account) {
		s.mu.Lock()
		p := o.available
		s.mu.Unlock()
		if p != "" && o != c {
			c.deliver(stanza.WithTo(p, c.jid.String()), false)
		}
	}
	for _, n := range s.nodeSessions(account, true) {
		c.deliver(stanza.WithTo(n.Presence, c.jid.String()), false)
	}
}

// presenceTo sends from's current presence to every available session of
// to, here and on other nodes, unless either blocks the other.
func (s *Server) presenceTo(ctx context.Context, from, to string) {
	if s.eitherBlocks(ctx, from, to) {
		return
	}
	for _, p := range s.presencesOf(from) {
		s.toAvailable(to, p)
	}
}

// unavailableTo tells every available session of to that from's
// available sessions are gone from its view (after a subscription ended),
// unless either blocks the other (then they were gone already).
func (s *Server) unavailableTo(ctx context.Context, from, to string) {
	if s.eitherBlocks(ctx, from, to) {
		return
	}
	for _, o := range s.availableOf(from) {
		s.toAvailable(to, fmt.Sprintf(`<presence type='unavailable' from='%s'/>`, stanza.Escape(o.jid.String())))
	}
	for _, n := range s.nodeSessions(from, true) {
		s.toAvailable(to, fmt.Sprintf(`<presence type='unavailable' from='%s'/>`, stanza.Escape(n.JID)))
	}
}

// presencesOf returns the presence of every available session of
// account, here and on other nodes.
func (s *Server) presencesOf(account string) []string {
	var out []string
	for _, o := range s.availableOf(account) {
		s.mu.Lock()
		p := o.available
		s.mu.Unlock()
		if p != "" {
			out = append(out, p)
		}
	}
	for _, n := range s.nodeSessions(account, true) {
		out = append(out, n.Presence)
	}
	return out
}

// toAvailable delivers wire to every available session of account, here
// and on other nodes, each addressed to it.
func (s *Server) toAvailable(account, wire string) {
	for _, c := range s.availableOf(account) {
		c.deliver(stanza.WithTo(wire, c.jid.String()), false)
	}
	for _, n := range s.nodeSessions(account, true) {
		s.toNode(n, wire)
	}
}

// goneUnavailable broadcasts unavailable for a session that ends while
// available (RFC 6121 §4.5.4).
func (s *Server) goneUnavailable(c *conn) {
	c.presenceMu.Lock()
	defer c.presenceMu.Unlock()
	s.mu.Lock()
	was := c.available
	c.available, c.availableEl = "", nil
	s.mu.Unlock()
	if was != "" {
		s.announce(c, "")
		// The session is gone, and with it its context: the broadcast gets
		// a bounded one of its own, so a stuck store cannot hold teardown.
		ctx, cancel := context.WithTimeout(context.Background(), mux.TeardownTimeout)
		defer cancel()
		s.broadcast(ctx, c, fmt.Sprintf(`<presence type='unavailable' from='%s'/>`, stanza.Escape(c.jid.String())))
	}
}

// dress adds to stamped, e as restamped, what the features add to the
// account's available presence (mux.PresenceChild).
func (s *Server) dress(ctx context.Context, account string, e *element, stamped string) string {
	for _, f := range s.cfg.Mux.PresenceChildren() {
		if child := f(ctx, account, e); child != "" {
			stamped = stanza.InsertChild(stamped, child)
		}
	}
	return stamped
}

// RefreshPresence broadcasts again the presence of each available session
// of account, dressed anew: what a feature adds to it changed (its
// vCard's avatar, XEP-0153), and a client that knows nothing of it sends
// no new presence. Each session's latest presence is sent, in order with
// its own (presenceMu); one that went unavailable meanwhile is left alone.
func (s *Server) RefreshPresence(ctx context.Context, account string) {
	for _, o := range s.availableOf(account) {
		o.presenceMu.Lock()
		s.mu.Lock()
		el := o.availableEl
		s.mu.Unlock()
		if el != nil {
			wire := s.dress(ctx, account, el, stanza.Restamp(el, o.jid.String()))
			s.mu.Lock()
			o.available = wire
			s.mu.Unlock()
			s.announce(o, wire)
			s.broadcast(ctx, o, wire)
		}
		o.presenceMu.Unlock()
	}
}
