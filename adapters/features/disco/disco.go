// Package disco answers service discovery (XEP-0030) for the server and
// for the sender's own account, from what the features registered on the
// mux: identities and features for disco#info, items for disco#items,
// and for a node, what the feature that keeps it says (mux.NodeDisco).
// Nothing is listed by hand, so what is advertised is what is served.
package disco

import (
	"context"
	"errors"
	"strings"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
)

// Namespaces of XEP-0030.
const (
	NSInfo  = "http://jabber.org/protocol/disco#info"
	NSItems = "http://jabber.org/protocol/disco#items"
)

// Register answers disco#info and disco#items on m for the server (named
// serverName, an IM server), for the own account and, to its contacts,
// for another account (an account, with what features registered there).
// Call it before or after the other features: answers are built when
// asked.
func Register(m *mux.Mux, serverName string) {
	m.Identity(mux.Server, mux.Identity{Category: "server", Type: "im", Name: serverName})
	m.Identity(mux.Account, mux.Identity{Category: "account", Type: "registered"})
	m.Identity(mux.Contact, mux.Identity{Category: "account", Type: "registered"})
	for _, d := range []mux.Dest{mux.Server, mux.Account, mux.Contact} {
		m.Handle(d, NSInfo, info(m, d), NSInfo, NSItems)
		m.Handle(d, NSItems, items(m, d))
	}
}

func info(m *mux.Mux, d mux.Dest) mux.Handler {
	return func(_ context.Context, iq *mux.IQ) error {
		if iq.Type() != "get" {
			return stanza.Errorf("bad-request", "disco#info is an IQ get")
		}
		ids, features := m.Identities(d), m.Features(d)
		var b strings.Builder
		b.WriteString("<query xmlns='" + NSInfo + "'")
		if node := iq.Payload.Attr("node"); node != "" {
			switch nids, nfeatures, err := m.NodeInfo(d, iq.Session, at(d, iq), node); {
			case err == nil:
				ids, features = nids, nfeatures
			case errors.Is(err, mux.ErrNoNode):
				// The same answer as the entity's for any other node
				// (entity capabilities ask with node#ver).
			default:
				return err
			}
			b.WriteString(" node='" + stanza.Escape(node) + "'")
		}
		b.WriteString(">")
		for _, id := range ids {
			b.WriteString("<identity category='" + stanza.Escape(id.Category) + "' type='" + stanza.Escape(id.Type) + "'")
			if id.Name != "" {
				b.WriteString(" name='" + stanza.Escape(id.Name) + "'")
			}
			b.WriteString("/>")
		}
		for _, f := range features {
			b.WriteString("<feature var='" + stanza.Escape(f) + "'/>")
		}
		b.WriteString("</query>")
		iq.Result(b.String())
		return nil
	}
}

func items(m *mux.Mux, d mux.Dest) mux.Handler {
	return func(_ context.Context, iq *mux.IQ) error {
		if iq.Type() != "get" {
			return stanza.Errorf("bad-request", "disco#items is an IQ get")
		}
		list := m.Items(d)
		var b strings.Builder
		b.WriteString("<query xmlns='" + NSItems + "'")
		if node := iq.Payload.Attr("node"); node != "" {
			b.WriteString(" node='" + stanza.Escape(node) + "'")
			switch nitems, err := m.NodeItems(d, iq.Session, at(d, iq), node); {
			case err == nil:
				list = nitems
			case errors.Is(err, mux.ErrNoNode):
				list = nil // a node nobody keeps has no items
			default:
				return err
			}
		}
		b.WriteString(">")
		for _, it := range list {
			b.WriteString("<item jid='" + stanza.Escape(it.JID) + "'")
			if it.Node != "" {
				b.WriteString(" node='" + stanza.Escape(it.Node) + "'")
			}
			if it.Name != "" {
				b.WriteString(" name='" + stanza.Escape(it.Name) + "'")
			}
			b.WriteString("/>")
		}
		b.WriteString("</query>")
		iq.Result(b.String())
		return nil
	}
}

// at is the address an IQ to d asked: the one it was sent to, or for an
// IQ without a to, the sender's server or account.
func at(d mux.Dest, iq *mux.IQ) string {
	if iq.From != "" {
		return iq.From
	}
	if d == mux.Server {
		return iq.Session.JID().Domainpart()
	}
	return iq.Session.JID().Bare().String()
}
