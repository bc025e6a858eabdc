package c2s

// Rooms at other servers, account-based on this side: the account joins
// once, from a resource of its own (roomsResource), and its sessions
// attach to that occupancy as they do to a local room (features/muc):
// the room sees one occupant whatever the account's clients do, and what
// it sends the occupant is forked to every attached session. A session
// that joins after the first gets the room as this server last heard it
// (occupants, its own presence, subject) instead of a second join.
//
// The occupancy lives in memory: the remote room keeps the roster, and
// after a restart the first session's join is a join again.
// NOTSPEC(XEP-0045 §7.2): one occupant for several clients is what
// XEP-0045 leaves to the user's server; the room cannot tell.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
)

// roomsResource is the resource an account occupies rooms at other
// servers from. A client cannot bind it (bind gives it another).
const roomsResource = "annals-rooms"

// Bounds on what rooms elsewhere make this server keep for an account.
const (
	maxRemoteRooms     = 500  // rooms at other servers one account is in
	maxRemoteOccupants = 5000 // occupants' presences kept per room, for sessions that attach later
)

const (
	nsMUC  = "http://jabber.org/protocol/muc"
	nsDMUC = "http://tridsys.com/protocol/dmuc"
)

// remoteRoom is an account's occupancy of a room at another server.
type remoteRoom struct {
	nick      string
	joined    bool              // the room sent the occupant its own presence
	sessions  map[*conn]string  // attached sessions and their shows
	occupants map[string]string // nick -> the occupant's last presence, as the room sent it
	self      string            // the occupant's own last presence
	subject   string            // the last subject message
}

// remoteRooms holds every account's occupancies of rooms elsewhere.
type remoteRooms struct {
	mu    sync.Mutex
	rooms map[string]map[string]*remoteRoom // account -> room (bare JID) -> occupancy
}

func (r *remoteRooms) get(acct, room string) *remoteRoom {
	return r.rooms[acct][room]
}

// occupantJID is the full JID the account occupies rooms elsewhere as.
func occupantJID(acct jid.JID) jid.JID {
	j, _ := acct.Bare().WithResource(roomsResource)
	return j
}

// remoteRoomPresence handles a session's presence to an occupant JID of a
// room at another server, as the account's. It reports false when the
// presence is none of the account-based model's (the router sends it as
// it is).
func (c *conn) remoteRoomPresence(e *element, to jid.JID) bool {
	s := c.srv
	if to.Resourcepart() == "" || s.cfg.Remote == nil {
		return false
	}
	acct, room := c.jid.Bare().String(), to.Bare().String()
	typ := e.Attr("type")
	_, isJoin := e.Named(nsMUC, "x")
	s.remote.mu.Lock()
	defer s.remote.mu.Unlock()
	rr := s.remote.get(acct, room)
	switch {
	case rr == nil && (typ != "" || !isJoin):
		return false // not a join: a directed presence like any other
	case rr == nil:
		if len(s.remote.rooms[acct]) >= maxRemoteRooms {
			c.write(c.errorReplyText(e, "wait", "resource-constraint", fmt.Sprintf("this account is in %d rooms at other servers, the most it may be", maxRemoteRooms)))
			return true
		}
		rr = &remoteRoom{nick: to.Resourcepart(), sessions: map[*conn]string{c: e.ChildText("show")}, occupants: map[string]string{}}
		if s.remote.rooms == nil {
			s.remote.rooms = map[string]map[string]*remoteRoom{}
		}
		if s.remote.rooms[acct] == nil {
			s.remote.rooms[acct] = map[string]*remoteRoom{}
		}
		s.remote.rooms[acct][room] = rr
		if s.mirrored(to) {
			// Through this server's mirror (ProtoXEP §3.2.1): the master
			// tells the mirror, once for all its users, which tells them.
			e = withChild(e, "<dmuc xmlns='"+nsDMUC+"' from='"+stanza.Escape(s.cfg.MirrorDomain)+"'/>")
		}
		s.roomSend(c.jid, to, e, "")
		return true
	case typ == "unavailable":
		// An explicit exit from any client: the account leaves, as from
		// a room here. The room's answer reaches every attached session.
		s.roomSend(c.jid, to, e, "")
		return true
	case typ != "":
		return false
	}
	if to.Resourcepart() != rr.nick && s.mirrored(to) {
		// ProtoXEP, business rules: no nick change through a mirror.
		c.write(c.errorReplyText(e, "modify", "not-acceptable", "a nick cannot change in a room this server mirrors"))
		return true
	}
	_, attached := rr.sessions[c]
	rr.sessions[c] = e.ChildText("show")
	if !attached && rr.joined {
		// A second client joins: it gets the room as last heard, not a
		// second join, which the room would take for a presence update.
		c.replayRoom(rr, room)
	}
	if to.Resourcepart() != rr.nick || attached || !rr.joined {
		s.roomSend(c.jid, to, e, bestShow(rr))
	}
	return true
}

// replayRoom sends c the room rr as this server last heard it: the
// occupants, the account's own presence, the subject (XEP-0045 §7.2.3
// order). The caller holds remote.mu.
func (c *conn) replayRoom(rr *remoteRoom, room string) {
	for _, nick := range slices.Sorted(maps.Keys(rr.occupants)) {
		if nick != rr.nick {
			c.deliver(stanza.WithTo(rr.occupants[nick], c.jid.String()), false)
		}
	}
	if rr.self != "" {
		c.deliver(stanza.WithTo(rr.self, c.jid.String()), true)
	}
	if rr.subject != "" {
		c.deliver(stanza.WithTo(rr.subject, c.jid.String()), true)
	}
}

// bestShow is the account's show in the room: its attached sessions'
// most available one (showRank).
func bestShow(rr *remoteRoom) string {
	best, found := "xa", false
	for _, show := range rr.sessions {
		if !found || presenceRank[show] < presenceRank[best] {
			best, found = show, true
		}
	}
	return best
}

var presenceRank = map[string]int{"chat": 0, "": 1, "away": 2, "dnd": 3, "xa": 4}

// roomSend sends e, from the account's occupant JID, to the room
// elsewhere; show, when given, replaces an update's (the account's show
// in the room, not this client's).
func (s *Server) roomSend(from, to jid.JID, e *element, show string) {
	occupant := occupantJID(from).String()
	wire := stanza.Restamp(e, occupant)
	if show != "" && e.XMLName.Local == "presence" && e.Attr("type") == "" {
		if _, join := e.Named(nsMUC, "x"); !join {
			wire = roomPresence(occupant, to.String(), show, e.ChildText("status"))
		}
	}
	s.cfg.Remote.Send(occupantJID(from), to, wire)
}

// roomPresence is an occupant's presence update to a room.
func roomPresence(from, to, show, status string) string {
	var b strings.Builder
	b.WriteString("<presence xmlns='" + nsClient + "' from='" + stanza.Escape(from) + "' to='" + stanza.Escape(to) + "'>")
	if show != "" {
		b.WriteString("<show>" + stanza.Escape(show) + "</show>")
	}
	if status != "" {
		b.WriteString("<status>" + stanza.Escape(status) + "</status>")
	}
	b.WriteString("</presence>")
	return b.String()
}

// remoteRoomMessage sends a session's groupchat or private message to a
// room elsewhere the account is in, from its occupant JID; false: the
// account is in no such room.
func (c *conn) remoteRoomMessage(ctx context.Context, e *element, to jid.JID) bool {
	s := c.srv
	if s.cfg.Remote == nil {
		return false
	}
	s.remote.mu.Lock()
	rr := s.remote.get(c.jid.Bare().String(), to.Bare().String())
	s.remote.mu.Unlock()
	if rr == nil || e.Attr("type") != "groupchat" && to.Resourcepart() == "" {
		return false
	}
	if e.Attr("type") == "groupchat" && s.mirrored(to) && s.cfg.Mirror != nil {
		c.mirrorPost(ctx, e, to, rr.nick)
		return true
	}
	s.roomSend(c.jid, to, e, "")
	return true
}

// fromRemoteRoom takes what a room elsewhere sent an account's occupant
// JID: it is kept for sessions that attach later and forked to the
// attached ones. It reports false when the account is in no such room.
func (s *Server) fromRemoteRoom(p remoteStanza, e *stanza.Element) bool {
	acct, room := p.here.Bare().String(), p.user.Bare().String()
	s.remote.mu.Lock()
	defer s.remote.mu.Unlock()
	rr := s.remote.get(acct, room)
	if rr == nil {
		return false
	}
	wire := stanza.Restamp(e, p.from)
	if e.XMLName.Local == "message" {
		// Stanza-ids claiming to be ours are not the room's to give.
		stripped := *e
		stripped.Inner = stanza.ScanRemoteMessage(e, s.ours).Inner
		wire = stanza.Restamp(&stripped, p.from)
	}
	switch e.XMLName.Local {
	case "presence":
		s.remoteRoomPresenceIn(rr, acct, room, p.user, e, wire)
	case "message":
		if hasSubject(e) {
			rr.subject = wire
		}
		if e.Attr("type") == "error" && s.mirrored(p.user) && s.cfg.Mirror != nil {
			// The master refused a message of the account's: the mirror's
			// post of it waits no more (not here: this holds remote.mu).
			go s.mirrorRefused(p.user.Bare(), acct, e.Attr("id"), stanza.ErrorCondition(e))
		}
	case "iq":
		// A room asks its occupant (XEP-0410 self-ping, version, …):
		// the account answers a ping; the rest is nobody's to answer.
		if t := e.Attr("type"); t == "get" || t == "set" {
			if q, ok := e.Child(); ok && q.XMLName.Space == "urn:xmpp:ping" {
				p.Send(fmt.Sprintf(`<iq xmlns='%s' type='result' id='%s' from='%s' to='%s'/>`, nsClient, stanza.Escape(e.Attr("id")),
					stanza.Escape(p.here.String()), stanza.Escape(p.from)))
			} else {
				p.fail(e, stanza.Errorf("service-unavailable", ""))
			}
		}
		return true
	}
	for c := range rr.sessions {
		c.deliver(stanza.WithTo(wire, c.jid.String()), e.XMLName.Local == "message")
	}
	return true
}

// hasSubject reports a room's subject: a groupchat message with a
// subject and no body (XEP-0045 §8.1).
func hasSubject(e *stanza.Element) bool {
	_, subject := e.Named(nsClient, "subject")
	_, body := e.Named(nsClient, "body")
	return subject && !body && e.Attr("type") == "groupchat"
}

// remoteRoomPresenceIn keeps what a presence from the room says: an
// occupant's presence, the account's own (status 110), or the end of its
// occupancy (its own unavailable, or an error to its join). The caller
// holds remote.mu.
func (s *Server) remoteRoomPresenceIn(rr *remoteRoom, acct, room string, from jid.JID, e *stanza.Element, wire string) {
	nick := from.Resourcepart()
	self := isSelfPresence(e) || nick == rr.nick && e.Attr("type") == "error"
	switch {
	case self && (e.Attr("type") == "unavailable" || e.Attr("type") == "error"):
		if isNickChange(e) {
			rr.nick = newNick(e, rr.nick)
			return
		}
		// Out of the room: the sessions hear it (below) and detach.
		delete(s.remote.rooms[acct], room)
		if len(s.remote.rooms[acct]) == 0 {
			delete(s.remote.rooms, acct)
		}
	case self:
		rr.joined, rr.self, rr.nick = true, wire, nick
	case e.Attr("type") == "unavailable":
		delete(rr.occupants, nick)
	case nick != "" && (len(rr.occupants) < maxRemoteOccupants || rr.occupants[nick] != ""):
		rr.occupants[nick] = wire
	}
}

// isSelfPresence reports a presence with status 110 (the occupant's own).
func isSelfPresence(e *stanza.Element) bool {
	x, ok := e.Named(nsMUC+"#user", "x")
	if !ok {
		return false
	}
	for _, st := range x.Children() {
		if st.XMLName.Local == "status" && st.Attr("code") == "110" {
			return true
		}
	}
	return false
}

// isNickChange reports an unavailable presence with status 303.
func isNickChange(e *stanza.Element) bool {
	x, _ := e.Named(nsMUC+"#user", "x")
	for _, st := range x.Children() {
		if st.XMLName.Local == "status" && st.Attr("code") == "303" {
			return true
		}
	}
	return false
}

// newNick is the nick a 303 presence's item names, or old.
func newNick(e *stanza.Element, old string) string {
	x, _ := e.Named(nsMUC+"#user", "x")
	if item, ok := x.Named(nsMUC+"#user", "item"); ok && item.Attr("nick") != "" {
		return item.Attr("nick")
	}
	return old
}

// detachRemoteRooms detaches a session that ended or went unavailable
// from the rooms elsewhere: the account stays in them, its show there
// following its remaining sessions (xa with none), as in rooms here.
func (s *Server) detachRemoteRooms(c *conn) {
	if s.cfg.Remote == nil || c.jid.Localpart() == "" {
		return
	}
	s.remote.mu.Lock()
	defer s.remote.mu.Unlock()
	for room, rr := range s.remote.rooms[c.jid.Bare().String()] {
		if _, ok := rr.sessions[c]; !ok {
			continue
		}
		delete(rr.sessions, c)
		to, err := jid.Parse(room + "/" + rr.nick)
		if err != nil {
			continue
		}
		s.cfg.Remote.Send(occupantJID(c.jid), to, roomPresence(occupantJID(c.jid).String(), to.String(), bestShow(rr), ""))
	}
}

// leaveRemoteRooms takes every account out of its rooms elsewhere when
// the server stops: the occupancy lives in this process, and a room that
// kept it would take the account's next join, after the restart, for a
// presence update of an occupant it already has.
func (s *Server) leaveRemoteRooms() {
	if s.cfg.Remote == nil {
		return
	}
	s.remote.mu.Lock()
	defer s.remote.mu.Unlock()
	for acct, rooms := range s.remote.rooms {
		a, err := jid.Parse(acct)
		if err != nil {
			continue
		}
		from := occupantJID(a)
		for room, rr := range rooms {
			to, err := jid.Parse(room + "/" + rr.nick)
			if err != nil {
				continue
			}
			s.cfg.Remote.Send(from, to, fmt.Sprintf(`<presence xmlns='%s' type='unavailable' from='%s' to='%s'><status>the server stopped</status></presence>`,
				nsClient, stanza.Escape(from.String()), stanza.Escape(to.String())))
		}
	}
	s.remote.rooms = nil
}

// withChild is e with child (serialized) appended to its payload.
func withChild(e *element, child string) *element {
	c := *e
	c.Inner = append(slices.Clip(e.Inner), child...)
	return &c
}
