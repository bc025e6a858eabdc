package pep

// Who hears of a node's items (XEP-0163 §4.3): the account's clients and
// its contacts' clients that ask for the node's events (+notify, from
// their entity capabilities, which the session core learns), as the
// node's access model lets them read it; and a client that comes online
// gets the last item of each node it asks events of.

import (
	"context"
	"fmt"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
	pepdomain "annals.im/annals/domain/pep"
	"annals.im/annals/domain/roster"
)

// pepNotify sends an event of node to the clients that are to hear of it:
// every available client of the account's own, and those of the contacts
// the account shares its presence with that may read the node and ask
// for its events.
//
// NOTSPEC(XEP-0163 §4.3): the account's own clients hear of its nodes
// whether they asked or not (clients ignore what they do not know):
// clients that keep bookmarks there have relied on it, asking or not.
func (s *Service) pepNotify(ctx context.Context, acct, node, items string) {
	for _, t := range s.host.Available(acct) {
		t.Deliver(eventXML(acct, t.JID().String(), node, items), false)
	}
	n, err := s.cfg.PEP.Node(ctx, acct, node)
	if err != nil || s.cfg.Rosters == nil {
		return
	}
	st, err := s.cfg.Rosters.Roster(ctx, acct)
	if err != nil {
		s.cfg.Log.Error("PEP: reading the owner's roster to notify", "account", acct, "err", err)
		return
	}
	for contact, it := range st.Items {
		r := pepdomain.Reader{InRoster: true, Groups: it.Groups, Subscribed: it.Subscription == roster.From || it.Subscription == roster.Both}
		if !r.Subscribed || n.CanRead(r) != nil || s.blocked(ctx, acct, contact) {
			continue
		}
		for _, t := range s.host.Available(contact) {
			if yes, _ := notifies(t, node); yes {
				t.Deliver(eventXML(acct, t.JID().String(), node, items), false)
			}
		}
	}
}

// sessionAvailable sends a client that came online the last item of each
// node it asks events of: its account's, and those of the contacts whose
// presence it receives, as their access models let it read them.
func (s *Service) sessionAvailable(ctx context.Context, sess mux.Session) {
	if _, ok := sess.(mux.Capable); !ok {
		return
	}
	me := sess.JID().Bare().String()
	owners := []string{me}
	if elsewhere, ok := sess.(remoteSession); ok {
		// A contact's client at another server: the nodes of the account
		// here it told of its presence, as that account lets it read them.
		owners = nil
		for _, o := range elsewhere.Owners() {
			if !s.blocked(ctx, o, me) {
				owners = append(owners, o)
			}
		}
	} else if s.cfg.Rosters != nil {
		st, err := s.cfg.Rosters.Roster(ctx, me)
		if err != nil {
			s.cfg.Log.Error("PEP: reading a roster for the last items", "account", me, "err", err)
		}
		for contact, it := range st.Items {
			if (it.Subscription == roster.To || it.Subscription == roster.Both) && !s.blocked(ctx, me, contact) {
				owners = append(owners, contact)
			}
		}
	}
	for _, owner := range owners {
		nodes, err := s.cfg.PEP.Nodes(ctx, owner)
		if err != nil {
			continue // an account elsewhere, or gone
		}
		r := s.reader(ctx, owner, me)
		for name, n := range nodes {
			if yes, _ := notifies(sess, name); !yes || len(n.Items) == 0 || n.CanRead(r) != nil {
				continue
			}
			if owner == me {
				// The account's own clients get its bookmarks' passwords.
				if n, err = s.pepNode(ctx, me, name); err != nil || len(n.Items) == 0 {
					continue
				}
			}
			last := n.Items[len(n.Items)-1]
			sess.Deliver(eventXML(owner, sess.JID().String(), name, "<item id='"+stanza.Escape(last.ID)+"'>"+last.Payload+"</item>"), false)
		}
	}
}

// remoteSession is a contact's client at another server, as the session
// core presents it: it names the accounts here whose nodes it may hear of.
type remoteSession interface {
	mux.Session
	Owners() []string
}

// notifies reports whether session t asks for node's events, and
// whether that is known.
func notifies(t mux.Session, node string) (yes, known bool) {
	if c, ok := t.(mux.Capable); ok {
		return c.Notifies(node)
	}
	return false, false
}

// eventXML is a PEP event notification (XEP-0060 §7.1.2.1).
func eventXML(from, to, node, items string) string {
	return fmt.Sprintf(`<message xmlns='%s' from='%s' to='%s' type='headline' id='%s'><event xmlns='%s'><items node='%s'>%s</items></event></message>`,
		nsClient, stanza.Escape(from), stanza.Escape(to), stanza.NewID(), nsPubsubEvent, stanza.Escape(node), items)
}

// blocked reports whether a and b block each other, when the host can tell.
func (s *Service) blocked(ctx context.Context, a, b string) bool {
	bl, ok := s.host.(Blocker)
	return ok && bl.EitherBlocks(ctx, a, b)
}
