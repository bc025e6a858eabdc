package muc

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/room"
)

// Namespaces of XEP-0045 and of what rooms answer.
const (
	nsMUC        = "http://jabber.org/protocol/muc"
	nsMUCUser    = "http://jabber.org/protocol/muc#user"
	nsMUCAdmin   = "http://jabber.org/protocol/muc#admin"
	nsMUCOwner   = "http://jabber.org/protocol/muc#owner"
	nsClient     = stanza.NSClient
	nsStanzas    = stanza.NSStanzas
	nsStanzaID   = stanza.NSStanzaID
	nsOccupantID = stanza.NSOccupantID
	nsDelay      = stanza.NSDelay
	nsDisco      = "http://jabber.org/protocol/disco#info"
	nsItems      = "http://jabber.org/protocol/disco#items"
	nsPing       = "urn:xmpp:ping"
	nsMAM        = "urn:xmpp:mam:2"
	nsData       = "jabber:x:data"
	// nsDMUC is DMUC3's feature and join element; nsDMUC0 its payloads
	// between master and mirror (the ProtoXEP's urn:xmpp:dmuc:0).
	nsDMUC  = "http://tridsys.com/protocol/dmuc"
	nsDMUC0 = "urn:xmpp:dmuc:0"
)

// Rooms is what the service needs from the room streams.
type Rooms interface {
	Get(ctx context.Context, room string) (room.State, error)
	// At returns the room as it was after the event with the given version
	// (the empty room for 0): the log follower folds a room from there.
	At(ctx context.Context, room string, version uint64) (room.State, error)
	// Events returns up to max events of the room's stream after version
	// after, in order (a mirror's resend).
	Events(ctx context.Context, room string, after uint64, max int) ([]event.Envelope, error)
	// Do decides the command that cmd builds from the room's current
	// state (or the error it returns instead) and appends its events; cmd
	// may run more than once.
	Do(ctx context.Context, room string, cmd func(room.State) any) (room.Outcome, room.State, error)
	// NewID returns a fresh archive ID for a room message.
	NewID() string
	// Public lists the rooms anyone may find (disco#items on the service).
	Public(ctx context.Context) ([]room.Listed, error)
}

// Archive reads a room's archive, for the history a joining session gets
// and for whose a message is (a retraction's check).
type Archive interface {
	Query(ctx context.Context, archive string, q archive.Query) (archive.Page, error)
	Author(ctx context.Context, room, id string) (string, error)
}

// Host is what the service needs from the session core.
type Host interface {
	// Sessions returns the sessions a stanza to j reaches: the full JID's,
	// or every available one of the bare JID's.
	Sessions(j jid.JID) []mux.Session
}

// Bookmarks keeps accounts' bookmarks (XEP-0402) in step with their
// occupancy: the pep feature's Service.
type Bookmarks interface {
	// SetAutojoin sets acct's bookmark of room to autojoin with nick, or
	// clears its autojoin.
	SetAutojoin(ctx context.Context, acct, room, nick string, autojoin bool)
	// Holds reports whether acct's bookmarks let the account stay in
	// room with no client attached: true unless a bookmark of the room
	// says no autojoin (then the account is in only while a client is).
	Holds(ctx context.Context, acct, room string) bool
}

// RoomArchive answers MAM requests on a room's archive (XEP-0313 §5), for
// those the room lets read it (the mam feature's Service).
type RoomArchive interface {
	ServeRoom(ctx context.Context, s mux.Session, e *stanza.Element, q stanza.Element, room string) error
}

// Config is what the service needs.
type Config struct {
	Domain  string   // the service's own, e.g. conference.localhost
	Domains []string // the server's: their accounts may create rooms
	Rooms   Rooms
	Archive Archive // nil: no join history
	// RoomArchive answers MAM on rooms; nil: feature-not-implemented.
	RoomArchive RoomArchive
	// Bookmarks follow occupancy; nil: bookmarks are not touched.
	Bookmarks Bookmarks
	// LockNewRooms keeps a new room closed to others until its owner
	// configures it (XEP-0045 §10.1).
	LockNewRooms bool
	// DetachedShow is an account's show in a room while none of its
	// clients is attached; default xa.
	DetachedShow string
	// HistoryBytes bounds the history sent to a joining session.
	HistoryBytes int
	// RoomCreations new rooms per account in RoomCreationWindow (defaults
	// DefaultRoomCreations and DefaultRoomCreationWindow; negative: no
	// limit).
	RoomCreations      int
	RoomCreationWindow time.Duration
	// OccupantKey keys occupant ids (XEP-0421): at least 16 bytes, derived
	// from the server's secret for this purpose only.
	OccupantKey []byte
	// MirrorTrust are the servers whose DMUC3 mirrors may mirror rooms
	// here (--mirror-trust; docs/dmuc.md); none: the service offers no
	// mirroring, and a join through a mirror is an ordinary one.
	MirrorTrust []string
	// MirrorTimeout: a mirror silent that long is taken for lost
	// (DefaultMirrorTimeout); MirrorResendPage bounds the room events
	// one resend renders (DefaultMirrorResendPage).
	MirrorTimeout    time.Duration
	MirrorResendPage int
	// IdleLeave: an account none of whose clients has been attached to a
	// room for that long leaves it (0: never); Occupancies lists the
	// accounts here in rooms (the rooms read model) for it.
	IdleLeave   time.Duration
	Occupancies Occupancies
	// VCardMaxBytes bounds a room's vCard (XEP-0486); 0: no limit.
	VCardMaxBytes int
	// VoiceRequestInterval: an occupant asks for voice at most this
	// often (DefaultVoiceRequestInterval).
	VoiceRequestInterval time.Duration
	// Elsewhere is what the other nodes of a cluster attach to rooms;
	// nil: this node is alone.
	Elsewhere Elsewhere
	Log       *slog.Logger
}

// Elsewhere is the other nodes' sessions in rooms (adapters/cluster).
type Elsewhere interface {
	// Attach tells them whether acct has sessions here attached to room,
	// and their best show.
	Attach(room, acct, show string, ok bool)
	// Attached returns the best show, by rank, of acct's sessions on the
	// other nodes attached to room; ok false: none is.
	Attached(room, acct string, rank func(show string) int) (show string, ok bool)
}

// Service is the multi-user chat service.
type Service struct {
	cfg  Config
	host Host

	muc         attachments
	elsewhereMu sync.Mutex // tellElsewhere's
	views       roomViews  // rooms as the log follower folded them; Publish's goroutine only

	fwdMu     sync.Mutex
	forwarded map[string]forwardedIQ // IQs to occupants awaiting an answer, by the id they went out with

	links mirrorLinks   // DMUC3: what the master knows of its mirrors' links
	idle  idleSince     // accounts here with no client in their rooms (idle.go)
	voice voiceRequests // when each occupant last asked for voice (voice.go)
	boot  string        // this run of the service, for its mirrors' pings

	creations   *roomCreations
	occupantKey []byte
}

// New returns the service, ready to be mounted on cfg.Domain.
func New(cfg Config, host Host) (*Service, error) {
	if cfg.Domain == "" || cfg.Rooms == nil || host == nil {
		return nil, errors.New("muc: a domain, rooms and a host are needed")
	}
	if len(cfg.OccupantKey) < 16 {
		return nil, errors.New("muc: the occupant id key is missing or shorter than 16 bytes")
	}
	cfg.DetachedShow = cmp.Or(cfg.DetachedShow, "xa")
	cfg.MirrorTimeout = cmp.Or(max(cfg.MirrorTimeout, 0), DefaultMirrorTimeout)
	cfg.MirrorResendPage = cmp.Or(max(cfg.MirrorResendPage, 0), DefaultMirrorResendPage)
	cfg.RoomCreations = cmp.Or(cfg.RoomCreations, DefaultRoomCreations)
	cfg.VoiceRequestInterval = cmp.Or(max(cfg.VoiceRequestInterval, 0), DefaultVoiceRequestInterval)
	cfg.RoomCreationWindow = cmp.Or(cfg.RoomCreationWindow, DefaultRoomCreationWindow)
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Service{cfg: cfg, host: host, views: make(roomViews), forwarded: make(map[string]forwardedIQ),
		creations: newRoomCreations(cfg.RoomCreations, cfg.RoomCreationWindow), occupantKey: cfg.OccupantKey, boot: stanza.NewID()}
	if cfg.Elsewhere != nil {
		s.muc.changed = s.tellElsewhere
	}
	return s, nil
}

// tellElsewhere tells the other nodes how acct's sessions here stand in
// room r. One at a time, each reading the attachments as they are then:
// the last change's call says the last word.
func (s *Service) tellElsewhere(r, acct string) {
	s.elsewhereMu.Lock()
	defer s.elsewhereMu.Unlock()
	show, ok := s.muc.show(r, acct)
	s.cfg.Elsewhere.Attach(r, acct, show, ok)
}

// attachedShow is acct's show in room r across the nodes: the best of its
// attached sessions', here or elsewhere; ok false when none is attached.
func (s *Service) attachedShow(r, acct string) (show string, ok bool) {
	show, ok = s.muc.show(r, acct)
	if s.cfg.Elsewhere == nil {
		return show, ok
	}
	rank := func(show string) int { return showRank[show] }
	if other, found := s.cfg.Elsewhere.Attached(r, acct, rank); found && (!ok || rank(other) < rank(show)) {
		return other, true
	}
	return show, ok
}

// Register mounts the service on m, and lists it among the server's
// items so that clients find it (XEP-0045 §6.1).
func (s *Service) Register(m *mux.Mux) {
	m.Mount(s.cfg.Domain, s)
	m.Item(mux.Server, mux.Item{JID: s.cfg.Domain, Name: "Chatrooms"})
}

// conn is a client session as the service handles one of its stanzas.
type conn struct {
	srv  *Service
	sess mux.Session
	jid  jid.JID
	acct string // the occupant it speaks for: see occupantOf
	log  *slog.Logger
}

func (s *Service) conn(sess mux.Session) *conn {
	j := sess.JID()
	return &conn{srv: s, sess: sess, jid: j, acct: s.occupantOf(j), log: s.cfg.Log.With("jid", j.String())}
}

// occupantOf is who a session occupies rooms as: a local session its
// account, whose sessions attach to one occupancy; a user at another
// server its full JID, one occupant per session as XEP-0045 has it, since
// its server does not attach sessions (room.State.Affiliation finds the
// bare JID's affiliation for it).
func (s *Service) occupantOf(j jid.JID) string {
	if slices.Contains(s.cfg.Domains, j.Domainpart()) {
		return j.Bare().String()
	}
	return j.String()
}

// local reports whether occupant acct is an account of this server.
func (s *Service) local(acct string) bool {
	_, domain, _ := strings.Cut(acct, "@")
	domain, _, _ = strings.Cut(domain, "/")
	return slices.Contains(s.cfg.Domains, domain)
}

// write answers the session; it never fails here (a broken connection is
// the core's to notice), and returns an error only to keep handlers short.
func (c *conn) write(x string) error {
	c.sess.Send(x)
	return nil
}

func (c *conn) deliver(x string, urgent bool) { c.sess.Deliver(x, urgent) }

// Handle takes every stanza a session sends to the service's domain.
func (s *Service) Handle(ctx context.Context, sess mux.Session, e *stanza.Element, to jid.JID) error {
	c := s.conn(sess)
	if s.isMirror(c.jid) && len(s.muc.roomsOf(c.jid.String())) > 0 {
		// A mirror's link: what it says shows the link is up; an error
		// that says it is gone (a bounce) shows the link is lost.
		if e.Attr("type") != "error" {
			s.links.heardFrom(c.jid.String(), time.Now())
		} else if goneError(e) {
			s.mirrorLost(ctx, c.jid.String(), "a stanza to it came back: "+stanza.ErrorCondition(e))
			return nil
		}
	}
	switch e.XMLName.Local {
	case "iq":
		switch typ := e.Attr("type"); {
		case typ == "result" || typ == "error":
			if to.Resourcepart() != "" {
				c.occupantIQReply(e) // an answer to an IQ the room forwarded
			}
			return nil
		case typ != "get" && typ != "set" || e.Attr("id") == "":
			return c.write(c.errorReply(e, "modify", "bad-request"))
		}
		child, ok := e.Child()
		if !ok {
			return c.write(c.errorReply(e, "modify", "bad-request"))
		}
		return c.mucIQ(ctx, e, child, to)
	case "message":
		return c.mucMessage(ctx, e, to)
	default:
		return c.mucPresence(ctx, e, to)
	}
}

// errorReply answers e from the address it was sent to.
func (c *conn) errorReply(e *element, typ, cond string) string {
	return c.errorReplyText(e, typ, cond, "")
}

func (c *conn) errorReplyText(e *element, typ, cond, text string) string {
	se := &stanza.Error{Type: typ, Cond: cond, Text: text}
	return "<" + e.XMLName.Local + " type='error' id='" + stanza.Escape(e.Attr("id")) + "'" +
		stanza.ToFrom(c.jid.String(), e.Attr("to")) + ">" + se.XML() + "</" + e.XMLName.Local + ">"
}

// element is a stanza as the session core read it.
type element = stanza.Element

// What the core tells the room service.
var (
	_ mux.SessionWatcher = (*Service)(nil)
	_ mux.Stopper        = (*Service)(nil)
	_ mux.LogFollower    = (*Service)(nil)
	_ mux.Runner         = (*Service)(nil)
)

// mirrorVia is the DMUC3 mirror a join says it comes through (<dmuc
// from='mirror.D'/>, ProtoXEP §3.2.1), if the service trusts it: the
// user is at a server of MirrorTrust, and the mirror is that server or
// one of its subdomains. An untrusted one is logged and the join goes on
// as an ordinary one (plain federated MUC).
func (s *Service) mirrorVia(user jid.JID, e *element) string {
	d, ok := e.Named(nsDMUC, "dmuc")
	if !ok {
		return ""
	}
	via := d.Attr("from")
	server := user.Domainpart()
	mirror, err := jid.Parse(via)
	trusted := err == nil && slices.Contains(s.cfg.MirrorTrust, server) && mirror.Localpart() == "" && mirror.Resourcepart() == "" &&
		(mirror.Domainpart() == server || strings.HasSuffix(mirror.Domainpart(), "."+server))
	if !trusted {
		s.cfg.Log.Warn("a join through a mirror this service does not trust: taken as an ordinary join", "jid", user.String(), "mirror", via)
		return ""
	}
	return mirror.String()
}
