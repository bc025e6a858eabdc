package c2s

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/roster"
)

const nsRoster = "jabber:iq:roster"

// Accounts is what the c2s adapter needs from the account streams: each
// account's roster, and the roster rules applied with their events stored.
type Accounts interface {
	Roster(ctx context.Context, account string) (roster.State, error)
	Do(ctx context.Context, account string, cmd roster.Command, cause string) (roster.Outcome, roster.State, error)
}

// rosterIQ answers roster get and set (RFC 6121 §2, XEP-0237 versions).
func (c *conn) rosterIQ(ctx context.Context, e *element, q element) error {
	account := c.jid.Bare().String()
	switch e.Attr("type") {
	case "get":
		st, err := c.srv.cfg.Accounts.Roster(ctx, account)
		if err != nil {
			c.log.Error("roster get", "err", err)
			return c.write(c.errorReply(e, "wait", "internal-server-error"))
		}
		ver := strconv.FormatUint(st.Version, 10)
		if q.Attr("ver") == ver {
			// The client's copy is current: an empty result (RFC 6121 §2.6.3).
			return c.write(fmt.Sprintf(`<iq type='result' id='%s' to='%s'/>`, stanza.Escape(e.Attr("id")), stanza.Escape(c.jid.String())))
		}
		var b strings.Builder
		for _, it := range st.Items {
			b.WriteString(itemXML(it, false))
		}
		return c.write(fmt.Sprintf(`<iq type='result' id='%s' to='%s'><query xmlns='%s' ver='%s'>%s</query></iq>`,
			stanza.Escape(e.Attr("id")), stanza.Escape(c.jid.String()), nsRoster, ver, b.String()))
	case "set":
		item, ok := q.Child()
		contact, err := jid.Parse(item.Attr("jid"))
		if !ok || item.XMLName.Local != "item" || err != nil {
			return c.write(c.errorReply(e, "modify", "bad-request"))
		}
		contactBare := contact.Bare().String()
		var cmd roster.Command
		if item.Attr("subscription") == "remove" {
			cmd = roster.RemoveItem{Contact: contactBare}
		} else {
			set := roster.SetItem{Contact: contactBare, Name: item.Attr("name"), MaxItems: c.srv.rosterLimit()}
			for _, g := range groups(item) {
				set.Groups = append(set.Groups, g)
			}
			cmd = set
		}
		out, _, err := c.srv.cfg.Accounts.Do(ctx, account, cmd, event.Cause(ctx, "c2s"))
		switch {
		case err == roster.ErrSelf || err == roster.ErrBadGroup:
			return c.write(c.errorReply(e, "modify", "not-acceptable"))
		case err == roster.ErrNoItem:
			return c.write(c.errorReply(e, "cancel", "item-not-found"))
		case errors.Is(err, roster.ErrFull):
			return c.write(c.rosterFull(e))
		case err != nil:
			c.log.Error("roster set", "err", err)
			return c.write(c.errorReply(e, "wait", "internal-server-error"))
		}
		if err := c.write(fmt.Sprintf(`<iq type='result' id='%s' to='%s'/>`, stanza.Escape(e.Attr("id")), stanza.Escape(c.jid.String()))); err != nil {
			return err
		}
		// The push to the account's sessions comes from the log (Publish).
		// A removed contact is told, as if the user had sent these (§2.5.2).
		if out.Unsubscribe {
			c.srv.subscription(ctx, account, contactBare, roster.OutUnsubscribe, true)
		}
		if out.Unsubscribed {
			c.srv.subscription(ctx, account, contactBare, roster.OutUnsubscribed, true)
		}
		return nil
	}
	return c.write(c.errorReply(e, "modify", "bad-request"))
}

func groups(item element) []string {
	var out []string
	d := xml.NewDecoder(strings.NewReader(string(item.Inner)))
	for {
		tok, err := d.Token()
		if err != nil {
			return out
		}
		if st, ok := tok.(xml.StartElement); ok && st.Name.Local == "group" {
			var g string
			if d.DecodeElement(&g, &st) == nil {
				out = append(out, strings.TrimSpace(g))
			}
		}
	}
}

// itemXML renders an item; removed renders subscription='remove'.
func itemXML(it roster.Item, removed bool) string {
	var b strings.Builder
	b.WriteString("<item jid='" + stanza.Escape(it.Contact) + "'")
	if it.Name != "" {
		b.WriteString(" name='" + stanza.Escape(it.Name) + "'")
	}
	sub := string(it.Subscription)
	if removed {
		sub = "remove"
	}
	b.WriteString(" subscription='" + sub + "'")
	if it.AskOut && !removed {
		b.WriteString(" ask='subscribe'")
	}
	b.WriteString(">")
	for _, g := range it.Groups {
		b.WriteString("<group>" + stanza.Escape(g) + "</group>")
	}
	b.WriteString("</item>")
	return b.String()
}

// push sends the account's current item for contact to every session of
// the account (RFC 6121 §2.1.6).
func (s *Server) push(account string, st roster.State, contact string) {
	it, ok := st.Items[contact]
	if !ok {
		it = roster.Item{Contact: contact}
	}
	item := itemXML(it, !ok)
	for _, c := range s.sessionsOf(account) {
		c.write(fmt.Sprintf(`<iq type='set' id='push%s' to='%s'><query xmlns='%s' ver='%d'>%s</query></iq>`,
			stanza.NewID(), stanza.Escape(c.jid.String()), nsRoster, st.Version, item))
	}
}

// sessionsOf returns the bound sessions of the account with bare JID account.
func (s *Server) sessionsOf(account string) []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*conn, 0, len(s.sessions[account]))
	for _, c := range s.sessions[account] {
		out = append(out, c)
	}
	return out
}

// subscription handles a subscription stanza from account to contact
// (RFC 6121 §3): the sender's roster first, then, if the stanza goes on
// and the contact is local, the contact's roster and clients. quiet skips
// the outbound side's forwarding check (stanzas the server sends itself).
//
// It returns roster.ErrFull when the stanza would add a contact to the
// account's full roster; nothing is sent then. A request that would add
// a contact to the *contact's* full roster is dropped.
func (s *Server) subscription(ctx context.Context, account, contact string, kind roster.Stanza, quiet bool) error {
	out, err := s.applyPresence(ctx, account, contact, kind)
	if err != nil || !out.Forward && !quiet {
		return err
	}
	cj, err := jid.Parse(contact)
	if err != nil {
		return nil
	}
	if !s.local(cj.Domainpart()) {
		s.subscriptionOut(account, contact, kind)
		return nil
	}
	if aj, err := jid.Parse(account); err == nil && s.blocksLocal(ctx, cj, aj) {
		// Dropped without a word (XEP-0191 §3.3): the contact's roster
		// and clients hear nothing of it.
		return nil
	}
	in := map[roster.Stanza]roster.Stanza{
		roster.OutSubscribe: roster.InSubscribe, roster.OutSubscribed: roster.InSubscribed,
		roster.OutUnsubscribe: roster.InUnsubscribe, roster.OutUnsubscribed: roster.InUnsubscribed,
	}[kind]
	cout, err := s.receiveSubscription(ctx, contact, account, in)
	if err != nil || cout.AutoReply || !cout.Forward {
		// NOTSPEC(RFC 6121 §3.1.3): a request the contact's full roster
		// cannot take is dropped, as one the contact ignores would be: the
		// sender's item stays pending. An error back would tell a stranger
		// how many contacts the account has.
		return nil
	}
	switch in {
	case roster.InSubscribed:
		s.presenceTo(ctx, account, contact) // the contact now sees the account
	case roster.InUnsubscribe:
		s.unavailableTo(ctx, contact, account) // the account no longer sees the contact
	case roster.InUnsubscribed:
		s.unavailableTo(ctx, account, contact) // the contact no longer sees the account
	}
	return nil
}

// receiveSubscription runs a subscription stanza from `from` (an account
// here or a user elsewhere) on the roster of account, a local one, and
// does what the contact's side does (RFC 6121 §3): its clients see the
// stanza if it goes on, and a pre-approved request is approved.
func (s *Server) receiveSubscription(ctx context.Context, account, from string, in roster.Stanza) (roster.Outcome, error) {
	out, err := s.applyPresence(ctx, account, from, in)
	if err != nil {
		return out, err
	}
	if out.Forward {
		typ := strings.TrimPrefix(string(in), "in-")
		wire := fmt.Sprintf(`<presence type='%s' from='%s' to='%s'/>`, typ, stanza.Escape(from), stanza.Escape(account))
		for _, c := range s.sessionsOf(account) {
			c.write(wire)
		}
		for _, n := range s.nodeSessions(account, false) {
			s.cfg.Cluster.Send(n.Node, n.JID, wire)
		}
	}
	if out.AutoReply {
		s.subscription(ctx, account, from, roster.OutSubscribed, false)
	}
	return out, nil
}

// applyPresence runs a subscription stanza on account's roster (the
// changed item reaches the account's sessions from the log). After a
// failure, which is logged, the stanza goes no further.
func (s *Server) applyPresence(ctx context.Context, account, contact string, kind roster.Stanza) (roster.Outcome, error) {
	out, _, err := s.cfg.Accounts.Do(ctx, account, roster.Presence{Contact: contact, Stanza: kind, MaxItems: s.rosterLimit()}, event.Cause(ctx, "presence"))
	if errors.Is(err, roster.ErrFull) {
		s.cfg.Log.Info("subscription refused: the roster is full", "account", account, "contact", contact, "stanza", kind, "max_roster_items", s.cfg.MaxRosterItems)
		return out, err
	}
	if err != nil {
		s.cfg.Log.Error("subscription", "account", account, "contact", contact, "stanza", kind, "err", err)
		return out, err
	}
	return out, nil
}

// rosterLimit is the roster commands' MaxItems: 0 for no limit.
func (s *Server) rosterLimit() int { return max(s.cfg.MaxRosterItems, 0) }

// rosterFull answers a stanza that would add a contact to a full roster.
// resource-constraint of type cancel: the same request fails until the
// user removes contacts, so waiting does not help.
func (c *conn) rosterFull(e *element) string {
	return c.errorReplyText(e, "cancel", "resource-constraint", fmt.Sprintf("your roster is full: at most %d contacts", c.srv.cfg.MaxRosterItems))
}

func (s *Server) local(domain string) bool {
	for _, d := range s.cfg.Domains {
		if d == domain {
			return true
		}
	}
	return false
}
