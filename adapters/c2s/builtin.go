package c2s

// The features still built into this package, registered on the mux like
// any feature package's, so that dispatch and disco treat them alike. Each
// moves out to adapters/features as it is rewritten against mux and stanza
// alone (issue 11).

import (
	"context"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/roster"
)

// JID and Send make a session a mux.Session.
func (c *conn) JID() jid.JID { return c.jid }

func (c *conn) Deliver(s string, urgent bool) { c.deliver(s, urgent) }

// SendAll queues stanzas as Send does, written in one piece: a MAM page
// is one write to the connection instead of fifty.
func (c *conn) SendAll(stanzas []string) {
	if err := c.writeAll(stanzas); err != nil {
		c.log.Debug("write failed", "err", err)
	}
}

func (c *conn) Send(s string) {
	if err := c.write(s); err != nil {
		c.log.Debug("write failed", "err", err)
	}
}

// builtin adapts one of this package's IQ handlers, which answer with
// stanzas they build, to a mux.Handler.
func builtin(h func(c *conn, ctx context.Context, e *element, q element) error) mux.Handler {
	return func(ctx context.Context, iq *mux.IQ) error {
		c, ok := iq.Session.(*conn)
		if !ok {
			// A user at another server: these are the account's own.
			return stanza.Errorf("service-unavailable", "")
		}
		// A write error means the connection is gone: the stream's reader
		// finds out on its own.
		h(c, ctx, (*element)(iq.Stanza), element(iq.Payload))
		iq.Answered()
		return nil
	}
}

// registerBuiltins registers this package's features on m.
func (s *Server) registerBuiltins(m *mux.Mux) {
	// RFC 3921's session establishment, long a no-op (RFC 6121 drops it);
	// older clients still ask.
	m.Handle(mux.Server, nsSession, func(_ context.Context, iq *mux.IQ) error {
		if iq.Type() != "set" {
			return stanza.Errorf("bad-request", "session establishment is an IQ set")
		}
		iq.Result("")
		return nil
	})
	m.Handle(mux.Server, nsCarbons, func(_ context.Context, iq *mux.IQ) error {
		if l := iq.Payload.XMLName.Local; iq.Type() != "set" || l != "enable" && l != "disable" {
			return stanza.Errorf("bad-request", "carbons are enabled or disabled with an IQ set")
		}
		// NOTSPEC(XEP-0280 §4): disable is acknowledged but changes
		// nothing: every client of the account sees every 1:1 message,
		// always.
		iq.Result("")
		return nil
	}, nsCarbons)
	if s.cfg.Accounts != nil {
		m.Handle(mux.Account, nsRoster, builtin((*conn).rosterIQ))
	}
	if s.cfg.Blocking != nil {
		// XEP-0191 §3.1: the server advertises it, and the IQs (without a
		// to) are the account's; an IQ to the own bare JID is answered too.
		m.Handle(mux.Account, nsBlocking, s.blockingIQ, nsBlocking)
		m.Feature(mux.Server, nsBlocking)
	}
	if s.cfg.Archive != nil {
		// Every 1:1 message is archived with a stanza-id (XEP-0359), and its
		// sender's archive ID is "<session id>:<message id>" (see README).
		m.Feature(mux.Account, nsStanzaID, nsArchiveID)
	}
}

// destinations are where an IQ get or set to `to` from c may be handled
// on the mux, in order: no to is the account's (RFC 6120 §10.3.3), and
// what the server answers there too; another local account's bare JID is
// a Contact to those it shares its presence with.
func (c *conn) destinations(ctx context.Context, to string) []mux.Dest {
	switch to {
	case "":
		return []mux.Dest{mux.Server, mux.Account}
	case c.domain:
		return []mux.Dest{mux.Server}
	case c.jid.Bare().String(), c.jid.String():
		return []mux.Dest{mux.Account}
	}
	if j, err := jid.Parse(to); err == nil && j.Resourcepart() == "" && j.Localpart() != "" && c.srv.isLocal(j) {
		if c.srv.sharesPresence(ctx, j.String(), c.jid.Bare().String()) {
			return []mux.Dest{mux.Contact, mux.Anyone}
		}
		return []mux.Dest{mux.Anyone}
	}
	return nil
}

// sharesPresence reports whether account lets viewer see its presence (a
// From or Both subscription), which is what the server may tell viewer on
// account's behalf.
func (s *Server) sharesPresence(ctx context.Context, account, viewer string) bool {
	if s.cfg.Accounts == nil {
		return false
	}
	st, err := s.cfg.Accounts.Roster(ctx, account)
	if err != nil {
		return false
	}
	it, ok := st.Items[viewer]
	return ok && (it.Subscription == roster.From || it.Subscription == roster.Both)
}
