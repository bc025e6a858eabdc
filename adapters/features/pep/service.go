// Package pep is the accounts' personal eventing service (XEP-0163):
// any node a client publishes, read by others as its access model allows
// (open, presence, roster groups, whitelist; others.go), its events sent
// to the account's clients and to those of its contacts that ask for them
// (+notify, from the entity capabilities the session core learns) and
// the last item to a client that comes online (notify.go); private XML
// storage (XEP-0049) on top of it (private.go); and bookmarks (XEP-0402)
// tied to the room services: the account joining a room sets its
// bookmark's autojoin, leaving clears it (SetAutojoin, which the room
// service calls), and a client publishing autojoin makes the account
// join or leave.
//
// Items are events in the account's stream (the PEP port); a bookmark's
// room password is taken out of the payload before it is logged and kept
// beside the log, and put back for the account's own clients only. Nodes
// are bounded by Limits.
package pep

import (
	"context"
	"log/slog"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
	pepdomain "annals.im/annals/domain/pep"
)

const (
	nsClient  = stanza.NSClient
	nsStanzas = stanza.NSStanzas
	nsData    = "jabber:x:data"
)

// Host is what the service needs from the session core.
type Host interface {
	// Available returns the sessions of the account (a bare JID) that
	// sent available presence: where its nodes' events go.
	Available(acct string) []mux.Session
}

// Blocker says whether two accounts block each other (XEP-0191): a
// host that can tell keeps blocked contacts from each other's events.
type Blocker interface {
	EitherBlocks(ctx context.Context, a, b string) bool
}

// Config is what the service needs.
type Config struct {
	PEP PEP
	// Rosters says who may read an account's nodes (nil: only open ones
	// are anyone's to read).
	Rosters Rosters
	Limits  pepdomain.Limits // zero fields: no limit
	Log     *slog.Logger
}

// Service is the PEP service.
type Service struct {
	cfg  Config
	host Host
	mux  *mux.Mux // where the room services of bookmarks are found
}

// New returns the service.
func New(cfg Config, host Host) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Service{cfg: cfg, host: host}
}

// Register answers pubsub on the sender's own account and private XML
// storage on m.
func (s *Service) Register(m *mux.Mux) {
	s.mux = m
	m.Handle(mux.Account, nsPubsub, s.handler((*conn).pubsubIQ), pepFeatures...)
	m.Handle(mux.Anyone, nsPubsub, s.handler((*conn).othersPubsubIQ))
	m.OnAvailable(s.sessionAvailable)
	m.Identity(mux.Account, mux.Identity{Category: "pubsub", Type: "pep"})
	m.Handle(mux.Account, nsPrivate, s.handler((*conn).privateIQ))
	// Clients (poezio) look for private XML storage on the server before
	// they keep bookmarks there.
	m.Feature(mux.Server, nsPrivate)
}

// handler adapts one of this package's IQ handlers, which answer with
// stanzas they build, to a mux.Handler.
func (s *Service) handler(h func(c *conn, ctx context.Context, e *element, q element) error) mux.Handler {
	return func(ctx context.Context, iq *mux.IQ) error {
		defer iq.Answered()
		return h(s.conn(iq.Session, iq.From), ctx, iq.Stanza, iq.Payload)
	}
}

// conn is a client session as the service handles one of its stanzas.
type conn struct {
	srv  *Service
	sess mux.Session
	jid  jid.JID
	from string // the address the stanza was sent to, answers come from
	log  *slog.Logger
}

func (s *Service) conn(sess mux.Session, from string) *conn {
	j := sess.JID()
	return &conn{srv: s, sess: sess, jid: j, from: from, log: s.cfg.Log.With("jid", j.String())}
}

// write answers the session; a broken connection is the core's to notice.
func (c *conn) write(x string) error {
	c.sess.Send(x)
	return nil
}

func (c *conn) errorReply(e *element, typ, cond string) string {
	return c.errorReplyText(e, typ, cond, "")
}

func (c *conn) errorReplyText(e *element, typ, cond, text string) string {
	se := &stanza.Error{Type: typ, Cond: cond, Text: text}
	return "<" + e.XMLName.Local + " type='error' id='" + stanza.Escape(e.Attr("id")) + "'" +
		stanza.ToFrom(c.jid.String(), c.from) + ">" + se.XML() + "</" + e.XMLName.Local + ">"
}

// element is a stanza as the session core read it.
type element = stanza.Element
