package c2s

// Federation, inbound: stanzas from users at other servers to this
// server's accounts, as RFC 6121 says a server handles stanzas for its
// users (§8.5): 1:1 chat archived and forked exactly as between local
// users, subscriptions on the account's roster, probes answered, presence
// and IQs delivered.

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strings"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/roster"
)

// peer is a user at another server as the features see it: a mux.Session
// whose stanzas go back over federation. It is a comparable value, so
// that the same user is the same session to the room service from one
// stanza to the next (its attachments are keyed by session).
type peer struct {
	srv    *Server
	from   string // the user's full JID, at another server
	domain string // ours that it wrote to, whose stream to its server answers; "": each stanza's from
}

func (p peer) JID() jid.JID { return jid.MustParse(p.from) }

func (p peer) Send(s string) {
	domain := p.domain
	if domain == "" {
		domain = fromDomain(s)
	}
	from, err := jid.Parse(domain)
	if err != nil {
		p.srv.cfg.Log.Error("a stanza to another server has no from of ours", "to", p.from)
		return
	}
	p.srv.cfg.Remote.Send(from, jid.MustParse(p.from), s)
}

// fromDomain is the domain of the from of a stanza this server wrote
// (single-quoted attributes, '>' escaped in values): the stream to the
// peer must be the one for that domain.
func fromDomain(s string) string {
	end := strings.IndexByte(s, '>')
	if end < 0 {
		return ""
	}
	_, v, ok := strings.Cut(s[:end], " from='")
	if !ok {
		return ""
	}
	v, _, _ = strings.Cut(v, "'")
	if _, d, ok := strings.Cut(v, "@"); ok {
		v = d
	}
	v, _, _ = strings.Cut(v, "/")
	return v
}

func (p peer) SendAll(ss []string) {
	for _, s := range ss {
		p.Send(s)
	}
}

func (p peer) Deliver(s string, _ bool) { p.Send(s) }

// fail answers e with an error from the address it was sent to, unless e
// is one or an IQ answer (RFC 6120 §8.3.1: errors are never answered).
func (p peer) fail(e *stanza.Element, se *stanza.Error) {
	typ := e.Attr("type")
	if typ == "error" || e.XMLName.Local == "iq" && typ == "result" {
		return
	}
	p.Send(fmt.Sprintf(`<%s xmlns='%s' type='error' id='%s'%s>%s</%s>`, e.XMLName.Local, nsClient, stanza.Escape(e.Attr("id")),
		stanza.ToFrom(p.from, e.Attr("to")), se.XML(), e.XMLName.Local))
}

// FromRemote takes a stanza a server sent from one of its users (its
// stream authenticated from's domain) to to, at one of our domains. Each
// sender's stanzas come in the order sent, different senders' side by
// side (s2s.Ordered); a stanza it refuses is answered with an error to the
// sender.
func (s *Server) FromRemote(ctx context.Context, from, to jid.JID, e *stanza.Element) {
	if s.cfg.Remote == nil {
		return
	}
	e = asClient(e)
	p := peer{srv: s, from: from.String(), domain: to.Domainpart()}
	ctx = event.WithCause(ctx, "s2s:"+from.Domainpart()+"/"+e.Attr("id"))
	if svc, ok := s.cfg.Mux.Service(to.Domainpart()); ok {
		// A room: the service takes the user as an occupant of its own.
		if err := svc.Handle(ctx, p, e, to); err != nil {
			s.cfg.Log.Info("a service refused a stanza from another server", "service", to.Domainpart(), "from", p.from, "err", err)
		}
		return
	}
	if !s.isLocal(to) {
		return
	}
	r := remoteStanza{peer: p, here: to, user: from}
	if to.Resourcepart() == roomsResource {
		// To an account as it occupies a room elsewhere.
		if !s.fromRemoteRoom(r, e) {
			r.fail(e, stanza.Errorf("service-unavailable", ""))
		}
		return
	}
	if s.blocksLocal(ctx, to, from) {
		// XEP-0191 §3.3: the account takes nothing from the sender.
		if answersBlocked(e) {
			r.fail(e, stanza.Errorf("service-unavailable", ""))
		}
		return
	}
	switch e.XMLName.Local {
	case "message":
		s.messageFrom(ctx, r, e)
	case "presence":
		s.presenceFrom(ctx, r, e)
	case "iq":
		s.iqFrom(ctx, r, e)
	}
}

// asClient is e as a client would have sent it: in the client namespace,
// its children in the stanza's namespace with it (Inner is written
// relative to the stanza's), so that the handlers that look for
// jabber:client children (a subject, an error) find them.
func asClient(e *stanza.Element) *stanza.Element {
	c := *e
	c.XMLName.Space = stanza.NSClient
	c.Attrs = slices.DeleteFunc(slices.Clone(e.Attrs), func(a xml.Attr) bool { return a.Name.Space == "" && a.Name.Local == "xmlns" })
	return &c
}

// remoteStanza is a stanza's sender at another server and the address at
// one of our domains it wrote to.
type remoteStanza struct {
	peer
	here, user jid.JID
}

func (s *Server) messageFrom(ctx context.Context, p remoteStanza, e *stanza.Element) {
	typ := e.Attr("type")
	if typ == "" {
		typ = "normal"
	}
	m := stanza.ScanRemoteMessage(e, s.ours)
	stripped := *e
	stripped.Inner = m.Inner
	wire := stanza.Restamp(&stripped, p.from)
	switch typ {
	case "chat", "normal":
		if p.here.Localpart() != "" {
			s.chatFrom(ctx, p, e, typ, m, wire)
			return
		}
	case "error":
		if p.here.Resourcepart() == "" {
			// An error for what the server sent from the account's bare
			// JID (a PEP event to a contact's client): that client is not
			// there. Its clients sent nothing from the bare JID.
			s.remoteGone(p.user)
			return
		}
	case "groupchat", "headline":
	default:
		p.fail(e, stanza.Errorf("bad-request", ""))
		return
	}
	targets, elsewhere := s.route(p.here), s.nodeRoute(p.here)
	if len(targets)+len(elsewhere) == 0 && typ == "normal" {
		p.fail(e, stanza.Errorf("service-unavailable", ""))
	}
	for _, t := range targets {
		t.deliver(stanza.WithTo(wire, t.jid.String()), m.Body)
	}
	for _, n := range elsewhere {
		s.toNode(n, wire)
	}
}

// chatFrom handles a 1:1 message from a user at another server: archived
// for the local recipient and forked to its clients, as one from a local
// user (chat).
func (s *Server) chatFrom(ctx context.Context, p remoteStanza, e *stanza.Element, typ string, m stanza.MessageInfo, wire string) {
	r, err := s.recordChat(ctx, archive.Send{From: p.user, To: p.here, Kind: typ, Stanza: wire, Reserialized: true, MessageID: e.Attr("id")}, m.Archivable())
	var se *stanza.Error
	switch {
	case errors.As(err, &se):
		p.fail(e, se)
		return
	case err != nil:
		s.cfg.Log.Error("archiving a message from another server failed", "from", p.from, "err", err)
		p.fail(e, &stanza.Error{Type: "wait", Cond: "resource-constraint"})
		return
	}
	defer r.unlock()
	r.deliver(wire, p.here.Bare().String(), typ, m.Body || m.Crypted)
	if m.Body || m.Crypted {
		s.pushFor(p.here.Bare().String(), p.from, e)
	}
}

func (s *Server) presenceFrom(ctx context.Context, p remoteStanza, e *stanza.Element) {
	if s.cfg.Accounts == nil {
		return
	}
	account, contact := p.here.Bare().String(), p.user.Bare().String()
	switch typ := e.Attr("type"); typ {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		if p.here.Localpart() == "" {
			return
		}
		kind := roster.Stanza("in-" + typ)
		out, err := s.receiveSubscription(ctx, account, contact, kind)
		if err == nil && !out.AutoReply && out.Forward && kind == roster.InUnsubscribed {
			// The account no longer sees the contact (RFC 6121 §3.3.3).
			for _, c := range s.availableOf(account) {
				c.deliver(fmt.Sprintf(`<presence type='unavailable' from='%s' to='%s'/>`, stanza.Escape(contact), stanza.Escape(c.jid.String())), false)
			}
		}
	case "probe":
		s.answerProbe(ctx, p, account, contact)
	case "", "unavailable", "error":
		if typ != "error" {
			s.remotePresence(ctx, account, p.user, e)
		}
		wire := stanza.Restamp(e, p.from)
		// To a client of ours, or else to every available one: a client
		// that sent no presence asked for none (RFC 6121 §4.4.2).
		targets, elsewhere := s.availableOf(account), s.nodeSessions(account, true)
		if p.here.Resourcepart() != "" {
			if t := s.sessionAt(p.here); t != nil {
				targets, elsewhere = []*conn{t}, nil
			} else if n := s.boundAt(p.here); n != nil {
				targets, elsewhere = nil, []NodeSession{*n}
			}
		}
		for _, t := range targets {
			t.deliver(stanza.WithTo(wire, t.jid.String()), false)
		}
		for _, n := range elsewhere {
			s.toNode(n, wire)
		}
	default:
		p.fail(e, stanza.Errorf("bad-request", ""))
	}
}

// answerProbe answers a probe from a contact at another server (RFC 6121
// §4.3.2): with the presence of each of the account's available sessions
// if the account shares it with the contact (From or Both), unavailable
// if none is; and with unsubscribed if it does not share it.
func (s *Server) answerProbe(ctx context.Context, p remoteStanza, account, contact string) {
	if p.here.Localpart() == "" {
		return
	}
	if !s.sharesPresence(ctx, account, contact) {
		p.Send(fmt.Sprintf(`<presence xmlns='%s' type='unsubscribed' from='%s' to='%s'/>`, nsClient, stanza.Escape(account), stanza.Escape(p.from)))
		return
	}
	sent := false
	for _, wire := range s.presencesOf(account) {
		from := account
		if j, ok := fromOf(wire); ok {
			from = j.String()
		}
		s.sendRemote(from, p.from, stanza.WithTo(wire, p.from))
		sent = true
	}
	if !sent {
		p.Send(fmt.Sprintf(`<presence xmlns='%s' type='unavailable' from='%s' to='%s'/>`, nsClient, stanza.Escape(account), stanza.Escape(p.from)))
	}
}

// iqFrom handles an IQ from a user at another server: one to a client of
// ours goes to it, an answer to one of our clients' IQs back to it, and
// the server answers for its domain and, for those they share presence
// with, for its accounts (RFC 6121 §8.5).
func (s *Server) iqFrom(ctx context.Context, p remoteStanza, e *stanza.Element) {
	typ := e.Attr("type")
	if p.here.Resourcepart() != "" {
		if t := s.sessionAt(p.here); t != nil {
			t.deliver(stanza.Restamp(e, p.from), true)
			return
		}
		if n := s.boundAt(p.here); n != nil {
			s.toNode(*n, stanza.Restamp(e, p.from))
			return
		}
		p.fail(e, stanza.Errorf("service-unavailable", ""))
		return
	}
	if typ != "get" && typ != "set" {
		if typ != "result" && typ != "error" {
			p.fail(e, stanza.Errorf("bad-request", ""))
			return
		}
		if p.here.Localpart() != "" {
			s.answered(p.here, p.from, e) // one the server asked for an account
		}
		return // else an answer to a question nobody here asked
	}
	child, ok := e.Child()
	if !ok || e.Attr("id") == "" {
		p.fail(e, stanza.Errorf("bad-request", ""))
		return
	}
	var dests []mux.Dest
	switch {
	case p.here.Localpart() == "" && slices.Contains(s.cfg.Domains, p.here.Domainpart()):
		dests = []mux.Dest{mux.Server}
	case p.here.Localpart() == "" || p.here.Resourcepart() != "":
	case s.sharesPresence(ctx, p.here.Bare().String(), p.user.Bare().String()):
		dests = []mux.Dest{mux.Contact, mux.Anyone}
	default:
		dests = []mux.Dest{mux.Anyone}
	}
	for _, d := range dests {
		iq := &mux.IQ{Stanza: e, Payload: child, Session: p.peer, From: p.here.String()}
		if handled, err := s.cfg.Mux.Serve(ctx, d, iq); handled {
			if err != nil {
				s.cfg.Log.Error("IQ handler failed", "ns", child.XMLName.Space, "dest", d.String(), "from", p.from, "err", err)
			}
			return
		}
	}
	p.fail(e, stanza.Errorf("service-unavailable", ""))
}

// ours reports whether by (a stanza-id's) is one of this server's
// entities: its domains, their accounts, its services. Only this server
// gives stanza-ids by them.
func (s *Server) ours(by string) bool {
	j, err := jid.Parse(by)
	if err != nil {
		return true // not a JID: not a remote server's to give either
	}
	if _, ok := s.cfg.Mux.Service(j.Domainpart()); ok {
		return true
	}
	return s.isLocal(j)
}
